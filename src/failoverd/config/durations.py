"""Durations written as strings: "200ms", "5s", "1.5s", "2m", "1h"."""

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


class DurationError(ValueError):
    pass


def parse_duration(text: object) -> float:
    """Seconds from a duration string; bare numbers are refused (is 5 seconds or ms?)."""
    if not isinstance(text, str):
        raise DurationError(f'expected a duration string such as "200ms" or "5s", got {text!r}')
    m = _DURATION.match(text)
    if m is None:
        raise DurationError(
            f'{text!r} is not a duration: write a number and a unit (ms, s, m, h), e.g. "500ms"'
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds * 1000 == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.15g}s"  # 15 digits: exact for any value read from text


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
