"""Loading configuration files: every bad file is one `FILE:LINE: ...` ConfigError."""

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failoverd.config.durations import DurationError, format_duration, parse_duration
from failoverd.config.errors import ConfigError, ConfigWarning
from failoverd.config.load import (
    load_config,
    load_node_config,
    load_witness_config,
    read_secret_file,
)
from failoverd.config.locate import key_lines, locate
from failoverd.config.params import node_params
from failoverd.config.schema import NodeConfig, WitnessConfig
from failoverd.core.types import CheckScope, Preference, SafetyMode, ScriptPhase

SECRET = b"TOPSECRET-" + b"k" * 40

GOOD = """\
# failoverd test node
[node]
name = "cfg1"
preference = "primary"
listen = "0.0.0.0:7890"

[peer]
name = "cfg2"
addresses = ["10.0.0.2:7891", "192.168.1.2:7891"]

[cluster]
safety = "witness"
secret_file = "secret"

[witness]
name = "lb"
address = "10.0.0.9:7899"

[timing]
heartbeat_interval = "200ms"

[scripts]
timeout = "10s"
startup = ["./scripts/foo2.sh", { command = "./scripts/bar.sh", timeout = "30s" }]
shutdown = ["./scripts/shutdown_1.sh"]

[[check]]
name = "pop3"
type = "pop3"
scope = "local"
host = "127.0.0.1"
port = 110

[[check]]
name = "web"
type = "http"
scope = "remote"
url = "http://10.0.0.2/"
interval = "2s"
"""

WITNESS = """\
[witness]
name = "lb"
listen = "0.0.0.0:7899"
nodes = ["cfg1", "cfg2"]

[cluster]
secret_file = "secret"
"""


Needle = str | tuple[str, int]


def line_of(text: str, needle: Needle) -> int:
    """The line number of the first line of `text` containing `needle`, or with
    (needle, n) of the nth such line."""
    what, nth = (needle, 1) if isinstance(needle, str) else needle
    hits = [n for n, line in enumerate(text.splitlines(), 1) if what in line]
    return hits[nth - 1]


def private(path: Path, content: bytes = SECRET, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.fixture
def cfgdir(tmp_path: Path) -> Path:
    private(tmp_path / "secret")
    return tmp_path


def write(directory: Path, text: str, name: str = "node.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_node_config(path, on_warning=lambda w: None)
    text = str(info.value)
    assert "\n" not in text
    assert "Traceback" not in text
    assert SECRET.decode() not in text
    return info.value


def error_in(directory: Path, text: str) -> ConfigError:
    return load_error(write(directory, text))


# -- a good file ---------------------------------------------------------------


def test_good_file_loads_with_relative_paths_resolved_against_its_directory(
    cfgdir: Path,
) -> None:
    cfg = load_node_config(write(cfgdir, GOOD))
    assert cfg.node.name == "cfg1"
    assert cfg.cluster.secret_file == cfgdir / "secret"
    assert cfg.scripts.working_dir == cfgdir
    assert cfg.node.state_dir == Path("/var/lib/failoverd")  # absolute stays absolute
    assert [s.timeout for s in cfg.scripts.specs(ScriptPhase.STARTUP)] == [10.0, 30.0]


def test_relative_working_dir_and_password_files_resolve_against_the_config_directory(
    cfgdir: Path,
) -> None:
    private(cfgdir / "pw", b"hunter2\n")
    text = GOOD.replace('timeout = "10s"', 'timeout = "10s"\nworking_dir = "svc"').replace(
        "port = 110", 'port = 110\nuser = "probe"\npassword_file = "pw"'
    )
    cfg = load_node_config(write(cfgdir, text))
    assert cfg.scripts.working_dir == cfgdir / "svc"
    assert cfg.check[0].password_file == cfgdir / "pw"  # type: ignore[union-attr]


def test_config_given_by_a_relative_path_resolves_against_its_directory(
    cfgdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cfgdir, GOOD)
    monkeypatch.chdir(cfgdir.parent)
    cfg = load_node_config(Path(cfgdir.name) / "node.toml")
    assert cfg.cluster.secret_file == cfgdir / "secret"
    assert cfg.cluster.secret_file.is_absolute()


def test_node_params_are_in_seconds_with_auto_timers_resolved(cfgdir: Path) -> None:
    cfg = load_node_config(write(cfgdir, GOOD))
    p = node_params(cfg)
    assert (p.name, p.peer, p.witness) == ("cfg1", "cfg2", "lb")
    assert p.preference is Preference.PRIMARY
    assert p.mode is SafetyMode.WITNESS
    assert p.startup_budget == 40.0  # 10s default + 30s
    assert p.shutdown_budget == 10.0
    assert p.fence_budget == 0.0
    assert p.timing.heartbeat_interval == 0.2
    assert p.timing.shutdown_timeout == 11.0  # auto: shutdown budget + 1s
    assert p.timing.lease_time == pytest.approx(1.0 + 10.0 + 0.2)  # dead + budget + margin
    assert p.timing.drift == 0.01
    assert [(c.name, c.scope, c.interval, c.fall) for c in p.checks] == [
        ("pop3", CheckScope.LOCAL, 1.0, 3),
        ("web", CheckScope.REMOTE, 2.0, 3),
    ]


def test_witness_file_loads_and_is_told_apart_from_a_node_file(cfgdir: Path) -> None:
    wpath = write(cfgdir, WITNESS, "witness.toml")
    assert isinstance(load_witness_config(wpath), WitnessConfig)
    assert isinstance(load_config(wpath), WitnessConfig)
    assert isinstance(load_config(write(cfgdir, GOOD)), NodeConfig)


def test_witness_file_secret_is_checked_too(cfgdir: Path) -> None:
    (cfgdir / "secret").chmod(0o644)
    wpath = write(cfgdir, WITNESS, "witness.toml")
    with pytest.raises(ConfigError) as info:
        load_witness_config(wpath)
    assert str(info.value).startswith(f"{wpath}:{line_of(WITNESS, 'secret_file')}: ")
    assert "chmod 600" in str(info.value)


# -- the file itself -------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.toml")
    assert (err.path, err.line) == (tmp_path / "nope.toml", None)
    assert str(err) == f"{tmp_path / 'nope.toml'}: no such file: check the path"


def test_directory(tmp_path: Path) -> None:
    err = load_error(tmp_path)
    assert err.line is None
    assert "is a directory" in err.message


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    err = load_error(path)
    assert str(err).startswith(f"{path}: permission denied")


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\n"])
def test_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(content)
    assert str(load_error(path)).startswith(f"{path}:1: the file is empty")


def test_binary_points_at_the_line_of_the_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(b"[node]\nname = 'x'\nab\0cd\n")
    err = load_error(path)
    assert err.line == 3
    assert "binary" in err.message


def test_not_utf8_points_at_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(b"[node]\nname = '\xe9t\xe9'\n")
    err = load_error(path)
    assert err.line == 2
    assert "0xe9" in err.message and "UTF-8" in err.message


def test_utf8_byte_order_mark_is_accepted(cfgdir: Path) -> None:
    path = cfgdir / "node.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_node_config(path).node.name == "cfg1"


@pytest.mark.parametrize(
    ("old", "new", "needle", "expect"),
    [
        ('safety = "witness"', "safety = witness", "safety", "string needs quotes"),
        ('name = "lb"', 'name = "lb"\nname = "x"', 'name = "x"', "given twice"),
        ('listen = "0.0.0.0:7890"', 'listen = "0.0.0.0:7890', "listen", "TOML syntax error"),
    ],
)
def test_toml_syntax_error_gives_its_line(
    cfgdir: Path, old: str, new: str, needle: Needle, expect: str
) -> None:
    text = GOOD.replace(old, new)
    err = error_in(cfgdir, text)
    assert err.line == line_of(text, needle)
    assert expect in err.message


def test_toml_syntax_error_at_end_of_document(cfgdir: Path) -> None:
    text = GOOD + 'x = """never closed\n'
    err = error_in(cfgdir, text)
    assert err.line is not None and err.line >= line_of(text, "never closed")
    assert "TOML syntax error" in err.message


# -- the schema -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "expect"),
    [
        # unknown keys, with the likely intended one
        (
            'heartbeat_interval = "200ms"',
            'heartbeat_intervall = "200ms"',
            "intervall",
            "unknown key 'heartbeat_intervall' in [timing]: did you mean 'heartbeat_interval'?",
        ),
        ("# failoverd test node", "bogus = 1", "bogus", "unknown key 'bogus' at the top level"),
        # wrong types
        (
            'preference = "primary"',
            'preference = "master"',
            "preference",
            "node.preference: must be 'primary' or 'standby', not \"master\"",
        ),
        (
            'addresses = ["10.0.0.2:7891", "192.168.1.2:7891"]',
            'addresses = "10.0.0.2:7891"',
            "addresses",
            "peer.addresses: must be a list",
        ),
        ('name = "cfg1"', "name = 5", "name = 5", "node.name: must be a string in quotes, not 5"),
        # durations
        (
            'heartbeat_interval = "200ms"',
            'heartbeat_interval = "200"',
            "heartbeat_interval",
            "timing.heartbeat_interval: '200' is not a duration",
        ),
        (
            'heartbeat_interval = "200ms"',
            "heartbeat_interval = 200",
            "heartbeat_interval",
            "expected a duration string",
        ),
        (
            'heartbeat_interval = "200ms"',
            'shutdown_timeout = "5"',
            "shutdown_timeout",
            "is not a duration: write a number and a unit (ms, s, m, h), "
            "e.g. \"500ms\" (or 'auto')",
        ),
        (
            'timeout = "30s"',
            'timeout = "soon"',
            "bar.sh",
            "scripts.startup[1].timeout: 'soon' is not a duration",
        ),
        # ports and addresses
        (
            "port = 110",
            "port = 70000",
            "port = 70000",
            "check[0].port: must be less than or equal to 65535, not 70000",
        ),
        (
            'listen = "0.0.0.0:7890"',
            'listen = "0.0.0.0:99999"',
            "listen",
            "port in '0.0.0.0:99999' must be a number from 1 to 65535",
        ),
        (
            'address = "10.0.0.9:7899"',
            'address = "10.0.0.9"',
            'address = "10.0.0.9"',
            "is not HOST:PORT",
        ),
        ("[timing]", "[[timing]]", "[[timing]]", "timing: must be a table, not a list"),
        # the second [[check]]
        ('interval = "2s"', 'interval = "2"', 'interval = "2"', "check[1].interval"),
        ('type = "http"', 'type = "htp"', "htp", 'check[1].type: unknown type "htp"'),
        ('type = "http"\n', "", ("[[check]]", 2), "check[1]: missing key 'type'"),
        ('url = "http://10.0.0.2/"', 'url = "ftp://x"', "ftp", "check[1].url: must match"),
        # missing keys and sections
        ('listen = "0.0.0.0:7890"\n', "", "[node]", "missing key 'listen' in [node]: add it."),
        (
            '[peer]\nname = "cfg2"\naddresses = ["10.0.0.2:7891", "192.168.1.2:7891"]\n',
            "",
            "# failoverd",
            "missing section [peer]: add it, with name, addresses",
        ),
        # a list entry that is neither a command nor a table
        (
            'startup = ["./scripts/foo2.sh"',
            "startup = [5",
            "startup",
            "scripts.startup[0]: must be a string in quotes or a table, not 5",
        ),
    ],
)
def test_schema_error_names_the_key_its_line_and_the_fix(
    cfgdir: Path, old: str, new: str, needle: Needle, expect: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    err = error_in(cfgdir, text)
    assert expect in err.message
    assert err.line == line_of(text, needle)


def test_the_error_first_in_the_file_is_reported(cfgdir: Path) -> None:
    text = GOOD.replace('preference = "primary"', 'preference = "master"').replace(
        "port = 110", "port = 0"
    )
    assert error_in(cfgdir, text).line == line_of(text, "preference")


@pytest.mark.parametrize(
    ("old", "new", "needle", "expect"),
    [
        (
            'name = "cfg2"',
            'name = "cfg1"',
            ('name = "cfg1"', 2),
            "node.name and peer.name must differ",
        ),
        ('name = "web"', 'name = "pop3"', ('name = "pop3"', 2), "'pop3' is repeated"),
        ('safety = "witness"', 'safety = "fence"', "safety", "needs scripts.fence"),
        ('[witness]\nname = "lb"\naddress = "10.0.0.9:7899"\n', "", "safety", "needs a [witness]"),
        (
            "port = 110",
            'port = 110\nuser = "probe"',
            "probe",
            "check[0]: user and password_file go together",
        ),
        (
            'heartbeat_interval = "200ms"',
            'heartbeat_interval = "600ms"',
            "[timing]",  # dead_time is not in the file: its table
            "dead_time (1s) must be at least 2 × heartbeat_interval (1.2s)",
        ),
    ],
)
def test_cross_field_errors_point_at_the_key(
    cfgdir: Path, old: str, new: str, needle: Needle, expect: str
) -> None:
    text = GOOD.replace(old, new, 1)
    err = error_in(cfgdir, text)
    assert expect in err.message
    assert err.line == line_of(text, needle)


def test_dead_time_error_points_at_dead_time_when_it_is_set(cfgdir: Path) -> None:
    text = GOOD.replace(
        'heartbeat_interval = "200ms"', 'heartbeat_interval = "1s"\ndead_time = "1s"'
    )
    assert error_in(cfgdir, text).line == line_of(text, "dead_time")


def test_witness_mode_lease_shorter_than_demotion_gives_the_minimum(cfgdir: Path) -> None:
    text = GOOD.replace(
        'heartbeat_interval = "200ms"', 'heartbeat_interval = "200ms"\nlease_time = "10s"'
    )
    err = error_in(cfgdir, text)
    assert err.line == line_of(text, "lease_time")
    # shutdown scripts 10s + demote_margin 200ms + 2 × 200ms
    assert "must be more than 10.6s" in err.message
    assert "demote itself constantly" in err.message
    assert "set timing.lease_time above 10.6s" in err.message


def test_lease_time_is_not_checked_outside_witness_mode(cfgdir: Path) -> None:
    text = GOOD.replace('safety = "witness"', 'safety = "cooperative"').replace(
        'heartbeat_interval = "200ms"', 'heartbeat_interval = "200ms"\nlease_time = "1s"'
    )
    assert load_node_config(write(cfgdir, text), on_warning=lambda w: None).lease_time == 1.0


# -- demote scripts ------------------------------------------------------------------

WITH_DEMOTE = GOOD.replace(
    'shutdown = ["./scripts/shutdown_1.sh"]',
    'shutdown = ["./scripts/shutdown_1.sh"]\n'
    'demote = [{ command = "./kill.sh", timeout = "500ms" }]',
)


def test_demote_scripts_not_the_shutdown_scripts_size_the_auto_lease(cfgdir: Path) -> None:
    p = node_params(load_node_config(write(cfgdir, WITH_DEMOTE)))
    assert p.demote_budget == 0.5
    assert p.shutdown_budget == 10.0
    assert p.stop_budget == 0.5
    assert p.timing.lease_time == pytest.approx(1.0 + 0.5 + 0.2)  # dead + demote + margin
    assert p.timing.shutdown_timeout == 11.0  # still the graceful stop's: shutdown + 1s
    without = node_params(load_node_config(write(cfgdir, GOOD)))
    assert (without.demote_budget, without.stop_budget) == (None, 10.0)


def test_demote_outside_witness_mode_is_a_one_line_error_at_its_key(cfgdir: Path) -> None:
    text = WITH_DEMOTE.replace('safety = "witness"', 'safety = "cooperative"')
    err = error_in(cfgdir, text)
    assert err.line == line_of(text, "demote =")
    assert 'scripts.demote is only used with safety = "witness"' in err.message
    assert 'remove it or set safety = "witness"' in err.message


def test_with_demote_scripts_the_lease_must_leave_a_heartbeat_to_cancel_a_shutdown(
    cfgdir: Path,
) -> None:
    text = WITH_DEMOTE.replace(
        'heartbeat_interval = "200ms"', 'heartbeat_interval = "200ms"\nlease_time = "1.3s"'
    )
    err = error_in(cfgdir, text)
    assert err.line == line_of(text, "lease_time")
    # demote scripts 500ms + demote_margin 200ms + 3 × 200ms
    assert "must be more than 1.3s (demote scripts 500ms" in err.message
    assert "+ 3 × heartbeat_interval" in err.message
    assert "graceful shutdowns would be cut short" in err.message
    ok = text.replace('lease_time = "1.3s"', 'lease_time = "1.31s"')
    assert load_node_config(write(cfgdir, ok)).lease_time == 1.31


# -- warnings ----------------------------------------------------------------------


def warnings_of(path: Path) -> list[ConfigWarning]:
    found: list[ConfigWarning] = []
    load_node_config(path, on_warning=found.append)
    return found


def test_a_good_witness_mode_file_has_no_warnings(cfgdir: Path) -> None:
    assert warnings_of(write(cfgdir, GOOD)) == []


def test_shutdown_timeout_shorter_than_the_scripts_is_a_warning_at_its_line(cfgdir: Path) -> None:
    text = GOOD.replace('heartbeat_interval = "200ms"', 'shutdown_timeout = "5s"')
    path = write(cfgdir, text)
    [warning] = warnings_of(path)
    assert warning.line == line_of(text, "shutdown_timeout")
    assert str(warning).startswith(f"{path}:{warning.line}: warning: shutdown_timeout (5s)")
    assert "(10s)" in warning.message


def test_cooperative_mode_warns_that_it_is_unsafe(cfgdir: Path) -> None:
    text = GOOD.replace('safety = "witness"', 'safety = "cooperative"')
    [warning] = warnings_of(write(cfgdir, text))
    assert warning.line == line_of(text, "safety")
    assert "unsafe under a network partition" in warning.message


# -- secret and password files -------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "expect"),
    [
        (lambda p: p.unlink(), "no such file: create it with: head -c 64 /dev/urandom >"),
        (lambda p: p.chmod(0o640), "group or others may access it (mode 0640): run chmod 600"),
        (lambda p: p.chmod(0o604), "(mode 0604): run chmod 600"),
        (lambda p: p.chmod(0o620), "(mode 0620): run chmod 600"),
        (lambda p: private(p, b"k" * 31 + b"\n"), "holds 31 bytes, fewer than 32"),
        (lambda p: private(p, b"SHORTSECRET"), "holds 11 bytes"),
        (lambda p: (p.unlink(), p.mkdir()), "is not a regular file"),
    ],
)
def test_bad_secret_file_points_at_secret_file_key(
    cfgdir: Path, setup: Callable[[Path], object], expect: str
) -> None:
    setup(cfgdir / "secret")
    path = write(cfgdir, GOOD)
    err = load_error(path)
    assert err.line == line_of(GOOD, "secret_file")
    assert str(err).startswith(f"{path}:{err.line}: cluster.secret_file {cfgdir / 'secret'}: ")
    assert expect in err.message
    assert "SHORTSECRET" not in str(err)


def test_unreadable_secret_file(cfgdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(cfgdir, GOOD)
    real = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self.name == "secret":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    err = load_error(path)
    assert err.line == line_of(GOOD, "secret_file")
    assert "permission denied" in err.message


def test_accepted_key_files_are_checked_and_located(cfgdir: Path) -> None:
    private(cfgdir / "old1")
    private(cfgdir / "old2", mode=0o644)
    text = GOOD.replace(
        'secret_file = "secret"',
        'secret_file = "secret"\naccept_keys = [\n  { key_id = 7, secret_file = "old1" },\n'
        '  { key_id = 8, secret_file = "old2" },\n]',
    )
    err = error_in(cfgdir, text)
    assert err.line == line_of(text, "old2")
    assert err.message.startswith(f"cluster.accept_keys[1].secret_file {cfgdir / 'old2'}: ")


def test_secret_with_32_bytes_after_the_newline_is_accepted(tmp_path: Path) -> None:
    key = b"\n" + b"k" * 31  # newlines inside a key are key bytes
    assert read_secret_file(private(tmp_path / "s", key + b"\n")) == key


def test_only_one_trailing_newline_is_stripped(tmp_path: Path) -> None:
    assert read_secret_file(private(tmp_path / "s", SECRET + b"\n\n")) == SECRET + b"\n"
    assert read_secret_file(private(tmp_path / "t", SECRET)) == SECRET


def test_read_secret_file_error_names_the_file_not_its_content(tmp_path: Path) -> None:
    path = private(tmp_path / "s", b"SHORTSECRET", mode=0o600)
    with pytest.raises(ConfigError) as info:
        read_secret_file(path)
    assert str(info.value).startswith(f"{path}: holds 11 bytes")
    assert "SHORTSECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("mode", "exists", "expect"),
    [
        (0o600, False, "no such file: create it holding the password"),
        (0o644, True, "run chmod 600"),
    ],
)
def test_bad_password_files(cfgdir: Path, mode: int, exists: bool, expect: str) -> None:
    if exists:
        private(cfgdir / "pw", b"hunter2\n", mode)
    text = GOOD.replace("port = 110", 'port = 110\nuser = "probe"\npassword_file = "pw"')
    err = error_in(cfgdir, text)
    assert err.line == line_of(text, "password_file")
    assert expect in err.message
    assert "hunter2" not in str(err)


def test_bad_mail_alert_password_file(cfgdir: Path) -> None:
    private(cfgdir / "smtp-pw", b"hunter2", 0o666)
    text = GOOD + (
        '\n[alerts.mail]\nsmtp_host = "mx"\nsender = "a@b"\nrecipients = ["c@d"]\n'
        'user = "u"\npassword_file = "smtp-pw"\n'
    )
    err = error_in(cfgdir, text)
    assert err.line == line_of(text, "smtp-pw")
    assert err.message.startswith("alerts.mail.password_file")


# -- locate ----------------------------------------------------------------------------

LOCATE = """\
top = 1
[a]
x = 1
y.z = "a = 1"
inline = { p = 1, q = { r = 2 } }
text = '''
[not_a_table]
fake = 1
'''
after = 2  # comment = 3

[[arr]]
n = 0
[[arr]]
n = 1
[[arr.sub]]
m = 0
list = [
  { k = 0 },
  # a comment
  { k = 1 },
]
"quoted key" = true
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("top",), 1),
        (("a",), 2),
        (("a", "x"), 3),
        (("a", "y", "z"), 4),
        (("a", "inline", "q", "r"), 5),
        (("a", "after"), 10),
        (("arr", 0, "n"), 13),
        (("arr", 1, "n"), 15),
        (("arr", 1, "sub", 0, "m"), 17),
        (("arr", 1, "sub", 0, "list", 1, "k"), 21),
        (("arr", 1, "sub", 0, "quoted key"), 23),
        (("arr", 1, "missing"), 14),  # falls back to its table header
        (("a", "pop3", "x"), 3),  # a union tag in the loc is skipped
        (("nowhere", "at_all"), 1),
        (("not_a_table",), 1),  # text inside a multi-line string is no table
    ],
)
def test_locate(loc: tuple[str | int, ...], line: int) -> None:
    tomllib.loads(LOCATE)  # the scanner's input is valid TOML
    assert locate(LOCATE, loc) == line


def test_key_lines_ignores_text_inside_strings() -> None:
    lines = key_lines(LOCATE)
    assert ("a", "fake") not in lines
    assert ("comment",) not in lines and ("a", "comment") not in lines


# -- durations (property) --------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_parses_every_number_with_a_unit(n: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * factor)


@given(st.integers(min_value=0, max_value=10**7))
def test_formatted_durations_parse_back(ms: int) -> None:
    seconds = ms / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@given(st.one_of(st.text(), st.integers(), st.floats(), st.none()))
def test_duration_parser_refuses_garbage_only_with_duration_error(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except DurationError:
        return
    assert isinstance(value, str) and seconds >= 0
