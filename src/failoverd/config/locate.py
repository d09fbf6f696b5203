"""Find the line of a key in TOML source, for error messages.

tomllib returns plain dicts without positions, and pydantic reports errors by
`loc` tuples such as ("check", 1, "interval"). This module scans the (already
parsed, hence valid) TOML text once and records the line of every key path,
with array indices as ints: [[check]] tables and inline arrays both give
("check", 0), ("check", 1), ...
"""

import bisect
import re
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BASIC_ESCAPE = re.compile(r"\\(.)")
_SCALAR = re.compile(r"[^,\]}\n#]*")  # numbers, booleans, dates: up to the next delimiter


class _Scanner:
    """A structural reader of valid TOML: keys, tables and nesting, not values."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.lines: dict[KeyPath, int] = {}
        self._aot_counts: dict[KeyPath, int] = {}

    def line(self, pos: int | None = None) -> int:
        return bisect.bisect_right(self._line_starts, self.i if pos is None else pos)

    def record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    # -- lexical helpers ---------------------------------------------------

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces and comments (and newlines when `newlines`)."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def string(self) -> str:
        """Consume a string of any of the four kinds; return its (key) value."""
        for quote in ('"""', "'''"):
            if self.peek(3) == quote:
                end = self._find_close(quote, self.i + 3, escapes=quote == '"""')
                body = self.s[self.i + 3 : end]
                self.i = end + 3
                while self.peek() == quote[0]:  # up to two quotes may end the body
                    self.i += 1
                return body
        quote = self.peek()
        end = self._find_close(quote, self.i + 1, escapes=quote == '"')
        body = self.s[self.i + 1 : end]
        self.i = end + 1
        return _BASIC_ESCAPE.sub(r"\1", body) if quote == '"' else body

    def _find_close(self, quote: str, pos: int, escapes: bool) -> int:
        while pos < len(self.s):
            if escapes and self.s[pos] == "\\":
                pos += 2
            elif self.s.startswith(quote, pos):
                return pos
            else:
                pos += 1
        return len(self.s)

    def key(self) -> list[str]:
        """A dotted key: bare or quoted parts separated by dots."""
        parts: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            if self.peek() in ('"', "'"):
                parts.append(self.string())
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if m is None:
                    return parts
                parts.append(m.group())
                self.i = m.end()
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return parts
            self.i += 1

    # -- structure -----------------------------------------------------------

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(self.s):
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)

    def header(self) -> KeyPath:
        line = self.line()
        is_array = self.peek(2) == "[["
        self.i += 2 if is_array else 1
        keys = self.key()
        self.i = self.s.index("]", self.i) + (2 if is_array else 1)
        path: KeyPath = ()
        for n, k in enumerate(keys):
            path = (*path, k)
            self.record(path, line)
            last = n == len(keys) - 1
            if is_array and last:
                index = self._aot_counts.get(path, 0)
                self._aot_counts[path] = index + 1
                path = (*path, index)
                self.record(path, line)
            elif path in self._aot_counts:
                path = (*path, self._aot_counts[path] - 1)
        return path

    def key_value(self, table: KeyPath) -> None:
        line = self.line()
        path = table
        for k in self.key():
            path = (*path, k)
            self.record(path, line)
        self.skip_blank(newlines=False)
        self.i += 1  # "="
        self.value(path)

    def value(self, path: KeyPath) -> None:
        self.skip_blank(newlines=False)
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            m = _SCALAR.match(self.s, self.i)
            assert m is not None  # the pattern matches the empty string
            self.i = m.end()

    def array(self, path: KeyPath) -> None:
        self.i += 1
        index = 0
        while True:
            self.skip_blank(newlines=True)
            if self.peek() in ("]", ""):
                self.i += 1
                return
            if self.peek() == ",":
                self.i += 1
                continue
            self.record((*path, index), self.line())
            self.value((*path, index))
            index += 1

    def inline_table(self, path: KeyPath) -> None:
        self.i += 1
        while True:
            self.skip_blank(newlines=True)
            if self.peek() in ("}", ""):
                self.i += 1
                return
            if self.peek() == ",":
                self.i += 1
                continue
            self.key_value(path)


def key_lines(text: str) -> dict[KeyPath, int]:
    """The line (1-based) where each key path of valid TOML `text` is defined."""
    scanner = _Scanner(text)
    scanner.document()
    return scanner.lines


def locate(text: str, loc: Sequence[str | int]) -> int:
    """The line of the deepest part of `loc` found in `text`; 1 if none is.

    Elements of `loc` that are not keys (pydantic's union tags such as "pop3"
    or "ScriptSpec", or a missing key) are skipped, so a missing key points at
    its table's header and a missing table at line 1.
    """
    lines = key_lines(text)
    path: KeyPath = ()
    best = 1
    for element in loc:
        candidate = (*path, element)
        if candidate in lines:
            path = candidate
            best = lines[candidate]
    return best


def dotted(path: Sequence[str | int]) -> str:
    """A key path as a reader of the TOML file names it: "check[1].interval"."""
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else f".{p}"
    return text.lstrip(".")
