"""Reading the end of a log file, for error messages and test reports."""

from pathlib import Path


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file; "" if it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
