"""`failoverd import-legacy`: the seed's Perl-style failover_config.txt to TOML.

The old file is Perl code (`sub CONFIG { ( KEY => 'value', ... ) }`), checked
with `perl -cw`. It is read here without running Perl: a small lexer and
parser accept exactly the literal subset such files use (quoted strings,
numbers, `.` concatenation, `=>` and `,`, comments) and refuse everything else
(variables, interpolation, function calls, barewords) with its line number,
so that a value is either the one Perl would compute or an error, never a
silently different one.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import tomli_w

from failoverd.config.durations import format_duration
from failoverd.config.errors import ConfigWarning, LegacyError
from failoverd.core.types import CheckScope, Preference, SafetyMode

_DIGITS = frozenset("0123456789")
_ASCII_DIGITS = re.compile(r"[0-9]+\Z")
_SUB_CONFIG = re.compile(r"^[ \t]*sub\s+CONFIG\b", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?")
_VARIABLE = re.compile(r"[$@%&](?:\{|\w+)")
_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")
_DECIMAL = re.compile(r"\d+(?:\.\d+)?")
_DQ_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "$": "$", "@": "@"}
_PUNCTUATION = ("=>", ",", ".", "(", ")", "{", "}", ";")

SECRET_PATH = "/etc/failoverd/secret"
POP3_PORT = 110
_KNOWN = {
    "VERSION",
    "REMOTE_POP3_HOST",
    "REMOTE_POP3_TIMEOUT",
    "MONITOR_PORT",
    "MONITOR_PORT_SLAVE",
    "SLAVE_HOST",
    "RLOGIN_USER",
    "RLOGIN_PASS",
    "SHUTDOWN_SCRIPTS",
    "STARTUP_SCRIPTS",
}
_DROPPED = ("RLOGIN_USER", "RLOGIN_PASS")

Scalar = str | int | float


@dataclass(frozen=True, slots=True)
class LegacyResult:
    """The TOML text of the new configuration, and what the operator should know."""

    toml_text: str
    warnings: tuple[ConfigWarning, ...]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "str", "num", "word", "var", a punctuation mark, or "other"
    value: Scalar
    line: int


class _Lexer:
    """Perl tokens from `start`, produced on demand: the parser stops at the sub's end,
    so whatever Perl follows it (`1;`) is never looked at."""

    def __init__(self, text: str, source: str, start: int) -> None:
        self.s = text
        self.source = source
        self.i = start
        self.line = text.count("\n", 0, start) + 1

    def error(self, line: int, message: str) -> LegacyError:
        return LegacyError(self.source, line, message)

    def tokens(self) -> Iterator[_Token]:
        while True:
            self._skip_blank()
            if self.i >= len(self.s):
                return
            yield self._token()

    def _skip_blank(self) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\n":
                self.line += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
                continue
            elif not c.isspace():
                return
            self.i += 1

    def _token(self) -> _Token:
        c, line = self.s[self.i], self.line
        if c == "'":
            return _Token("str", self._single_quoted(), line)
        if c == '"':
            return _Token("str", self._double_quoted(), line)
        if c in _DIGITS:
            return _Token("num", self._number(), line)
        for pattern, kind in ((_WORD, "word"), (_VARIABLE, "var")):
            m = pattern.match(self.s, self.i)
            if m is not None:
                self.i = m.end()
                return _Token(kind, m.group(), line)
        mark = next((p for p in _PUNCTUATION if self.s.startswith(p, self.i)), c)
        self.i += len(mark)
        return _Token(mark if mark in _PUNCTUATION else "other", mark, line)

    def _string_end(self, quote: str) -> int:
        """Index of the closing quote; newlines inside count towards the line number."""
        start_line, j = self.line, self.i + 1
        while j < len(self.s) and self.s[j] != quote:
            j += 2 if self.s[j] == "\\" else 1
        if j >= len(self.s):
            raise self.error(start_line, f"unterminated string: close it with {quote}")
        self.line += self.s.count("\n", self.i, j)
        return j

    def _single_quoted(self) -> str:
        end = self._string_end("'")
        body = self.s[self.i + 1 : end]
        self.i = end + 1
        return re.sub(r"\\([\\'])", r"\1", body)

    def _double_quoted(self) -> str:
        line = self.line
        end = self._string_end('"')
        body, out, j = self.s[self.i + 1 : end], [], 0
        self.i = end + 1
        while j < len(body):
            c = body[j]
            if c == "\\":
                escaped = body[j + 1]
                if escaped not in _DQ_ESCAPES:
                    raise self.error(
                        line,
                        f"escape \\{escaped} in a double-quoted string is not supported: "
                        "use single quotes for literal text",
                    )
                out.append(_DQ_ESCAPES[escaped])
                j += 2
                continue
            if c in "$@":
                raise self.error(
                    line + body.count("\n", 0, j),
                    f"{c}... in a double-quoted string is Perl interpolation, which the importer "
                    f"does not evaluate: write the value literally in single quotes, "
                    f"or escape it as \\{c}",
                )
            out.append(c)
            j += 1
        return "".join(out)

    def _number(self) -> int | float:
        m = _NUMBER.match(self.s, self.i)
        assert m is not None  # called on a digit
        text = m.group()
        after = self.s[m.end() : m.end() + 1]
        if after.isalnum() or after == "_":
            raise self.error(self.line, f"{text}{after}... is not a number Perl reads as written")
        if re.match(r"0\d", text):
            raise self.error(
                self.line, f"{text}: a leading 0 makes Perl read it as octal: remove the 0"
            )
        self.i = m.end()
        digits = text.replace("_", "")
        return float(digits) if re.search(r"[.eE]", digits) else int(digits)


class _Parser:
    """`sub CONFIG { [return] ( LIST ) [;] }`, where LIST holds KEY => VALUE pairs."""

    def __init__(self, lexer: _Lexer) -> None:
        self.lexer = lexer
        self.tokens = lexer.tokens()
        self.last_line = lexer.line
        self.pending: _Token | None = None

    def next(self) -> _Token:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            return pending
        token = next(self.tokens, None)
        if token is None:
            raise self.lexer.error(self.last_line, "the file ends inside sub CONFIG: close it")
        self.last_line = token.line
        return token

    def peek(self) -> _Token:
        if self.pending is None:
            self.pending = self.next()
        return self.pending

    def expect(self, kind: str, value: Scalar, what: str) -> None:
        token = self.next()
        if token.kind != kind or token.value != value:
            raise self.lexer.error(token.line, f"expected {what}, found {_shown(token)}")

    def config(self) -> tuple[dict[str, tuple[Scalar, int]], list[tuple[str, int]]]:
        self.expect("word", "sub", "sub CONFIG")
        self.expect("word", "CONFIG", "sub CONFIG")
        self.expect("{", "{", "{ after sub CONFIG")
        if self.peek().kind == "word" and self.peek().value == "return":
            self.next()
        self.expect("(", "(", "( opening the list of KEY => value pairs")
        items = self.items()
        if self.peek().kind == ";":
            self.next()
        self.expect("}", "}", "} closing sub CONFIG")
        return _pairs(self.lexer, items)

    def items(self) -> list[tuple[Scalar, int]]:
        items: list[tuple[Scalar, int]] = []
        while True:
            token = self.next()
            if token.kind == ")":
                return items
            if token.kind in (",", "=>"):
                continue
            items.append((self.item(token), token.line))
            after = self.peek()
            if after.kind not in (",", "=>", ")"):
                raise self.lexer.error(after.line, f"expected , or => or ), found {_shown(after)}")

    def item(self, token: _Token) -> Scalar:
        if token.kind == "word":
            after = self.peek()
            if after.kind == "=>":
                return token.value
            if after.kind == "(":
                raise self.lexer.error(
                    token.line,
                    f"{token.value}(...) is a function call, which the importer does not "
                    "evaluate: write the value literally",
                )
            raise self.lexer.error(
                token.line, f"bareword {token.value}: quote it ('{token.value}')"
            )
        if token.kind == "var":
            raise self.lexer.error(
                token.line,
                f"{token.value} is a Perl variable, which the importer does not evaluate: "
                "write the value literally",
            )
        if token.kind not in ("str", "num"):
            raise self.lexer.error(token.line, f"expected a value, found {_shown(token)}")
        value = token.value
        while self.peek().kind == ".":
            self.next()
            operand = self.next()
            if operand.kind not in ("str", "num"):
                raise self.lexer.error(
                    operand.line,
                    f"expected a string after the . (concatenation), found {_shown(operand)}",
                )
            value = _perl_string(value) + _perl_string(operand.value)
        return value


def _shown(token: _Token) -> str:
    if token.kind == "str":
        return "a string"
    if token.kind == "num":
        return f"the number {token.value}"
    return repr(str(token.value))


def _perl_string(value: Scalar) -> str:
    """A value as Perl would concatenate it."""
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def _pairs(
    lexer: _Lexer, items: list[tuple[Scalar, int]]
) -> tuple[dict[str, tuple[Scalar, int]], list[tuple[str, int]]]:
    """KEY => (value, line), the last one of a repeated key winning as in Perl; and the
    repeated keys with the line of their earlier, overridden occurrence."""
    if len(items) % 2:
        raise lexer.error(
            items[-1][1], "odd number of elements: every KEY needs a value (KEY => value)"
        )
    pairs: dict[str, tuple[Scalar, int]] = {}
    repeated: list[tuple[str, int]] = []
    for (key, line), value in zip(items[::2], items[1::2], strict=True):
        name = _perl_string(key)
        if name in pairs:
            repeated.append((name, pairs[name][1]))
        pairs[name] = (value[0], line)
    return pairs, repeated


class _Mapper:
    """The parsed keys, turned into values of the new configuration, or errors at their line."""

    def __init__(
        self,
        parsed: tuple[dict[str, tuple[Scalar, int]], list[tuple[str, int]]],
        source: str,
        sub_line: int,
    ) -> None:
        self.pairs, self.repeated = parsed
        self.source = source
        self.sub_line = sub_line

    def error(self, key: str, message: str) -> LegacyError:
        line = self.pairs[key][1] if key in self.pairs else self.sub_line
        return LegacyError(self.source, line, message)

    def required(self, key: str, what: str) -> Scalar:
        if key not in self.pairs:
            raise self.error(key, f"{key} is missing from sub CONFIG: add it ({what})")
        return self.pairs[key][0]

    def host(self, key: str, what: str) -> str:
        value = self.required(key, what)
        if not isinstance(value, str) or not _HOST.match(value):
            raise self.error(key, f"{key} must be a host name or IP address ({what})")
        return value

    def port(self, key: str, what: str) -> int:
        value = self.required(key, what)
        # isdigit() is also true for '²' and other digits int() refuses: ASCII only.
        port = int(value) if isinstance(value, str) and _ASCII_DIGITS.match(value) else value
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise self.error(key, f"{key} must be a port number from 1 to 65535 ({what})")
        return port

    def seconds(self, key: str) -> float | None:
        if key not in self.pairs:
            return None
        value = self.pairs[key][0]
        numeric = isinstance(value, int | float) or bool(_DECIMAL.fullmatch(str(value)))
        seconds = float(value) if numeric else 0.0
        if not 0 < seconds < 1e9:
            raise self.error(key, f"{key} must be a number of seconds greater than 0")
        return seconds

    def scripts(self, key: str) -> list[str]:
        """A comma-separated list of commands, in order (redirections kept as written)."""
        if key not in self.pairs:
            return []
        value = self.pairs[key][0]
        if not isinstance(value, str):
            raise self.error(key, f"{key} must be a string of commands separated by commas")
        return [c.strip() for c in value.split(",") if c.strip()]

    def warnings(self) -> list[ConfigWarning]:
        found: list[ConfigWarning] = []
        dropped = [k for k in _DROPPED if k in self.pairs]
        if dropped:
            found.append(
                ConfigWarning(
                    self.source,
                    self.pairs[dropped[0]][1],
                    f"{' and '.join(dropped)} dropped: failoverd authenticates its messages "
                    f"with a shared secret file ({SECRET_PATH}), never with a password; "
                    "delete the password from the old file once the migration is done",
                )
            )
        found += [
            ConfigWarning(
                self.source,
                line,
                f"{key} is not imported: failoverd has no setting for it; check whether it "
                "mattered",
            )
            for key, (_, line) in self.pairs.items()
            if key not in _KNOWN
        ]
        found += [
            ConfigWarning(
                self.source,
                line,
                f"{key} is given again later: the later value wins, as in Perl; remove this one",
            )
            for key, line in self.repeated
        ]
        return found


def _table(header: str, comments: list[str], body: dict[str, object]) -> str:
    lines = [f"# {c}" if c else "#" for c in comments]
    return "\n".join([*lines, header, tomli_w.dumps(body)])


def _render(m: _Mapper, role: Preference) -> str:
    primary_host = m.host("REMOTE_POP3_HOST", "the primary server, whose POP3 service is checked")
    standby_host = m.host("SLAVE_HOST", "the standby server")
    if primary_host == standby_host:
        raise m.error("SLAVE_HOST", "SLAVE_HOST and REMOTE_POP3_HOST name the same server")
    primary_port = m.port("MONITOR_PORT", "the primary's peer port")
    standby_port = m.port("MONITOR_PORT_SLAVE", "the standby's peer port")
    timeout = m.seconds("REMOTE_POP3_TIMEOUT")
    startup, shutdown = m.scripts("STARTUP_SCRIPTS"), m.scripts("SHUTDOWN_SCRIPTS")

    primary = ("REMOTE_POP3_HOST", primary_host, "MONITOR_PORT", primary_port)
    standby = ("SLAVE_HOST", standby_host, "MONITOR_PORT_SLAVE", standby_port)
    is_primary = role is Preference.PRIMARY
    _, me, my_port_key, my_port = primary if is_primary else standby
    peer_host_key, peer, peer_port_key, peer_port = standby if is_primary else primary
    version = m.pairs.get("VERSION", ("unknown", 0))[0]

    header = (
        "# failoverd configuration imported from a CPMS failover_config.txt\n"
        f"# (VERSION {json.dumps(_perl_string(version))}) by `failoverd import-legacy "
        f"--role {role}`.\n"
        "# Check it with `failoverd check-config FILE`.\n"
    )
    sections = [
        header,
        _table(
            "[node]",
            [
                f"listen: this server's {my_port_key}, on all addresses as the seed's",
                "socketserver did: UDP heartbeats and TCP commands.",
            ],
            {"name": me, "preference": str(role), "listen": f"0.0.0.0:{my_port}"},
        ),
        _table(
            "[peer]",
            [f"The other server: {peer_host_key} on its {peer_port_key}."],
            {"name": peer, "addresses": [_address(peer, peer_port)]},
        ),
        _table(
            "[cluster]",
            [
                'safety = "cooperative" is the seed\'s behaviour: the standby starts the service',
                "once the primary CONFIRMED SHUTDOWN_YOUR_SERVICE, or after a timeout.",
                "It is UNSAFE under a network partition: both servers may run the service.",
                'Recommended: safety = "witness", with a [witness] section (name, address) and',
                "`failoverd witness` running on a third host (e.g. the load balancer's).",
                "",
                "RLOGIN_USER/RLOGIN_PASS are gone: every message is authenticated with this",
                "shared secret. Create it once, then copy it to the other server (mode 600):",
                f"  head -c 64 /dev/urandom > {SECRET_PATH} && chmod 600 {SECRET_PATH}",
            ],
            {"safety": str(SafetyMode.COOPERATIVE), "secret_file": SECRET_PATH},
        ),
    ]
    if startup or shutdown:
        sections.append(
            _table(
                "[scripts]",
                [
                    "STARTUP_SCRIPTS and SHUTDOWN_SCRIPTS, run in order with /bin/sh -c in the",
                    "directory of this file. If the scripts stay in the old failover directory,",
                    'say so: working_dir = "/opt/criticalpath/global/failover"',
                ],
                {"startup": startup, "shutdown": shutdown},
            )
        )
    check: dict[str, object] = {
        "name": "pop3",
        "type": "pop3",
        "scope": str(CheckScope.LOCAL if is_primary else CheckScope.REMOTE),
        "host": primary_host,
        "port": POP3_PORT,
    }
    if timeout is not None:
        check["timeout"] = format_duration(timeout)
    why = (
        [
            "REMOTE_POP3_HOST/REMOTE_POP3_TIMEOUT: the seed's standby polled this POP3 service.",
            "Here the primary checks its own service (scope local): it reports the result in",
            "its heartbeats and on /health, so the standby learns of a failure even when it",
            "cannot reach the service itself. The standby's file keeps a remote check.",
        ]
        if is_primary
        else [
            "REMOTE_POP3_HOST/REMOTE_POP3_TIMEOUT: this standby checks the primary's POP3",
            "service with the real protocol, as the seed's rhcd did (scope remote).",
        ]
    )
    sections.append(_table("[[check]]", why, check))
    return "\n".join(sections)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def import_legacy(text: str, role: Preference, source: str = "failover_config.txt") -> LegacyResult:
    """The TOML configuration for the server of `role`, from the text of a failover_config.txt.

    Raises LegacyError (naming `source` and the line) for anything that cannot
    be evaluated without running Perl, or that does not make a configuration.
    """
    m = _SUB_CONFIG.search(text)
    if m is None:
        raise LegacyError(
            source, 1, "no `sub CONFIG { ( ... ) }` found: give the seed's failover_config.txt"
        )
    lexer = _Lexer(text, source, m.start())
    sub_line = text.count("\n", 0, m.start()) + 1
    mapper = _Mapper(_Parser(lexer).config(), source, sub_line)
    toml_text = _render(mapper, role)
    return LegacyResult(toml_text, tuple(mapper.warnings()))
