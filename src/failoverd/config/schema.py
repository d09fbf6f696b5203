"""The configuration file's schema: one TOML file per node, one for a witness.

Every field's description is the reference text (docs/configuration.md is
generated from it). Unknown keys are errors: a misspelt key must never be
silently ignored in a failover configuration.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from failoverd.config.durations import Duration, format_duration
from failoverd.core.types import CheckScope, Preference, SafetyMode, ScriptPhase


class FieldError(ValueError):
    """A cross-field error about one key; `loc` (relative to the model that raises it)
    lets the loader point at that key's line instead of the top of the file."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def split_address(value: str) -> tuple[str, int]:
    """("10.0.0.2", 7890) from "10.0.0.2:7890" (IPv6 as "[::1]:7890")."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f'{value!r} is not HOST:PORT (e.g. "10.0.0.2:7890")')
    host = host.strip("[]")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port in {value!r} must be a number from 1 to 65535")
    return host, int(port)


def _check_address(value: str) -> str:
    split_address(value)
    return value


Address = Annotated[str, AfterValidator(_check_address)]
Port = Annotated[int, Field(ge=1, le=65535)]


class NodeSection(Strict):
    name: str = Field(
        min_length=1, description="This node's name, as its peer and witness know it."
    )
    preference: Preference = Field(
        description="`primary`: normally runs the service. "
        "`standby`: takes over when the primary fails."
    )
    listen: Address = Field(
        description="Peer port (the seed's MONITOR_PORT): "
        "UDP heartbeats and TCP commands, same number."
    )
    api: Address = Field(
        default="127.0.0.1:8790",
        description="HTTP API: /health for the load balancer, /status, /metrics, control.",
    )
    state_dir: Path = Field(
        default=Path("/var/lib/failoverd"),
        description="Epoch, role, last transition and the event journal (journal.jsonl).",
    )
    realtime_priority: int = Field(
        default=10,
        ge=0,
        le=99,
        description="SCHED_RR priority (1-99) of the daemon's event loop and API, so that a "
        "loaded host does not delay lease renewals and /health; scripts, checks and the service "
        "do not inherit it. 0: the normal scheduler. Needs root (CAP_SYS_NICE); restart to change.",
    )
    lock_memory: bool = Field(
        default=True,
        description="Lock the daemon's memory (mlockall), so that a swapping host does not "
        "stall it; not inherited by scripts or the service. Needs root (CAP_IPC_LOCK); restart "
        "to change.",
    )


class PeerSection(Strict):
    name: str = Field(min_length=1, description="The peer node's name.")
    addresses: list[Address] = Field(
        min_length=1,
        description="The peer's HOST:PORT, one per network path (redundant links): heartbeats go "
        "over all; the peer is lost only when every path is silent.",
    )
    api: Address | None = Field(
        default=None,
        description="The peer's node.api, as this host reaches it: `failoverd status` adds what "
        "the peer's own daemon says of itself, and where the two disagree (optional).",
    )


class KeySpec(Strict):
    key_id: int = Field(ge=0, le=65535, description="Identifies the key on the wire.")
    secret_file: Path = Field(description="File of at least 32 bytes, mode 0600 or stricter.")


class ClusterSection(Strict):
    safety: SafetyMode = Field(
        default=SafetyMode.WITNESS,
        description="`witness` (a third vote; recommended), `fence` (a fence command must succeed "
        "before takeover) or `cooperative` (the seed's behaviour; unsafe under a partition).",
    )
    secret_file: Path = Field(
        description="The cluster's shared secret (HMAC-SHA256 key): at least 32 bytes, "
        "not readable by group or others."
    )
    key_id: int = Field(default=1, ge=0, le=65535, description="Key id sent with every message.")
    accept_keys: list[KeySpec] = Field(
        default_factory=list,
        description="Further keys accepted on receipt (key rotation: add the new key here on "
        "every member first, then make it the current one).",
    )
    auto_failback: bool = Field(
        default=False,
        description="Move the service back to the preferred primary once it has been healthy "
        "for timing.auto_failback_delay. Off by default, like the seed's manual operation sheet.",
    )


class WitnessRef(Strict):
    name: str = Field(min_length=1, description="The witness's name.")
    address: Address = Field(description="The witness's HOST:PORT (UDP).")


class TimingSection(Strict):
    heartbeat_interval: Duration = Field(
        default=0.2, gt=0, description="How often heartbeats go out."
    )
    dead_time: Duration = Field(
        default=1.0, gt=0, description="Peer silence that counts as failure."
    )
    init_dead: Duration = Field(
        default=3.0, gt=0, description="How long a starting node waits to hear its peer."
    )
    shutdown_timeout: Duration | Literal["auto"] = Field(
        default="auto",
        description="How long the standby waits for CONFIRMED. `auto`: the sum of the shutdown "
        "script timeouts plus 1s.",
    )
    lease_time: Duration | Literal["auto"] = Field(
        default="auto",
        description="Witness mode: how long a majority's votes keep a node active without renewal. "
        "`auto`: dead_time + the sum of the demote scripts' timeouts (without demote scripts: "
        "the shutdown scripts') + demote_margin.",
    )
    clock_drift: float = Field(
        default=0.01,
        ge=0,
        lt=0.5,
        description="Bound on the clock-rate difference between hosts (0.01 = 1 %).",
    )
    demote_margin: Duration = Field(
        default=0.2,
        ge=0,
        description="Slack between the end of self-demotion and the lease's end.",
    )
    max_network_delay: Duration = Field(
        default=0.05, ge=0, description="One-way delay assumed by the worst-case bound."
    )
    fence_retry: Duration = Field(default=5.0, gt=0, description="Pause between fence attempts.")
    auto_failback_delay: Duration = Field(default=30.0, ge=0, description="See auto_failback.")
    command_window: Duration = Field(
        default=30.0,
        gt=0,
        description="Commands whose timestamp is further than this from the receiver's clock are "
        "refused as replays.",
    )

    @model_validator(mode="after")
    def _dead_time(self) -> "TimingSection":
        least = 2 * self.heartbeat_interval
        if self.dead_time < least:
            raise FieldError(
                ("dead_time",),
                f"dead_time ({format_duration(self.dead_time)}) must be at least "
                f"2 × heartbeat_interval ({format_duration(least)}), or a single lost heartbeat "
                f"counts as a failure: raise dead_time or shorten heartbeat_interval",
            )
        return self


class ScriptSpec(Strict):
    command: str = Field(min_length=1, description="Run with /bin/sh -c; redirections work.")
    timeout: Duration | None = Field(
        default=None, gt=0, description="Killed (its whole process group) after this."
    )


ScriptEntry = str | ScriptSpec


@dataclass(frozen=True, slots=True)
class Script:
    """A script ready to run: its command line and its timeout in seconds."""

    command: str
    timeout: float


class ScriptsSection(Strict):
    timeout: Duration = Field(default=10.0, gt=0, description="Default timeout of each script.")
    working_dir: Path | None = Field(
        default=None,
        description="Directory scripts run in; default: the config file's directory "
        "(the seed's ./scripts/... paths keep working).",
    )
    startup: list[ScriptEntry] = Field(
        default_factory=list, description="Run in order to start the service (STARTUP_SCRIPTS)."
    )
    shutdown: list[ScriptEntry] = Field(
        default_factory=list, description="Run in order to stop it (SHUTDOWN_SCRIPTS)."
    )
    demote: list[ScriptEntry] = Field(
        default_factory=list,
        description="Witness mode: run instead of `shutdown` when this node must stop because "
        "it cannot renew its lease (it is cut off from both peer and witness, or its loop "
        "stalled): stop the service at once (e.g. SIGKILL it). Their timeouts, not the shutdown "
        "scripts', size lease_time. Empty: the shutdown scripts serve (as before).",
    )
    fence: list[ScriptEntry] = Field(
        default_factory=list,
        description="Fence the peer (IPMI power-off, cloud API, storage fencing); exit 0 only "
        'once the peer certainly runs nothing. Required with safety = "fence".',
    )

    def specs(self, phase: ScriptPhase) -> list[Script]:
        """The phase's scripts in order, with their timeouts filled in."""
        entries: list[ScriptEntry] = getattr(self, phase.value)
        return [
            Script(e, self.timeout)
            if isinstance(e, str)
            else Script(e.command, e.timeout or self.timeout)
            for e in entries
        ]

    def budget(self, phase: ScriptPhase) -> float:
        """Worst-case duration of a phase: the sum of its scripts' timeouts."""
        return sum(s.timeout for s in self.specs(phase))


class CheckBase(Strict):
    name: str = Field(min_length=1, description="Unique name, used in logs, metrics, reasons.")
    scope: CheckScope = Field(
        description="`local`: this node's service (counts while active, feeds /health and the "
        "heartbeat). `remote`: the peer's service, checked from here (the seed's rhcd)."
    )
    interval: Duration = Field(default=1.0, gt=0, description="Time between two runs.")
    timeout: Duration = Field(default=1.0, gt=0, description="A run slower than this fails.")
    rise: int = Field(default=2, ge=1, description="Consecutive passes to count as up.")
    fall: int = Field(default=3, ge=1, description="Consecutive failures to count as down.")


class NetCheck(CheckBase):
    host: str = Field(min_length=1, description="Host to connect to.")
    port: Port = Field(description="TCP port.")


class TcpCheck(NetCheck):
    type: Literal["tcp"]


class LoginCheck(NetCheck):
    user: str | None = Field(default=None, description="Log in as this user (optional).")
    password_file: Path | None = Field(
        default=None, description="File holding the password (never the password itself)."
    )

    @model_validator(mode="after")
    def _pair(self) -> "LoginCheck":
        if (self.user is None) != (self.password_file is None):
            raise FieldError(
                ("password_file",) if self.user is None else ("user",),
                "user and password_file go together: set both or neither",
            )
        return self


class Pop3Check(LoginCheck):
    type: Literal["pop3"]


class ImapCheck(LoginCheck):
    type: Literal["imap"]


class SmtpCheck(NetCheck):
    type: Literal["smtp"]
    ehlo: str = Field(default="failoverd.invalid", description="Name sent with EHLO.")


class HttpCheck(CheckBase):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://", description="http:// or https:// URL to GET.")
    expect_status: int = Field(default=200, ge=100, le=599, description="Status that passes.")
    verify_tls: bool = Field(default=True, description="Verify the server's certificate.")


class ExecCheck(CheckBase):
    type: Literal["exec"]
    command: str = Field(min_length=1, description="Run with /bin/sh -c; exit 0 passes.")


CheckConfig = Annotated[
    TcpCheck | Pop3Check | ImapCheck | SmtpCheck | HttpCheck | ExecCheck,
    Field(discriminator="type"),
]


class MailAlert(Strict):
    smtp_host: str = Field(description="SMTP relay host.")
    smtp_port: Port = Field(default=25, description="SMTP relay port.")
    sender: str = Field(description="From: address.")
    recipients: list[str] = Field(min_length=1, description="To: addresses.")
    starttls: bool = Field(default=False, description="Use STARTTLS.")
    user: str | None = Field(default=None, description="SMTP AUTH user (optional).")
    password_file: Path | None = Field(default=None, description="SMTP AUTH password file.")


class WebhookAlert(Strict):
    url: str = Field(pattern=r"^https?://", description="Receives a JSON POST per alert.")
    timeout: Duration = Field(default=5.0, gt=0, description="Per attempt.")


class AlertsSection(Strict):
    mail: MailAlert | None = None
    webhook: WebhookAlert | None = None
    retries: int = Field(default=5, ge=0, description="Attempts after the first, with backoff.")


class LogSection(Strict):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Least severe level logged; every decision is logged at info.",
    )


class NodeConfig(Strict):
    """A node's configuration file."""

    node: NodeSection
    peer: PeerSection
    cluster: ClusterSection
    witness: WitnessRef | None = Field(
        default=None, description='Required with safety = "witness".'
    )
    timing: TimingSection = Field(default_factory=TimingSection)
    scripts: ScriptsSection = Field(default_factory=ScriptsSection)
    check: list[CheckConfig] = Field(default_factory=list, description="Health checks.")
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    log: LogSection = Field(default_factory=LogSection)

    @model_validator(mode="after")
    def _consistent(self) -> "NodeConfig":
        if self.node.name == self.peer.name:
            raise FieldError(("peer", "name"), "node.name and peer.name must differ")
        seen: set[str] = set()
        for i, c in enumerate(self.check):
            if c.name in seen:
                raise FieldError(
                    ("check", i, "name"), f"check names must be unique; {c.name!r} is repeated"
                )
            seen.add(c.name)
        if self.cluster.safety is SafetyMode.WITNESS and self.witness is None:
            raise FieldError(
                ("cluster", "safety"),
                'safety = "witness" needs a [witness] section (name, address)',
            )
        if self.cluster.safety is SafetyMode.FENCE and not self.scripts.fence:
            raise FieldError(
                ("cluster", "safety"), 'safety = "fence" needs scripts.fence (the fence command)'
            )
        if self.scripts.demote and self.cluster.safety is not SafetyMode.WITNESS:
            raise FieldError(
                ("scripts", "demote"),
                'scripts.demote is only used with safety = "witness" (it runs when the lease '
                f'is lost), not "{self.cluster.safety}": remove it or set safety = "witness"',
            )
        if self.cluster.safety is SafetyMode.WITNESS:
            self._check_lease()
        return self

    def _check_lease(self) -> None:
        """The active node self-demotes (the stop scripts) before its lease ends, and renews
        it every heartbeat: a lease shorter than that would make it demote constantly. With
        demote scripts, a graceful shutdown gives way to them one heartbeat earlier still
        (time to cancel it): one more heartbeat, or graceful shutdowns would be cut short."""
        t = self.timing
        demote = bool(self.scripts.demote)
        scripts = "demote scripts" if demote else "shutdown scripts"
        budget = self.stop_budget
        beats = 3 if demote else 2
        least = budget + t.demote_margin + beats * t.heartbeat_interval
        if self.lease_time <= least:
            auto = t.lease_time == "auto"
            given = f"auto: dead_time + {scripts} + demote_margin = " if auto else ""
            harm = (
                "graceful shutdowns would be cut short by the demote scripts"
                if demote
                else "the active node would demote itself constantly"
            )
            raise FieldError(
                ("timing", "lease_time"),
                f"lease_time ({given}{format_duration(self.lease_time)}) must be more than "
                f"{format_duration(least)} ({scripts} {format_duration(budget)} + "
                f"demote_margin {format_duration(t.demote_margin)} + {beats} × "
                f"heartbeat_interval {format_duration(beats * t.heartbeat_interval)}), or {harm}: "
                f"set timing.lease_time above {format_duration(least)}",
            )

    @property
    def shutdown_timeout(self) -> float:
        t = self.timing.shutdown_timeout
        return self.scripts.budget(ScriptPhase.SHUTDOWN) + 1.0 if t == "auto" else t

    @property
    def stop_budget(self) -> float:
        """What a stop forced by the lease costs: the demote scripts' timeouts, or without
        them the shutdown scripts' (as `NodeParams.stop_budget`)."""
        phase = ScriptPhase.DEMOTE if self.scripts.demote else ScriptPhase.SHUTDOWN
        return self.scripts.budget(phase)

    @property
    def lease_time(self) -> float:
        t = self.timing.lease_time
        if t == "auto":
            return self.timing.dead_time + self.stop_budget + self.timing.demote_margin
        return t


class WitnessSection(Strict):
    name: str = Field(min_length=1, description="The witness's name, as the nodes know it.")
    listen: Address = Field(description="UDP HOST:PORT the nodes send heartbeats to.")
    api: Address | None = Field(default=None, description="HTTP API (/status, /metrics), optional.")
    state_dir: Path = Field(
        default=Path("/var/lib/failoverd-witness"),
        description="The highest epoch voted for, and the event journal (journal.jsonl).",
    )
    nodes: list[str] = Field(min_length=2, max_length=2, description="The two nodes' names.")
    clock_drift: float = Field(default=0.01, ge=0, lt=0.5, description="As timing.clock_drift.")
    demote_margin: Duration = Field(default=0.2, ge=0, description="As timing.demote_margin.")
    dead_time: Duration = Field(default=1.0, gt=0, description="When a node counts as unheard.")


class WitnessConfig(Strict):
    """A witness's configuration file."""

    witness: WitnessSection
    cluster: ClusterSection
    log: LogSection = Field(default_factory=LogSection)
