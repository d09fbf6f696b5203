"""status, maintenance, switchover, failback, history and explain, as an operator runs them.

Against a real ApiServer on a free loopback port with a fake daemon behind
it, and against ports where no daemon answers.
"""

import contextlib
import json
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_daemon import HISTORY, SECRET, FakeHandle, status_doc, witness_doc

from failoverd.api import ApiServer
from failoverd.cli import ops_cmds
from failoverd.cli.main import cli
from failoverd.core.events import Operation
from failoverd.runtime.handle import OperationResult

NODE = """\
[node]
name = "cfg1"
preference = "primary"
listen = "127.0.0.1:7890"
api = "{api}"

[peer]
name = "cfg2"
addresses = ["127.0.0.1:7891"]

[cluster]
safety = "cooperative"
secret_file = "secret"
"""


def write_config(
    directory: Path, api: str, secret: bytes = SECRET, *, peer_api: str | None = None
) -> Path:
    secret_file = directory / "secret"
    secret_file.write_bytes(secret)
    secret_file.chmod(0o600)
    config = directory / "node.toml"
    text = NODE.format(api=api)
    if peer_api is not None:
        text = text.replace("[cluster]", f'api = "{peer_api}"\n\n[cluster]')
    config.write_text(text)
    return config


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(
        cli, [*args, "-c", str(config)], env={"COLUMNS": "200", **(env or {})}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert SECRET.decode() not in result.output
    return result


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_cmds, "POLL_INTERVAL", 0.0)


@pytest.fixture
def handle() -> FakeHandle:
    return FakeHandle()


@contextlib.contextmanager
def serving(handle: FakeHandle, log: str) -> Iterator[ApiServer]:
    """A real ApiServer on a free loopback port, with `handle` behind it."""
    api = ApiServer(handle, "127.0.0.1", 0, logging.getLogger(log))
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def server(handle: FakeHandle) -> Iterator[ApiServer]:
    with serving(handle, "test.api") as api:
        yield api


@pytest.fixture
def config(tmp_path: Path, server: ApiServer) -> Path:
    return write_config(tmp_path, f"127.0.0.1:{server.port}")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused, and nobody else can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def steps(text: str) -> list[str]:
    """The lines a handover prints, without the seconds elapsed before each step."""
    return [re.sub(r"^ *[0-9]+\.[0-9]s  ", "", line) for line in lines(text)]


# -- status ----------------------------------------------------------------------------------


def test_status_shows_both_nodes_safety_lease_failover_and_checks(config: Path) -> None:
    result = run(config, "status")
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert out[0].split() == ["cfg1", "(this", "node,", "primary)", "cfg2", "(peer)"]
    assert out[1].split() == ["state", "active", "standby"]
    assert out[2].split() == ["epoch", "3", "3"]
    # A standby's own service checks do not count: its service is stopped.
    assert out[3].split() == ["service", "checks", "pass", "not", "counted", "while", "standby"]
    assert out[4].split() == ["maintenance", "off", "off"]
    assert "Safety mode: witness" in out
    assert "never two active nodes, even when partitioned" in out
    assert "Lease: 4.2s left, granted by cfg1, lb" in out
    assert "Witness lb sees cfg2: standby, checks pass, 0.3s ago" in out
    assert (
        "Last failover: 2026-11-24 17:00:00.000 UTC (took 2.5s): cfg2's pop3 check failed 3 times"
        in out
    )
    checks = [line.split(None, 3) for line in out[out.index("Checks") + 2 :][:2]]
    assert checks == [
        ["pop3-local", "cfg1", "up", "+OK ready"],
        ["peer-pop3", "cfg2", "DOWN", "connection refused"],
    ]
    assert out[-1] == "failoverd 0.1.0, pid 4242, up 1h 02m"


def test_status_shows_a_failing_check_an_unheard_peer_and_maintenance(
    config: Path, handle: FakeHandle
) -> None:
    doc = status_doc("standby", None)
    doc["node"]["maintenance"] = True
    doc["node"]["local_checks"][0].update(up=False, detail="timed out after 5s")
    doc["peer"].update(epoch=None, age=None, checks_ok=None, maintenance=None)
    doc["last_failover"] = {"time": None, "reason": None, "duration": None}
    handle.snapshots = [doc]
    out = lines(run(config, "status").stdout)
    assert out[1].split() == ["state", "standby", "unknown"]
    assert out[2].split() == ["epoch", "3", "-"]
    assert out[3].split() == [
        "service",
        "checks",
        "not",
        "counted",
        "while",
        "standby",
        "not",
        "counted",
        "while",
        "unknown",
    ]
    assert out[4].split() == ["maintenance", "on:", "watches,", "never", "acts", "unknown"]
    assert out[5].split() == ["last", "heard", "-", "never"]
    assert "Last failover: none recorded" in out
    assert any(line.split()[:3] == ["pop3-local", "cfg1", "DOWN"] for line in out)


def test_status_shows_a_unix_failover_time_in_utc(config: Path, handle: FakeHandle) -> None:
    doc = status_doc()
    doc["last_failover"]["time"] = 1795542957.018
    handle.snapshots = [doc]
    assert "Last failover: 2026-11-24 17:55:57.018 UTC (took 2.5s)" in run(config, "status").stdout


def test_status_json_is_the_daemons_document(config: Path) -> None:
    result = run(config, "status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == status_doc()


def test_status_finds_the_config_through_the_environment(config: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--json"], env={"FAILOVERD_CONFIG": str(config)})
    assert result.exit_code == 0
    assert json.loads(result.stdout) == status_doc()


def test_an_unexpected_status_document_is_one_line(config: Path, handle: FakeHandle) -> None:
    handle.snapshots = [{"node": {"name": "cfg1"}}]
    result = run(config, "status")
    assert result.exit_code == 1
    assert result.stderr == (
        "failoverd status: the daemon's status is not what this failoverd expects "
        "(another version?): add --json to see it as it is\n"
    )


@pytest.fixture
def peer_handle() -> FakeHandle:
    """cfg2's daemon: the standby, which sees cfg1 active."""
    handle = FakeHandle()
    handle.snapshots = [
        status_doc("standby", "active", node="cfg2", peer="cfg1", preference="standby")
    ]
    return handle


@pytest.fixture
def peer_server(peer_handle: FakeHandle) -> Iterator[ApiServer]:
    with serving(peer_handle, "test.peer-api") as api:
        yield api


def test_status_adds_what_the_peers_own_daemon_says(
    tmp_path: Path, server: ApiServer, peer_server: ApiServer
) -> None:
    config = write_config(
        tmp_path, f"127.0.0.1:{server.port}", peer_api=f"127.0.0.1:{peer_server.port}"
    )
    result = run(config, "status")
    assert result.exit_code == 0, result.output
    assert (
        f"cfg2's own daemon (peer.api 127.0.0.1:{peer_server.port}): standby, epoch 3; "
        "it sees cfg1 active; failoverd 0.1.0, up 1h 02m"
    ) in lines(result.stdout)
    assert "both say" not in result.stdout


def test_status_shows_where_the_peer_contradicts_this_node(
    tmp_path: Path, server: ApiServer, peer_server: ApiServer, peer_handle: FakeHandle
) -> None:
    config = write_config(
        tmp_path, f"127.0.0.1:{server.port}", peer_api=f"127.0.0.1:{peer_server.port}"
    )
    peer_handle.snapshots = [status_doc("active", "active", node="cfg2", peer="cfg1")]
    assert "cfg1 and cfg2 both say they are active" in lines(run(config, "status").stdout)
    peer_handle.snapshots = [status_doc("taking_over", "active", node="cfg2", peer="cfg1")]
    out = lines(run(config, "status").stdout)
    assert "(this node's last news of cfg2: standby)" in out


def test_status_names_a_peer_api_that_points_at_the_wrong_daemon(
    tmp_path: Path, server: ApiServer
) -> None:
    address = f"127.0.0.1:{server.port}"
    out = lines(run(write_config(tmp_path, address, peer_api=address), "status").stdout)
    assert "peer.api answers as 'cfg1', not 'cfg2': point peer.api at the peer's node.api" in out


def test_a_silent_peer_is_shown_and_status_still_exits_0(
    tmp_path: Path, server: ApiServer, closed_port: int
) -> None:
    config = write_config(tmp_path, f"127.0.0.1:{server.port}", peer_api=f"127.0.0.1:{closed_port}")
    result = run(config, "status")
    assert result.exit_code == 0, result.output
    assert any(
        line.startswith(f"cfg2's own daemon (peer.api 127.0.0.1:{closed_port}): no answer: ")
        for line in lines(result.stdout)
    )
    doc = json.loads(run(config, "status", "--json").stdout)
    assert doc["peer_api"]["status"] is None
    assert doc["peer_api"]["error"].startswith(f"no daemon answers at 127.0.0.1:{closed_port}")
    assert {k: v for k, v in doc.items() if k != "peer_api"} == status_doc()


def test_a_hung_peer_is_waited_for_only_the_peer_timeout(
    tmp_path: Path, server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops_cmds, "PEER_TIMEOUT", 0.2)
    with socket.socket() as hung:  # accepts connections (the backlog) but never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        peer = f"127.0.0.1:{hung.getsockname()[1]}"
        config = write_config(tmp_path, f"127.0.0.1:{server.port}", peer_api=peer)
        result = run(config, "status")
    assert result.exit_code == 0, result.output
    assert f"the daemon at {peer} did not answer within 200ms" in result.stdout


def test_status_json_carries_the_peers_own_document(
    tmp_path: Path, server: ApiServer, peer_server: ApiServer, peer_handle: FakeHandle
) -> None:
    config = write_config(
        tmp_path, f"127.0.0.1:{server.port}", peer_api=f"127.0.0.1:{peer_server.port}"
    )
    doc = json.loads(run(config, "status", "--json").stdout)
    assert doc["peer_api"] == {
        "address": f"127.0.0.1:{peer_server.port}",
        "status": peer_handle.snapshot(),
        "error": None,
    }


def test_the_any_address_is_reached_on_loopback(tmp_path: Path, server: ApiServer) -> None:
    config = write_config(tmp_path, f"0.0.0.0:{server.port}")
    assert run(config, "status", "--json").exit_code == 0


@pytest.mark.parametrize(
    ("host", "address"),
    [("0.0.0.0", "127.0.0.1:8790"), ("::", "[::1]:8790"), ("fd00::2", "[fd00::2]:8790")],
)
def test_the_client_names_the_address_it_calls(host: str, address: str) -> None:
    assert ops_cmds.ApiClient(host, 8790, Path("secret"), 1.0).address == address


def test_proxies_from_the_environment_are_ignored(config: Path, closed_port: int) -> None:
    proxy = f"http://127.0.0.1:{closed_port}"
    result = run(config, "status", "--json", env={"http_proxy": proxy, "HTTP_PROXY": proxy})
    assert result.exit_code == 0


# -- history and explain ---------------------------------------------------------------------


def test_history_shows_each_event_with_its_reason(config: Path, handle: FakeHandle) -> None:
    result = run(config, "history", "--limit", "2")
    assert result.exit_code == 0
    out = lines(result.stdout)
    assert out[0].split() == ["time", "(UTC)", "node", "kind", "from", "→", "to", "epoch", "reason"]
    assert out[1].split() == [
        "2026-11-24", "17:00:03.000", "cfg1", "transition", "standby", "→", "active", "3",
        "reason", "number", "3",
    ]  # fmt: skip
    assert out[2].split()[-3:] == ["reason", "number", "4"]
    assert len(out) == 3
    assert handle.limits == [2]


def test_history_on_80_columns_wraps_and_loses_no_word(config: Path, handle: FakeHandle) -> None:
    reason = (
        "starting services at epoch 1: cooperative mode, cfg2: 127.0.0.1:17891: "
        "[Errno 111] Connect call failed ('127.0.0.1', 17891)"
    )
    record = HISTORY[0] | {"from": "taking_over", "to": "active", "reason": reason}
    handle.history = lambda limit: [record]  # type: ignore[method-assign]
    result = run(config, "history", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line) for line in lines(result.stdout)) <= 80
    words = result.stdout.split()
    assert [w for w in reason.split() if w not in words] == []
    assert {"2026-11-24", "17:00:00.000", "taking_over", "active"} <= set(words)


def test_history_json_is_the_journal(config: Path) -> None:
    result = run(config, "history", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == HISTORY[-20:]


def test_history_with_no_events_says_so(config: Path, handle: FakeHandle) -> None:
    handle.history = lambda limit: []  # type: ignore[method-assign]
    assert run(config, "history").stdout == "no events recorded yet\n"


def test_a_bad_history_limit_is_bad_usage(config: Path, handle: FakeHandle) -> None:
    result = run(config, "history", "--limit", "0")
    assert result.exit_code == 2
    assert handle.limits == []


def test_explain_prints_the_sentences(config: Path) -> None:
    result = run(config, "explain")
    assert result.exit_code == 0
    assert result.stdout == "cfg1 is active: it holds the lease (cfg1, lb).\nIts checks pass.\n"


# -- operations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "op"), [("on", Operation.MAINTENANCE_ON), ("off", Operation.MAINTENANCE_OFF)]
)
def test_maintenance_asks_the_daemon_signed(
    config: Path, handle: FakeHandle, mode: str, op: Operation
) -> None:
    handle.result = OperationResult(True, f"maintenance is {mode}")
    result = run(config, "maintenance", mode)
    assert (result.exit_code, result.stdout) == (0, f"maintenance is {mode}\n")
    assert [o for o, _ in handle.operations] == [op]


def test_a_refused_operation_exits_1_with_the_daemons_reason(
    config: Path, handle: FakeHandle
) -> None:
    handle.result = OperationResult(False, "already in maintenance")
    result = run(config, "maintenance", "on")
    assert result.exit_code == 1
    assert result.stderr == "failoverd maintenance: already in maintenance\n"


def test_a_wrong_secret_is_refused_and_not_shown(tmp_path: Path, server: ApiServer) -> None:
    wrong = b"not-the-cluster-secret-" + b"w" * 24
    config = write_config(tmp_path, f"127.0.0.1:{server.port}", secret=wrong)
    result = run(config, "switchover")
    assert result.exit_code == 1
    assert result.stderr == (
        "failoverd switchover: the daemon refused the request: invalid X-Failoverd-Auth header: "
        "signed with another secret, or the clocks of the client and this node differ too much "
        "(does cluster.secret_file hold the daemon's secret, and do both clocks show the right "
        "time?)\n"
    )
    assert wrong.decode() not in result.output


def test_switchover_prints_each_step_until_the_peer_is_active(
    config: Path, handle: FakeHandle
) -> None:
    handle.result = OperationResult(True, "switchover started: cfg1 hands over to cfg2")
    handle.snapshots = [
        status_doc("active", "standby"),
        status_doc("releasing", "standby"),
        status_doc("releasing", "standby"),  # nothing new: no line
        status_doc("standby", "taking_over"),
        status_doc("standby", "active", epoch=4),
    ]
    result = run(config, "switchover")
    assert result.exit_code == 0, result.output
    *done, last = steps(result.stdout)
    assert done == [
        "switchover started: cfg1 hands over to cfg2",
        "following the handover to cfg2 (up to 60s):",
        "cfg1: active → releasing: stops the service (shutdown or demote scripts)",
        "cfg1: releasing → standby: watches its peer",
        "cfg2: standby → taking_over: takes the service over",
        "cfg2: taking_over → active: runs the service",
    ]
    assert re.fullmatch(r"done in [0-9.]+s: cfg2 is active \(epoch 4\), cfg1 is standby", last)
    assert [o for o, _ in handle.operations] == [Operation.SWITCHOVER]


def test_switchover_from_the_standby_moves_the_service_here(
    config: Path, handle: FakeHandle
) -> None:
    handle.snapshots = [status_doc("standby", "active"), status_doc("active", "standby")]
    result = run(config, "switchover")
    assert result.exit_code == 0
    assert "following the handover to cfg1" in result.stdout


def test_switchover_no_wait_only_asks(config: Path, handle: FakeHandle) -> None:
    handle.snapshots = [status_doc(), status_doc("failed")]
    result = run(config, "switchover", "--no-wait")
    assert (result.exit_code, result.stdout) == (0, "done\n")
    assert handle.snapshots == [status_doc(), status_doc("failed")]  # /status never read
    assert [o for o, _ in handle.operations] == [Operation.SWITCHOVER]


def test_switchover_not_done_in_time_exits_1(config: Path, handle: FakeHandle) -> None:
    result = run(config, "switchover", "--timeout", "200ms")
    assert result.exit_code == 1
    assert result.stderr == (
        "failoverd switchover: cfg2 is not the only active node after 200ms (cfg1 is active, "
        "cfg2 is standby): see `failoverd status` and `failoverd history`\n"
    )


def test_a_bad_timeout_is_bad_usage(config: Path, handle: FakeHandle) -> None:
    result = run(config, "switchover", "--timeout", "60")
    assert result.exit_code == 2
    assert "'60' is not a duration" in result.stderr
    assert handle.operations == []


def test_failback_prints_the_operation_sheet_as_it_happens(
    config: Path, handle: FakeHandle
) -> None:
    handle.result = OperationResult(True, "failback started")
    handle.snapshots = [
        status_doc("standby", "active"),
        status_doc("standby", "releasing"),
        status_doc("standby", "standby"),
        status_doc("taking_over", "standby", phase="asking_peer"),
        status_doc("taking_over", "standby", phase="starting_services"),
        status_doc("active", "standby", epoch=5),
    ]
    result = run(config, "failback")
    assert result.exit_code == 0, result.output
    *done, last = steps(result.stdout)
    assert done == [
        "failback started",
        "following the handover to cfg1 (up to 60s):",
        "cfg2: active → releasing: stops the service (shutdown or demote scripts)",
        "cfg2: releasing → standby: watches its peer",
        "cfg1: standby → taking_over: takes the service over",
        "cfg1: asks its peer to stop the service (SHUTDOWN_YOUR_SERVICE)",
        "cfg1: starts the service (startup scripts)",
        "cfg1: taking_over → active: runs the service",
    ]
    assert re.fullmatch(r"done in [0-9.]+s: cfg1 is active \(epoch 5\), cfg2 is standby", last)
    assert [o for o, _ in handle.operations] == [Operation.FAILBACK]


def test_failback_stops_when_a_node_fails(config: Path, handle: FakeHandle) -> None:
    handle.snapshots = [status_doc("standby", "active"), status_doc("failed", "standby")]
    result = run(config, "failback")
    assert result.exit_code == 1
    assert "cfg1: standby → failed: its scripts failed, it needs an operator" in result.stdout
    assert result.stderr == (
        "failoverd failback: cfg1 failed: see `failoverd explain` and `failoverd history`\n"
    )


@pytest.mark.parametrize(
    "command", ["status", "maintenance", "switchover", "failback", "history", "explain"]
)
def test_every_command_explains_itself(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert "-c, --config FILE" in result.stdout
    assert "FAILOVERD_CONFIG" in result.stdout


# -- no daemon, bad configuration ------------------------------------------------------------

COMMANDS = [
    ["status"], ["status", "--json"], ["history"], ["explain"], ["maintenance", "on"],
    ["switchover"], ["switchover", "--no-wait"], ["failback"],
]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS)
def test_no_daemon_is_one_line_and_exit_1(
    tmp_path: Path, closed_port: int, args: list[str]
) -> None:
    result = run(write_config(tmp_path, f"127.0.0.1:{closed_port}"), *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"failoverd {args[0]}: no daemon answers at 127.0.0.1:{closed_port} "
        "(is `failoverd run` running? see `journalctl -u failoverd`)\n"
    )


def test_a_hung_daemon_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops_cmds, "REQUEST_TIMEOUT", 0.2)
    with socket.socket() as hung:  # accepts connections (the backlog) but never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        port = hung.getsockname()[1]
        result = run(write_config(tmp_path, f"127.0.0.1:{port}"), "status")
    assert result.exit_code == 1
    assert result.stderr == (
        f"failoverd status: the daemon at 127.0.0.1:{port} did not answer within 200ms "
        "(is it hung? see `journalctl -u failoverd`)\n"
    )


@pytest.mark.parametrize("args", COMMANDS)
def test_a_bad_config_is_its_file_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    config = write_config(tmp_path, "127.0.0.1:99999")
    result = run(config, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = lines(result.stderr)
    assert line.startswith(f"{config}:5: ")
    assert "65535" in line


def test_a_missing_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run(tmp_path / "nope.toml", "status")
    assert result.exit_code == 2
    assert result.stderr == f"{tmp_path / 'nope.toml'}: no such file: check the path\n"


def test_an_unreadable_secret_is_exit_2_and_never_shown(tmp_path: Path, server: ApiServer) -> None:
    config = write_config(tmp_path, f"127.0.0.1:{server.port}")
    (tmp_path / "secret").chmod(0o644)
    result = run(config, "maintenance", "on")
    assert result.exit_code == 2
    [line] = lines(result.stderr)
    assert "chmod 600" in line


# -- the witness -----------------------------------------------------------------------------

WITNESS = """\
[witness]
name = "lb"
listen = "127.0.0.1:7899"
nodes = ["cfg1", "cfg2"]
{api}
[cluster]
secret_file = "secret"
"""


def write_witness_config(directory: Path, api: str | None) -> Path:
    write_config(directory, "127.0.0.1:1")  # for its secret file
    config = directory / "witness.toml"
    config.write_text(WITNESS.format(api="" if api is None else f'api = "{api}"\n'))
    return config


@pytest.fixture
def witness_config(tmp_path: Path, server: ApiServer, handle: FakeHandle) -> Path:
    handle.snapshots = [witness_doc()]
    return write_witness_config(tmp_path, f"127.0.0.1:{server.port}")


def test_status_of_a_witness_shows_its_vote_and_its_news_of_the_nodes(
    witness_config: Path,
) -> None:
    result = run(witness_config, "status")
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    assert out[:2] == [
        "Witness lb: vote held by cfg1 (epoch 3) for 2.9s more",
        "Highest epoch voted for: 3",
    ]
    table = out[out.index("") + 1 :][:3]
    assert [row.split() for row in table] == [
        ["node", "state", "epoch", "last", "heard", "service", "checks"],
        ["cfg1", "active", "3", "0.1s", "ago", "pass"],
        ["cfg2", "standby", "3", "0.4s", "ago", "unknown"],
    ]
    assert out[-1] == "failoverd 0.1.0, pid 4343, up 59.0s"


def test_status_of_a_just_started_witness_says_it_grants_nothing_yet(
    witness_config: Path, handle: FakeHandle
) -> None:
    handle.snapshots = [witness_doc(holder=None, quiet_left=4.5)]
    out = lines(run(witness_config, "status").stdout)
    assert out[0] == "Witness lb: no vote held"
    assert out[2].startswith("Just started: grants no vote for 4.5s more")


def test_status_json_history_and_explain_read_the_witness(
    witness_config: Path, handle: FakeHandle
) -> None:
    assert json.loads(run(witness_config, "status", "--json").stdout) == witness_doc()
    assert json.loads(run(witness_config, "history", "--json").stdout) == HISTORY[-20:]
    assert run(witness_config, "explain").exit_code == 0


@pytest.mark.parametrize(
    "args", [["maintenance", "on"], ["switchover"], ["switchover", "--no-wait"], ["failback"]]
)
def test_a_witness_takes_no_operator_commands(
    witness_config: Path, handle: FakeHandle, args: list[str]
) -> None:
    result = run(witness_config, *args)
    assert result.exit_code == 2
    assert result.stderr == (
        f"{witness_config}: a witness's configuration, and a witness takes no operator "
        "commands: run this on a node, with -c the node's configuration\n"
    )
    assert handle.operations == []


def test_a_witness_without_an_api_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_witness_config(tmp_path, None)
    result = run(config, "status")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{config}: witness.api is not set")
    assert result.stderr.count("\n") == 1
