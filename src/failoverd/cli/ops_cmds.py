"""The operator's commands: status, maintenance, switchover, failback, history, explain.

Each one asks the local daemon's HTTP API (node.api in the configuration);
the control commands sign their request with the cluster secret. Given a
witness's file, status, history and explain ask the witness (witness.api). Exit codes:
0 done, 1 the daemon refused or failed the operation or does not answer,
2 bad usage or a bad configuration file; every failure is one line on stderr.

The calls use urllib: each command makes a few synchronous requests, so an
event loop and aiohttp's client session would only add start-up time and
code. Proxies from the environment (http_proxy) are ignored on purpose: the
API is on the node itself or on its admin network, never behind a proxy.
"""

import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from failoverd import apiauth
from failoverd.cli.main import cli
from failoverd.config.durations import DurationError, format_duration, parse_duration
from failoverd.config.errors import ConfigError, ConfigWarning
from failoverd.config.load import load_config, read_secret_file
from failoverd.config.schema import NodeConfig, WitnessConfig, split_address
from failoverd.core.events import Operation

DEFAULT_CONFIG = Path("/etc/failoverd/failoverd.toml")
REQUEST_TIMEOUT = 15.0
"""Seconds to wait for an answer; above the API's 10 s for an operation to be taken."""
PEER_TIMEOUT = 3.0
"""Seconds `status` waits for the peer's API: a dead peer's host may not even refuse."""
POLL_INTERVAL = 0.5
"""Seconds between two looks at /status while waiting for a switchover or failback."""
FAILED = 1
BAD_INPUT = 2

_PATHS = {op: path for path, op in apiauth.CONTROL_PATHS.items()}
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1"}
_STATE_STYLE = {"active": "bold green", "failed": "bold red", "releasing": "yellow"}
_STATE_NOTE = {
    "standby": "watches its peer",
    "taking_over": "takes the service over",
    "active": "runs the service",
    "releasing": "stops the service (shutdown or demote scripts)",
    "failed": "its scripts failed, it needs an operator",
    "starting": "starting up",
}
_PHASE_NOTE = {
    "asking_peer": "asks its peer to stop the service (SHUTDOWN_YOUR_SERVICE)",
    "fencing": "fences its peer (fence command)",
    "acquiring_lease": "asks for the lease (votes of peer and witness)",
    "starting_services": "starts the service (startup scripts)",
}
T = TypeVar("T")
Config = NodeConfig | WitnessConfig


class OpsError(Exception):
    """A command that could not do its job: one line for stderr, exit 1."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A control endpoint's answer: whether the daemon did it, and what it says."""

    ok: bool
    message: str


class ApiClient:
    """The local daemon's HTTP API, as the CLI uses it."""

    def __init__(self, host: str, port: int, secret_file: Path, timeout: float) -> None:
        host = _ANY_ADDRESS.get(host, host)
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.secret_file = secret_file
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path: str) -> Any:
        """The JSON document at `path`."""
        status, body = self._request("GET", path, b"", {})
        if status != 200:
            raise OpsError(
                f"the daemon at {self.address} answered GET {path} with {status}: "
                f"{_first_line(body)}"
            )
        try:
            return json.loads(body)
        except ValueError:
            raise OpsError(
                f"the daemon at {self.address} answered GET {path} with something not JSON"
            ) from None

    def post(self, path: str) -> Reply:
        """Ask for an operation, signed with the cluster secret (read only now)."""
        body = json.dumps({"nonce": secrets.token_hex(16)}).encode()  # no two requests alike
        auth = apiauth.sign(read_secret_file(self.secret_file), "POST", path, body, time.time())
        headers = {"Content-Type": "application/json", apiauth.HEADER: auth}
        status, answer = self._request("POST", path, body, headers)
        try:
            data = json.loads(answer)
            reply = Reply(bool(data["ok"]), str(data["message"]))
        except (ValueError, TypeError, KeyError):
            raise OpsError(
                f"the daemon at {self.address} answered POST {path} with {status}: "
                f"{_first_line(answer)}"
            ) from None
        if status == 401:
            raise OpsError(
                f"the daemon refused the request: {reply.message} (does cluster.secret_file "
                "hold the daemon's secret, and do both clocks show the right time?)"
            )
        if status not in (200, 409):
            raise OpsError(f"the daemon answered {status}: {reply.message}")
        return reply

    def _request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://{self.address}{path}",
            data=body if method == "POST" else None,
            headers=dict(headers),
            method=method,
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read()
        except urllib.error.URLError as e:
            raise self._unreachable(e.reason) from None
        except (OSError, http.client.HTTPException) as e:
            raise self._unreachable(e) from None

    def _unreachable(self, reason: object) -> OpsError:
        hint = "(is `failoverd run` running? see `journalctl -u failoverd`)"
        if isinstance(reason, ConnectionRefusedError):
            return OpsError(f"no daemon answers at {self.address} {hint}")
        if isinstance(reason, TimeoutError):
            return OpsError(
                f"the daemon at {self.address} did not answer within "
                f"{format_duration(self.timeout)} (is it hung? see `journalctl -u failoverd`)"
            )
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return OpsError(f"cannot reach the daemon at {self.address}: {text} {hint}")


def _first_line(body: bytes) -> str:
    lines = body.decode("utf-8", "replace").strip().splitlines()
    return lines[0][:200] if lines else "(empty)"


class _OpsCommand(click.Command):
    """Turns the commands' failures into one line on stderr and the exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as e:
            click.echo(str(e), err=True)
            ctx.exit(BAD_INPUT)
        except OpsError as e:
            click.echo(f"failoverd {ctx.info_name}: {e}", err=True)
            ctx.exit(FAILED)


class _Duration(click.ParamType[float, str | float]):
    name = "duration"

    def convert(
        self, value: str | float, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except DurationError as e:
            self.fail(str(e), param, ctx)


def _ignore(_: ConfigWarning) -> None:
    """check-config shows the warnings; here they would only clutter the answer."""


def _at(address: str, cfg: Config, timeout: float) -> ApiClient:
    host, port = split_address(address)
    return ApiClient(host, port, cfg.cluster.secret_file, timeout)


def _client(config: Path) -> ApiClient:
    """This node's daemon (node.api), for the commands that change something."""
    cfg = load_config(config, on_warning=_ignore)
    if isinstance(cfg, WitnessConfig):
        raise ConfigError(
            config,
            None,
            "a witness's configuration, and a witness takes no operator commands: "
            "run this on a node, with -c the node's configuration",
        )
    return _at(cfg.node.api, cfg, REQUEST_TIMEOUT)


def _reader(config: Path, cfg: Config) -> ApiClient:
    """The daemon whose state to show: this node's (node.api), or the witness's (witness.api)
    when `config` is a witness's file."""
    if isinstance(cfg, NodeConfig):
        return _at(cfg.node.api, cfg, REQUEST_TIMEOUT)
    if cfg.witness.api is None:
        raise ConfigError(
            config,
            None,
            "witness.api is not set, so this witness has no API to ask: set it in [witness] "
            '(e.g. api = "127.0.0.1:8791") and restart the witness',
        )
    return _at(cfg.witness.api, cfg, REQUEST_TIMEOUT)


def _read(config: Path, path: str) -> Any:
    """GET `path` from the daemon that `config` (a node's or a witness's file) names."""
    return _reader(config, load_config(config, on_warning=_ignore)).get(path)


F = TypeVar("F", bound=Callable[..., Any])


def _config_option(f: F) -> F:
    return click.option(
        "-c",
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        default=DEFAULT_CONFIG,
        envvar="FAILOVERD_CONFIG",
        show_default=True,
        show_envvar=True,
        help="This node's configuration: where its API listens (node.api) and the cluster "
        "secret (cluster.secret_file) that signs control requests.",
    )(f)


def _wait_options(f: F) -> F:
    f = click.option(
        "--timeout",
        type=_Duration(),
        default="60s",
        show_default=True,
        help="How long --wait waits, e.g. 90s or 5m.",
    )(f)
    return click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Follow the handover on /status and print each step until it is done "
        "(exit 0) or the timeout passes (exit 1).",
    )(f)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def _rendered(what: str, render: Callable[[], T]) -> T:
    """`render()`, or one line if the daemon's document lacks what it needs."""
    try:
        return render()
    except (KeyError, TypeError, AttributeError, ValueError):
        raise OpsError(
            f"the daemon's {what} is not what this failoverd expects (another version?): "
            "add --json to see it as it is"
        ) from None


# -- status ----------------------------------------------------------------------------------


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _wall(value: float | str) -> str:
    """A wall-clock time, unix seconds or ISO 8601 (as in the journal), as UTC for people."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, tz=UTC).isoformat(timespec="milliseconds")
    return value.replace("T", " ").replace("+00:00", " UTC").replace("Z", " UTC")


def _state(state: str | None) -> Text:
    if state is None:
        return Text("unknown", style="dim")
    return Text(state, style=_STATE_STYLE.get(state, ""))


def _yes_no(value: bool | None, yes: str, no: str) -> Text:
    if value is None:
        return Text("unknown", style="dim")
    return Text(yes, style="green") if value else Text(no, style="bold red")


def _check_result(up: bool | None) -> Text:
    return Text("not run yet", style="dim") if up is None else _yes_no(up, "up", "DOWN")


def _all_up(checks: list[Mapping[str, Any]]) -> bool | None:
    """False if a check is down, True if all are up, None if some have no result yet."""
    results = [c["up"] for c in checks]
    if False in results:
        return False
    return None if None in results else True


def _service_checks(state: str | None, ok: bool | None, configured: bool) -> Text:
    """A node's own service checks count only while it runs the service."""
    if not configured:
        return Text("none", style="dim")
    if state != "active":
        return Text(f"not counted while {state or 'unknown'}", style="dim")
    return _yes_no(ok, "pass", "FAIL")


def _nodes_table(snap: Mapping[str, Any]) -> Table:
    node, peer = snap["node"], snap["peer"]
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("")
    table.add_column(f"{node['name']} (this node, {node['preference']})")
    table.add_column(f"{peer['name']} (peer)")
    on_off = {True: "on: watches, never acts", False: "off", None: "unknown"}
    local = node["local_checks"]
    table.add_row("state", _state(node["state"]), _state(peer["state"]))
    table.add_row("epoch", str(node["epoch"]), "-" if peer["epoch"] is None else str(peer["epoch"]))
    table.add_row(
        "service checks",
        _service_checks(node["state"], _all_up(local) if local else None, bool(local)),
        _service_checks(peer["state"], peer["checks_ok"], True),
    )
    table.add_row("maintenance", on_off[node["maintenance"]], on_off[peer["maintenance"]])
    table.add_row("last heard", "-", "never" if peer["age"] is None else f"{_ago(peer['age'])} ago")
    return table


def _checks_table(snap: Mapping[str, Any]) -> Table | None:
    rows = [(snap["node"]["name"], c) for c in snap["node"]["local_checks"]]
    rows += [(snap["peer"]["name"], c) for c in snap["peer"]["remote_checks"]]
    if not rows:
        return None
    table = Table(title="Checks", title_justify="left", box=None, pad_edge=False)
    for column in ("check", "service of", "result", "detail"):
        table.add_column(column, header_style="bold")
    for owner, check in rows:
        table.add_row(check["name"], owner, _check_result(check["up"]), check["detail"])
    return table


def _status_lines(snap: Mapping[str, Any]) -> list[Text]:
    node, witness, last = snap["node"], snap["witness"], snap["last_failover"]
    lines = [
        Text.assemble(("Safety mode: ", "bold"), (snap["safety"]["mode"], "bold")),
        Text(snap["safety"]["summary"]),
    ]
    if node["lease_left"] is not None:
        voters = ", ".join(node["lease_voters"]) or "none"
        lines.append(Text(f"Lease: {_ago(node['lease_left'])} left, granted by {voters}"))
    if node["takeover_phase"] is not None:
        lines.append(Text(f"Takeover: {_PHASE_NOTE.get(node['takeover_phase'], '')}".rstrip()))
    if witness["name"] is not None:
        view = witness["view_of_peer"]
        seen = (
            "no opinion received"
            if view is None
            else f"{view['state'] or 'unknown'}, checks "
            f"{'unknown' if view['checks_ok'] is None else 'pass' if view['checks_ok'] else 'FAIL'}"
            f", {_ago(view['age'])} ago"
        )
        lines.append(Text(f"Witness {witness['name']} sees {snap['peer']['name']}: {seen}"))
    if last["time"] is None:
        lines.append(Text("Last failover: none recorded"))
    else:
        took = "" if last["duration"] is None else f" (took {_ago(last['duration'])})"
        lines.append(Text(f"Last failover: {_wall(last['time'])}{took}: {last['reason']}"))
    if node["last_transition"]:
        lines.append(Text(f"Last transition: {node['last_transition']}"))
    return lines


def _print_status(snap: Mapping[str, Any], peer: "PeerAnswer | None") -> None:
    console = _console()
    console.print(_nodes_table(snap))
    console.print()
    for line in _status_lines(snap) + ([] if peer is None else peer.lines(snap)):
        console.print(line)
    checks = _checks_table(snap)
    if checks is not None:
        console.print()
        console.print(checks)
    console.print()
    console.print(_daemon_line(snap["daemon"]))


def _daemon_line(daemon: Mapping[str, Any]) -> Text:
    return Text(
        f"failoverd {daemon['version']}, pid {daemon['pid']}, up {_ago(daemon['uptime'])}",
        style="dim",
    )


def _print_witness_status(snap: Mapping[str, Any]) -> None:
    """The witness's vote, and its news of each node."""
    witness, vote = snap["witness"], snap["witness"]["vote"]
    console = _console()
    if vote["holder"] is None:
        console.print(Text(f"Witness {witness['name']}: no vote held", style="bold"))
    else:
        console.print(
            Text(
                f"Witness {witness['name']}: vote held by {vote['holder']} "
                f"(epoch {vote['epoch']}) for {_ago(vote['left'])} more",
                style="bold",
            )
        )
    console.print(Text(f"Highest epoch voted for: {witness['max_epoch']}"))
    if witness["quiet_left"] > 0:
        console.print(
            Text(
                f"Just started: grants no vote for {_ago(witness['quiet_left'])} more "
                "(one full lease time, so that no lease it granted before is still running)",
                style="yellow",
            )
        )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("node", "state", "epoch", "last heard", "service checks"):
        table.add_column(column)
    for node in witness["nodes"]:
        table.add_row(
            node["name"],
            _state(node["state"]),
            str(node["epoch"]),
            f"{_ago(node['age'])} ago",
            _yes_no(node["checks_ok"], "pass", "FAIL"),
        )
    console.print()
    console.print(table if witness["nodes"] else Text("No node heard yet", style="dim"))
    console.print()
    console.print(_daemon_line(snap["daemon"]))


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    """What the peer's own daemon said at peer.api: its /status, or why there is none."""

    address: str
    status: Mapping[str, Any] | None
    error: str | None

    @classmethod
    def ask(cls, cfg: NodeConfig) -> "PeerAnswer | None":
        """The peer's /status, if peer.api is set. Its silence is news, not a failure."""
        if cfg.peer.api is None:
            return None
        client = _at(cfg.peer.api, cfg, PEER_TIMEOUT)
        try:
            return cls(client.address, client.get("/status"), None)
        except OpsError as e:
            return cls(client.address, None, str(e))

    def lines(self, snap: Mapping[str, Any]) -> list[Text]:
        """One line of what the peer says of itself, and where that contradicts this node."""
        here, peer = snap["node"], snap["peer"]
        head = f"{peer['name']}'s own daemon (peer.api {self.address}): "
        if self.status is None:
            return [Text(head + f"no answer: {self.error}", style="yellow")]
        try:
            node, seen, daemon = self.status["node"], self.status["peer"], self.status["daemon"]
            said = (
                f"{node['state']}, epoch {node['epoch']}; it sees {seen['name']} "
                f"{seen['state'] or 'unknown'}; failoverd {daemon['version']}, "
                f"up {_ago(daemon['uptime'])}"
            )
        except (KeyError, TypeError, ValueError):
            return [Text(head + "a status document this failoverd does not know", style="yellow")]
        lines = [Text(head + said)]
        if node["name"] != peer["name"]:
            lines.append(
                Text(
                    f"peer.api answers as {node['name']!r}, not {peer['name']!r}: "
                    "point peer.api at the peer's node.api",
                    style="bold red",
                )
            )
        elif node["state"] == "active" and here["state"] == "active":
            lines.append(
                Text(
                    f"{here['name']} and {peer['name']} both say they are active", style="bold red"
                )
            )
        elif node["state"] != peer["state"]:
            lines.append(
                Text(
                    f"(this node's last news of {peer['name']}: {peer['state'] or 'unknown'})",
                    style="dim",
                )
            )
        return lines

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "status": self.status, "error": self.error}


@cli.command(cls=_OpsCommand, short_help="Show both nodes, the safety mode and the checks.")
@_config_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the daemon's status document as JSON (with peer.api set, the peer's own "
    "under peer_api).",
)
def status(config: Path, as_json: bool) -> None:
    """Show what this node's daemon knows right now. Changes nothing.

    Both nodes' states and epochs, the safety mode in force and what it
    guarantees, the time left on the lease, the last failover and its reason,
    each health check's result, and whether maintenance mode is on. With
    peer.api set, also what the peer's own daemon says of itself, and where
    the two disagree. Exits 0 when this node's daemon answers, 1 when it does
    not (a silent peer is shown, not an error).

    With -c a witness's configuration (witness.api set): who holds the
    witness's vote and until when, and how it last heard each node.
    """
    cfg = load_config(config, on_warning=_ignore)
    snap = _reader(config, cfg).get("/status")
    peer = PeerAnswer.ask(cfg) if isinstance(cfg, NodeConfig) else None
    if as_json:
        _echo_json(snap if peer is None else {**snap, "peer_api": peer.as_json()})
    elif isinstance(cfg, WitnessConfig):
        _rendered("status", lambda: _print_witness_status(snap))
    else:
        _rendered("status", lambda: _print_status(snap, peer))


# -- operations ------------------------------------------------------------------------------


def _operate(client: ApiClient, op: Operation) -> str:
    reply = client.post(_PATHS[op])
    if not reply.ok:
        raise OpsError(reply.message)
    return reply.message


NodeView = tuple[str | None, str | None]
"""A node's state and takeover phase (None: not known)."""
View = dict[str, NodeView]


def _states(snap: Mapping[str, Any]) -> View:
    """Each node's (state, takeover phase) as this node sees them (the peer's phase is unknown)."""
    node, peer = snap["node"], snap["peer"]
    return {
        node["name"]: (node["state"], node["takeover_phase"]),
        peer["name"]: (peer["state"], None),
    }


def _steps(name: str, old: NodeView, new: NodeView) -> list[str]:
    """The lines for a node's change of state and of takeover phase."""
    (old_state, old_phase), (state, phase) = old, new
    lines = []
    if state != old_state:
        note = _STATE_NOTE.get(state or "")
        moved = f"{name}: {old_state or 'unknown'} → {state or 'unknown'}"
        lines.append(f"{moved}: {note}" if note else moved)
    if phase != old_phase and phase:
        lines.append(f"{name}: {_PHASE_NOTE.get(phase, phase)}")
    return lines


def _follow(client: ApiClient, before: Mapping[str, Any], target: str, timeout: float) -> None:
    """Print each step until `target` alone is active; OpsError if a node fails or time is up."""
    started = time.monotonic()
    last = _states(before)
    click.echo(f"following the handover to {target} (up to {format_duration(timeout)}):")
    while True:
        snap = client.get("/status")
        elapsed = time.monotonic() - started
        now = _states(snap)
        for name, view in now.items():
            for step in _steps(name, last.get(name, (None, None)), view):
                click.echo(f"{elapsed:6.1f}s  {step}")
        last = now
        others = {name: state for name, (state, _) in now.items() if name != target}
        if now[target][0] == "active" and "active" not in others.values():
            rest = ", ".join(f"{n} is {s or 'unknown'}" for n, s in others.items())
            epoch = snap["node"]["epoch"]
            click.echo(f"done in {elapsed:.1f}s: {target} is active (epoch {epoch}), {rest}")
            return
        failed = [name for name, (state, _) in now.items() if state == "failed"]
        if failed:
            raise OpsError(
                f"{' and '.join(failed)} failed: see `failoverd explain` and `failoverd history`"
            )
        if elapsed >= timeout:
            states = ", ".join(f"{n} is {s or 'unknown'}" for n, (s, _) in now.items())
            raise OpsError(
                f"{target} is not the only active node after {format_duration(timeout)} "
                f"({states}): see `failoverd status` and `failoverd history`"
            )
        time.sleep(POLL_INTERVAL)


def _handover(config: Path, op: Operation, wait: bool, timeout: float) -> None:
    client = _client(config)
    if not wait:
        click.echo(_operate(client, op))
        return
    before = client.get("/status")
    target = _rendered("status", lambda: _target(op, before))
    click.echo(_operate(client, op))
    _rendered("status", lambda: _follow(client, before, target, timeout))


def _target(op: Operation, snap: Mapping[str, Any]) -> str:
    """Who should be active once `op` is done, from this node's view before it."""
    node, peer = snap["node"], snap["peer"]
    if op is Operation.FAILBACK:
        return str(node["name"] if node["preference"] == "primary" else peer["name"])
    return str(peer["name"] if node["state"] == "active" else node["name"])


@cli.command(cls=_OpsCommand, short_help="Turn maintenance mode on or off (watch, never act).")
@_config_option
@click.argument("mode", type=click.Choice(["on", "off"]))
def maintenance(config: Path, mode: str) -> None:
    """Turn maintenance mode on or off on this node.

    With maintenance on, the daemon keeps checking and reporting but takes no
    action: it neither takes over nor stops the service, whatever fails. Use
    it before working on the service or the servers by hand (updates,
    reboots, restarts of the service), and turn it off afterwards: until
    then there is no failover. The service keeps running where it runs.
    """
    op = Operation.MAINTENANCE_ON if mode == "on" else Operation.MAINTENANCE_OFF
    click.echo(_operate(_client(config), op))


@cli.command(cls=_OpsCommand, short_help="Move the service to the other node, gracefully.")
@_config_option
@_wait_options
def switchover(config: Path, wait: bool, timeout: float) -> None:
    """Move the service to the other node in a planned, graceful handover.

    The active node runs its shutdown scripts, then the other node runs its
    startup scripts and becomes active; the load balancer follows /health.
    Run it on either node: on the active node it hands the service to the
    peer, on the standby it takes the service over. Use it before planned
    work on the active server. The service is down for the time the scripts
    take. Exits 0 once done (or once asked, with --no-wait), 1 if refused,
    failed or not done in time.
    """
    _handover(config, Operation.SWITCHOVER, wait, timeout)


@cli.command(cls=_OpsCommand, short_help="Move the service back to the preferred primary.")
@_config_option
@_wait_options
def failback(config: Path, wait: bool, timeout: float) -> None:
    """Move the service back to the preferred primary after a failover.

    The old operation sheet as one command: the standby that took over
    stops its service (shutdown scripts), the primary starts its own
    (startup scripts) and becomes active, and the standby resumes watching
    it. Run it once the primary is repaired and `failoverd status` shows its
    checks passing. Prints each step as it happens. Exits 0 once the primary
    is active (or once asked, with --no-wait), 1 if refused, failed or not
    done in time.
    """
    _handover(config, Operation.FAILBACK, wait, timeout)


# -- history and explain ---------------------------------------------------------------------


def _history_table(records: list[Mapping[str, Any]], width: int) -> Table:
    """The journal as a table; below 120 columns, time and transition wrap to leave the
    reason room (rich would otherwise shrink every column alike and the reason most)."""
    narrow = width < 120
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("time (UTC)", max_width=12 if narrow else None)
    table.add_column("node", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("from → to", max_width=11 if narrow else None)
    table.add_column("epoch", no_wrap=True)
    table.add_column("reason", ratio=1)
    for r in records:
        moved = f"{r['from']} → {r['to']}" if r.get("from") and r.get("to") else ""
        table.add_row(
            _wall(r["time"]).removesuffix(" UTC"),
            r["node"],
            r["kind"],
            moved,
            str(r["epoch"]),
            r["reason"],
        )
    return table


@cli.command(cls=_OpsCommand, short_help="Show the event journal: what happened and why.")
@_config_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the newest events to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
def history(config: Path, limit: int, as_json: bool) -> None:
    """Show this node's newest events, oldest first, each with its reason.

    Every transition (which heartbeats were missed, which checks failed,
    which votes were granted), every script run and every operator command
    is kept in the journal under node.state_dir. Changes nothing.
    """
    records = _read(config, f"/history?limit={limit}")
    if as_json:
        _echo_json(records)
    elif not records:
        click.echo("no events recorded yet")
    else:
        console = _console()
        console.print(_rendered("history", lambda: _history_table(records, console.width)))


@cli.command(cls=_OpsCommand, short_help="Say why this node is (not) active right now.")
@_config_option
def explain(config: Path) -> None:
    """Say in plain words why this node is, or is not, active right now.

    Built from the daemon's live state: the peer's heartbeats, the checks,
    the lease and its votes, maintenance mode. Changes nothing.
    """
    for sentence in _read(config, "/explain"):
        click.echo(sentence)
