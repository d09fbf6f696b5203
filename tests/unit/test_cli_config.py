"""`failoverd check-config` and `failoverd import-legacy`, as an operator runs them."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from failoverd.cli.main import cli
from failoverd.config.durations import format_duration
from failoverd.config.legacy import SECRET_PATH
from failoverd.config.load import load_node_config
from failoverd.config.params import node_params
from failoverd.core.timing import worst_case

SECRET = b"VERYSECRETKEY-" + b"z" * 40
SEED = Path(__file__).parent / "data" / "failover_config.txt"

NODE = """\
[node]
name = "cfg2"
preference = "standby"
listen = "0.0.0.0:7891"

[peer]
name = "cfg1"
addresses = ["10.0.0.1:7890"]

[cluster]
safety = "witness"
secret_file = "secret"

[witness]
name = "lb"
address = "10.0.0.9:7899"

[scripts]
startup = ["./scripts/foo2.sh", "./scripts/bar.sh"]
shutdown = [{ command = "./scripts/shutdown_1.sh", timeout = "20s" }]

[[check]]
name = "primary-pop3"
type = "pop3"
scope = "remote"
host = "10.0.0.1"
port = 110
timeout = "5s"
"""

WITNESS = """\
[witness]
name = "lb"
listen = "0.0.0.0:7899"
nodes = ["cfg1", "cfg2"]

[cluster]
secret_file = "secret"
"""


@pytest.fixture
def cfgdir(tmp_path: Path) -> Path:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    return tmp_path


def run(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
        assert SECRET.decode() not in stream
    return result


def write(directory: Path, text: str, name: str = "node.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def assert_bad_file(result: Result, prefix: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr starting with `prefix`."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(prefix), line


# -- check-config ---------------------------------------------------------------------


def test_summary_of_a_good_file(cfgdir: Path) -> None:
    path = write(cfgdir, NODE)
    result = run("check-config", path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert result.stderr == ""
    for expected in (
        "cfg2 (preference: standby)",
        "cfg1 at 10.0.0.1:7890",
        "lb at 10.0.0.9:7899",
        "Safety mode: witness",
        "never two active nodes, even under a network partition",
        "primary-pop3",
        "10.0.0.1:110",
        "./scripts/shutdown_1.sh",
        "20s",
        "shutdown_timeout",
        "21s (auto)",  # the shutdown scripts' 20s + 1s
        "lease_time",
        "21.2s (auto)",  # dead_time 1s + 20s + demote_margin 200ms
        "daemon: SCHED_RR priority 10, locked memory",
    ):
        assert expected in out, expected
    assert "WARNING" not in out
    off = NODE.replace("[peer]", "realtime_priority = 0\nlock_memory = false\n\n[peer]", 1)
    out = run("check-config", write(cfgdir, off)).stdout
    assert "daemon: normal scheduler, memory not locked" in out


def test_summary_shows_the_demote_scripts_and_the_lease_they_size(cfgdir: Path) -> None:
    text = NODE.replace(
        'timeout = "20s" }]',
        'timeout = "20s" }]\ndemote = [{ command = "./scripts/kill.sh", timeout = "500ms" }]',
    )
    result = run("check-config", write(cfgdir, text))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "./scripts/kill.sh",
        "21s (auto)",  # shutdown_timeout: still the graceful shutdown's 20s + 1s
        "1.7s (auto)",  # lease_time: dead_time 1s + demote 500ms + demote_margin 200ms
        "demote scripts, 700ms before the lease ends",  # demote 500ms + demote_margin 200ms
    ):
        assert expected in out, expected
    without = run("check-config", write(cfgdir, NODE)).stdout
    assert "shutdown scripts, 20.2s before the lease ends" in without


def test_summary_prints_the_worst_case_failover_time_and_its_paths(cfgdir: Path) -> None:
    path = write(cfgdir, NODE)
    bound = worst_case(node_params(load_node_config(path)))
    out = run("check-config", path).stdout
    figure = format_duration(round(bound.seconds, 3))
    assert f"to the standby being active: {figure}" in out
    for p in bound.paths:
        assert p.name in out
        for term in p.terms:
            assert term.what in out
    assert f"{bound.worst.name} (the worst)" in out


def test_cooperative_mode_is_shouted_on_stdout_and_warned_on_stderr(cfgdir: Path) -> None:
    path = write(cfgdir, NODE.replace('safety = "witness"', 'safety = "cooperative"'))
    result = run("check-config", path)
    assert result.exit_code == 0
    assert "WARNING: UNSAFE under a network partition" in result.stdout
    assert "two writers" in result.stdout
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"{path}:11: warning: ")


def test_fence_mode_says_what_it_guarantees(cfgdir: Path) -> None:
    text = NODE.replace('safety = "witness"', 'safety = "fence"').replace(
        "[scripts]", '[scripts]\nfence = ["ipmitool power off"]'
    )
    out = run("check-config", write(cfgdir, text)).stdout
    assert "Safety mode: fence" in out
    assert "fence command" in out
    assert "fence command (its timeout)" in out  # a term of the worst case


def test_json_has_the_defaults_filled_in_and_no_secret(cfgdir: Path) -> None:
    path = write(cfgdir, NODE)
    result = run("check-config", "--json", path)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["timing"]["heartbeat_interval"] == "200ms"
    assert data["timing"]["lease_time"] == "auto"
    assert data["node"]["api"] == "127.0.0.1:8790"
    assert data["scripts"]["timeout"] == "10s"
    assert data["scripts"]["working_dir"] == str(cfgdir)
    assert data["scripts"]["shutdown"] == [{"command": "./scripts/shutdown_1.sh", "timeout": "20s"}]
    assert data["check"][0]["fall"] == 3
    assert data["cluster"]["secret_file"] == str(cfgdir / "secret")
    assert data["log"] == {"level": "info"}


def test_witness_file_is_detected_or_named(cfgdir: Path) -> None:
    path = write(cfgdir, WITNESS, "witness.toml")
    for args in (("check-config", path), ("check-config", "--witness", path)):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert "the third vote" in result.stdout
        assert "cfg1 and cfg2" in result.stdout
    data = json.loads(run("check-config", "--json", path).stdout)
    assert data["witness"]["dead_time"] == "1s"


def test_witness_flag_on_a_node_file_is_a_bad_file(cfgdir: Path) -> None:
    path = write(cfgdir, NODE)
    assert_bad_file(run("check-config", "--witness", path), f"{path}:1: unknown key 'node'")


@pytest.mark.parametrize(
    ("old", "new", "line", "expect"),
    [
        ('safety = "witness"', "safety = witness", 11, "TOML syntax error"),
        ('listen = "0.0.0.0:7891"', 'listen = "0.0.0.0:78910"', 4, "from 1 to 65535"),
        ('name = "lb"', 'nmae = "lb"', 15, "unknown key 'nmae' in [witness]: did you mean"),
        ('timeout = "5s"', "timeout = 5", 28, "expected a duration string"),
        ('timeout = "5s"', 'timeout = "5 seconds"', 28, "is not a duration"),
        ('preference = "standby"', "preference = true", 3, "must be 'primary' or 'standby'"),
        ("port = 110", "port = 0", 27, "check[0].port: must be greater than or equal to 1"),
        ('[witness]\nname = "lb"\naddress = "10.0.0.9:7899"\n', "", 11, "needs a [witness]"),
        ('name = "cfg1"', 'name = "cfg2"', 7, "must differ"),
        ('[node]\nname = "cfg2"', '[nodes]\nname = "cfg2"', 1, "unknown key 'nodes'"),
    ],
)
def test_bad_file_is_one_line_with_file_and_line(
    cfgdir: Path, old: str, new: str, line: int, expect: str
) -> None:
    assert old in NODE
    path = write(cfgdir, NODE.replace(old, new, 1))
    result = run("check-config", path)
    assert_bad_file(result, f"{path}:{line}: ")
    assert expect in result.stderr


@pytest.mark.parametrize(
    ("content", "line", "expect"),
    [
        (b"", 1, "the file is empty"),
        (b"[node]\n\0\0\0", 2, "binary"),
        (b"[node]\nname = '\xff'\n", 2, "UTF-8"),
    ],
)
def test_bad_file_contents(tmp_path: Path, content: bytes, line: int, expect: str) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(content)
    result = run("check-config", path)
    assert_bad_file(result, f"{path}:{line}: ")
    assert expect in result.stderr


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert_bad_file(run("check-config", tmp_path / "nope"), f"{tmp_path / 'nope'}: no such file")
    assert_bad_file(run("check-config", tmp_path), f"{tmp_path}: is a directory")


def test_unreadable_file(cfgdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(cfgdir, NODE)

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert_bad_file(run("check-config", path), f"{path}: permission denied")


@pytest.mark.parametrize(
    ("content", "mode", "expect"),
    [
        (SECRET, 0o644, "chmod 600"),
        (SECRET[:20], 0o600, "holds 20 bytes"),
        (None, 0o600, "no such file: create it with: head -c 64 /dev/urandom"),
    ],
)
def test_bad_secret_file_is_named_but_never_shown(
    cfgdir: Path, content: bytes | None, mode: int, expect: str
) -> None:
    secret = cfgdir / "secret"
    if content is None:
        secret.unlink()
    else:
        secret.write_bytes(content)
        secret.chmod(mode)
    path = write(cfgdir, NODE)
    result = run("check-config", path)
    assert_bad_file(result, f"{path}:12: cluster.secret_file {secret}: ")
    assert expect in result.stderr
    assert SECRET[:20].decode() not in result.stderr


# -- import-legacy ----------------------------------------------------------------------


def test_import_legacy_prints_toml_and_warns_on_stderr_without_the_password() -> None:
    result = run("import-legacy", SEED, "--role", "standby")
    assert result.exit_code == 0, result.output
    assert 'preference = "standby"' in result.stdout
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"{SEED}:12: warning: RLOGIN_USER and RLOGIN_PASS dropped")
    assert "Xfoo" not in result.output


@pytest.mark.parametrize("role", ["primary", "standby"])
def test_import_legacy_output_passes_check_config(tmp_path: Path, role: str) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    toml = run("import-legacy", SEED, "--role", role).stdout
    path = write(tmp_path, toml.replace(SECRET_PATH, str(secret)))
    result = run("check-config", path)
    assert result.exit_code == 0, result.output
    assert "Safety mode: cooperative" in result.stdout
    assert "cp-isp.access.ch" in result.stdout
    assert "Worst case from a primary failure" in result.stdout


def test_import_legacy_error_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "failover_config.txt"
    path.write_text(SEED.read_text().replace("60 ,", "$timeout ,"))
    result = run("import-legacy", path, "--role", "standby")
    assert_bad_file(result, f"{path}:8: $timeout is a Perl variable")


def test_import_legacy_missing_file(tmp_path: Path) -> None:
    result = run("import-legacy", tmp_path / "nope.txt", "--role", "primary")
    assert_bad_file(result, f"{tmp_path / 'nope.txt'}: no such file")


def test_import_legacy_needs_a_role() -> None:
    result = run("import-legacy", SEED)
    assert result.exit_code == 2
    assert "--role" in result.stderr


def test_help_texts_speak_to_the_operator() -> None:
    out = run("--help").stdout
    assert "check-config" in out and "import-legacy" in out
    assert "worst-case time" in run("check-config", "--help").stdout
    assert "RLOGIN_PASS" in run("import-legacy", "--help").stdout
