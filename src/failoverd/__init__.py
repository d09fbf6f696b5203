"""failoverd: keeps one service active on exactly one of two servers."""

__version__ = "0.1.0"
