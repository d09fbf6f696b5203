"""Errors and warnings about configuration files, each pointing at a file and line.

Both print as one line, `FILE:LINE: what is wrong and how to fix it`, the form
editors and `grep -n` users know; a problem with no line in the file (the
file is missing, unreadable, a directory) prints as `FILE: ...`.
"""

from dataclasses import dataclass
from pathlib import Path


def _where(path: Path | str, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


class ConfigError(Exception):
    """A configuration file that cannot be used, with the line to fix."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return f"{_where(self.path, self.line)}: {self.message}"


class LegacyError(ConfigError):
    """A Perl-style failover_config.txt that the importer cannot evaluate safely."""


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A configuration that works but is probably not what the operator wants."""

    path: Path | str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{_where(self.path, self.line)}: warning: {self.message}"
