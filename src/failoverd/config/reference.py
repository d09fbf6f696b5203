"""docs/configuration.md, generated from the configuration schema.

    python -m failoverd.config.reference > docs/configuration.md      (or: make docs)

Every key, its type, its default and its description come from the pydantic
models in `failoverd.config.schema`; each check type's introduction comes from
its module's docstring in `failoverd.checks`. Only the introductions of the
tables and the two examples are written here, and both examples are validated
against the schema on every run. tests/unit/test_docs.py fails when
docs/configuration.md differs from this module's output.
"""

import importlib
import re
import sys
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import AfterValidator, BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from failoverd.config.durations import format_duration, parse_duration
from failoverd.config.schema import Address, NodeConfig, WitnessConfig

_ADDRESS_CHECK = get_args(Address)[1].func

NODE_FILE = "/etc/failoverd/failoverd.toml"
WITNESS_FILE = "/etc/failoverd/witness.toml"

# What each table is for; the keys themselves are described by the schema.
INTRO: dict[str, str] = {
    "node": "This node: its name, its preference and where it listens.",
    "peer": "The other node of the pair.",
    "cluster": "What both nodes (and the witness) share: the safety mode and the key that "
    "authenticates every message. Every member must have the same `secret_file` content.",
    "cluster.accept_keys": "One table per key; the inline form is "
    '`accept_keys = [{ key_id = 2, secret_file = "/etc/failoverd/secret.new" }]`. '
    "The procedure: [runbook](runbook.md#rotate-the-cluster-key).",
    "witness": "The witness this node asks for its third vote, with "
    '`safety = "witness"`. It runs `failoverd witness` on a third host.',
    "timing": "The protocol's timers. `failoverd check-config` prints the worst-case time "
    "from a primary failure to the standby being active that these timers give.",
    "scripts": "The commands that start, stop and fence the service, run in order by "
    "`/bin/sh -c`, each in its own process group, killed as a group at its timeout, with "
    "its output in the daemon's log. They get the environment variables `FAILOVERD_NODE`, "
    "`FAILOVERD_PEER`, `FAILOVERD_EPOCH`, `FAILOVERD_REASON` and `FAILOVERD_PHASE`. A startup "
    "phase stops at the first failure; a shutdown or demote phase runs every script and fails "
    "if any failed. In witness mode, a node that cannot renew its lease runs its `demote` "
    "scripts (if any, else its `shutdown` scripts); so does a node whose graceful shutdown "
    "would outlast its lease (the shutdown is cancelled first).",
    "check": "One `[[check]]` table per check. A `local` check watches this "
    "node's own service: it counts while this node is active, its failures are reported to "
    "the peer in every heartbeat, and `/health` answers 503 while one is down. A `remote` "
    "check watches the peer's service from here (the seed's rhcd): it counts while the peer "
    "is active. A check is up after `rise` passes in a row and down after `fall` failures "
    "in a row; until then it is unknown, which does not count as failing.",
    "alerts": "Alerts on every state transition and on every failed script, each carrying "
    "the decision's reason. Delivery is retried with backoff and never delays a decision.",
    "alerts.mail": "Alerts as mail through an SMTP relay.",
    "alerts.webhook": "Alerts as a JSON POST to a URL. Only the URL's origin is logged.",
    "log": "The daemon logs to stderr (under systemd: the journal).",
    "witness-file.witness": "The witness itself.",
    "witness-file.cluster": "The same table as in the nodes' files. The witness uses "
    "`secret_file`, `key_id` and `accept_keys`; `safety` and `auto_failback` are accepted "
    "and not used.",
}
SCRIPT_ENTRY_INTRO = (
    "An entry of `startup`, `shutdown`, `demote` or `fence` is either a command string, which gets "
    "`scripts.timeout`, or an inline table with a timeout of its own: "
    '`{ command = "systemctl start dovecot", timeout = "60s" }`.'
)

NODE_EXAMPLE = """\
# /etc/failoverd/failoverd.toml on cfg1, the primary.
# The standby's file (cfg2) is the same with [node] and [peer] swapped and
# preference = "standby". Commented-out lines show the default, or an example
# of a key that is not set by default.

[node]
name = "cfg1"
preference = "primary"
listen = "10.0.0.1:7890"          # heartbeats (UDP) and commands (TCP) from the peer
api = "10.0.0.1:8790"             # the load balancer polls http://10.0.0.1:8790/health
# state_dir = "/var/lib/failoverd"
# realtime_priority = 10          # SCHED_RR for the daemon alone; 0: the normal scheduler
# lock_memory = true              # mlockall: the daemon is never swapped out

[peer]
name = "cfg2"
addresses = ["10.0.0.2:7890", "192.168.100.2:7890"]   # one per network path
api = "10.0.0.2:8790"             # lets `failoverd status` show both nodes

[cluster]
safety = "witness"
secret_file = "/etc/failoverd/secret"   # 64 random bytes, the same on all three hosts
# key_id = 1
# accept_keys = []
# auto_failback = false

[witness]
name = "lb1"
address = "10.0.0.9:7890"

[timing]
# heartbeat_interval = "200ms"
# dead_time = "1s"
# init_dead = "3s"
# shutdown_timeout = "auto"       # sum of the shutdown scripts' timeouts + 1s
# lease_time = "auto"             # dead_time + demote (else shutdown) scripts + demote_margin
# clock_drift = 0.01
# demote_margin = "200ms"
# max_network_delay = "50ms"
# fence_retry = "5s"
# auto_failback_delay = "30s"
# command_window = "30s"

[scripts]
# timeout = "10s"
# working_dir: by default the directory of this file
startup = [
    "./scripts/mount-userdb.sh",
    { command = "systemctl start dovecot", timeout = "20s" },
]
shutdown = [
    "systemctl stop dovecot",
    "./scripts/umount-userdb.sh",
]
# demote = []                     # witness mode: stop at once when the lease is lost
# fence = []

# This node's own POP3 service: reported to the peer and behind /health.
[[check]]
name = "pop3"
type = "pop3"
scope = "local"
host = "127.0.0.1"
port = 110
# interval = "1s"
# timeout = "1s"
# rise = 2
# fall = 3

# The peer's POP3 service, checked from here with a login (the seed's rhcd).
[[check]]
name = "pop3-cfg2"
type = "pop3"
scope = "remote"
host = "10.0.0.2"
port = 110
user = "monitor"
password_file = "/etc/failoverd/pop3-password"   # mode 0600

[alerts]
# retries = 5

[alerts.mail]
smtp_host = "localhost"
# smtp_port = 25
sender = "failoverd@cfg1.example.org"
recipients = ["ops@example.org"]
# starttls = false

[alerts.webhook]
url = "https://hooks.example.org/failoverd"
# timeout = "5s"

[log]
# level = "info"
"""

WITNESS_EXAMPLE = """\
# /etc/failoverd/witness.toml on lb1, the witness. Commented-out lines show the
# default, or an example of a key that is not set by default.

[witness]
name = "lb1"
listen = "10.0.0.9:7890"
nodes = ["cfg1", "cfg2"]
# api = "10.0.0.9:8791"          # not set by default: no /status, /metrics
# state_dir = "/var/lib/failoverd-witness"
# clock_drift = 0.01              # the nodes' timing.clock_drift
# demote_margin = "200ms"         # the nodes' timing.demote_margin
# dead_time = "1s"

[cluster]
secret_file = "/etc/failoverd/secret"

[log]
# level = "info"
"""


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    type: str
    default: str
    description: str


@dataclass(slots=True)
class Table:
    heading: str
    level: int
    intro: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


# -- types --------------------------------------------------------------------


def _is_duration(metadata: list[Any]) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in metadata)


def _is_address(metadata: list[Any]) -> bool:
    return any(isinstance(m, AfterValidator) and m.func is _ADDRESS_CHECK for m in metadata)


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """(bare type, metadata) of a possibly Annotated type; FieldInfo metadata is flattened."""
    if get_origin(annotation) is not Annotated:
        return annotation, []
    base, *extra = get_args(annotation)
    metadata: list[Any] = []
    for m in extra:
        metadata.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return base, metadata


def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return None


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _constraints(metadata: list[Any], kind: str) -> str:
    bounds = {type(m): m for m in metadata}
    parts: list[str] = []
    lo, hi = bounds.get(at.Ge), bounds.get(at.Le)
    if lo is not None and hi is not None:
        parts.append(f"{_number(lo.ge)}–{_number(hi.le)}")
    else:
        if lo is not None:
            parts.append(f"≥ {_number(lo.ge)}")
        if hi is not None:
            parts.append(f"≤ {_number(hi.le)}")
    if (gt := bounds.get(at.Gt)) is not None:
        parts.append(f"> {_number(gt.gt)}")
    if (lt := bounds.get(at.Lt)) is not None:
        parts.append(f"< {_number(lt.lt)}")
    least, most = bounds.get(at.MinLen), bounds.get(at.MaxLen)
    if least is not None and most is not None and least.min_length == most.max_length:
        parts.append(f"exactly {least.min_length}")
    elif least is not None and least.min_length > 0:
        parts.append("non-empty" if kind == "string" else f"at least {least.min_length}")
    return ", ".join(parts)


def _alternatives(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    """The type as a reader of the TOML file sees it, with its constraints."""
    base, inner = _split(annotation)
    metadata = [*(metadata or []), *inner]
    if _is_duration(metadata):
        name = "duration"
    elif _is_address(metadata):
        name = "HOST:PORT"
    elif (args := _union_args(base)) is not None:
        name = _alternatives([type_name(a) for a in args if a is not type(None)])
    elif get_origin(base) is Literal:
        name = _alternatives([f'`"{v}"`' for v in get_args(base)])
    elif isinstance(base, type) and issubclass(base, Enum):
        name = _alternatives([f'`"{m.value}"`' for m in base])
    elif get_origin(base) is list:
        item = type_name(get_args(base)[0])
        name = f"list of ({item})" if " or " in item else f"list of {item}"
    elif isinstance(base, type) and issubclass(base, BaseModel):
        name = "table"
    else:
        name = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}[base]
    kind = "string" if base is str else name
    limits = _constraints(metadata, kind)
    return f"{name}, {limits}" if limits else name


# -- defaults -----------------------------------------------------------------


def toml_value(value: object, duration: bool = False) -> str:
    """A default as it would be written in the file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return f'"{value.value}"'
    if isinstance(value, float) and duration:
        return f'"{format_duration(value)}"'
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v, duration) for v in value) + "]"
    raise TypeError(f"no TOML form for the default {value!r}")


def _is_duration_field(info: FieldInfo) -> bool:
    if _is_duration(info.metadata):
        return True
    args = _union_args(info.annotation) or ()
    return any(_is_duration(_split(a)[1]) for a in args)


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "not set"
    return f"`{toml_value(value, _is_duration_field(info))}`"


# -- walking the schema -------------------------------------------------------


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model of a table-valued field (`X` or `X | None`), else None."""
    args = _union_args(annotation)
    if args is not None:
        models = [a for a in args if a is not type(None)]
        annotation = models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _array_models(annotation: Any) -> list[type[BaseModel]] | None:
    """The models of an array-of-tables field (`list[X]`, `list[A | B | ...]`), else None."""
    if get_origin(annotation) is not list:
        return None
    item, _ = _split(get_args(annotation)[0])
    candidates = _union_args(item) or (item,)
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models if models and len(models) == len(candidates) else None


def _inline_models(annotation: Any) -> Iterator[type[BaseModel]]:
    """Models that may be written inline inside a scalar field (a script's table form)."""
    base, _ = _split(annotation)
    if get_origin(base) is list:
        yield from _inline_models(get_args(base)[0])
    for arg in _union_args(base) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            yield arg


def _description(info: FieldInfo) -> str:
    return " ".join((info.description or "").split()).replace("|", "\\|")


def _row(key: str, info: FieldInfo) -> Row:
    return Row(
        key, type_name(info.annotation, info.metadata), default_text(info), _description(info)
    )


@dataclass(slots=True)
class _Walker:
    file: str
    documented: dict[type[BaseModel], str]
    tables: list[Table] = field(default_factory=list)

    def section(
        self, model: type[BaseModel], path: str, info: FieldInfo | None, array: bool
    ) -> None:
        header = f"[[{path}]]" if array else f"[{path}]"
        heading = f"`{header}`" + ("" if self.file == "node" else f" ({self.file} file)")
        table = Table(heading, 3)
        key = path if self.file == "node" else f"{self.file}-file.{path}"
        table.intro += [p for p in (_description(info) if info else "", INTRO.get(key, "")) if p]
        if model in self.documented:
            shared = self.documented[model]
            table.intro.append(f"Keys: as [`{shared}`](#{slug(shared)}) in the node file.")
            self.tables.append(table)
            return
        self.documented[model] = header
        self.tables.append(table)
        nested: list[tuple[str, FieldInfo]] = []
        inline: list[type[BaseModel]] = []
        for name, sub in model.model_fields.items():
            if _model(sub.annotation) is not None or _array_models(sub.annotation) is not None:
                nested.append((name, sub))
                continue
            table.rows.append(_row(name, sub))
            inline += [m for m in _inline_models(sub.annotation) if m not in inline]
        for m in inline:
            entry = Table(f"Entries of `{header}` as tables", 4, [SCRIPT_ENTRY_INTRO])
            entry.rows = [_row(n, f) for n, f in m.model_fields.items()]
            self.tables.append(entry)
        for name, sub in nested:
            self.field(f"{path}.{name}" if path else name, sub)

    def field(self, path: str, info: FieldInfo) -> None:
        model = _model(info.annotation)
        if model is not None:
            self.section(model, path, info, array=False)
            return
        models = _array_models(info.annotation)
        assert models is not None
        if len(models) == 1:
            self.section(models[0], path, info, array=True)
        else:
            self.variants(path, info, models)

    def variants(self, path: str, info: FieldInfo, models: list[type[BaseModel]]) -> None:
        """An array of tables told apart by `type`: the shared keys, then each type's own."""
        common = [n for n in models[0].model_fields if all(n in m.model_fields for m in models[1:])]
        table = Table(f"`[[{path}]]`", 3)
        table.intro += [p for p in (_description(info), INTRO.get(path, "")) if p]
        tags = [get_args(m.model_fields["type"].annotation)[0] for m in models]
        table.rows.append(
            Row(
                "type",
                _alternatives([f'`"{t}"`' for t in tags]),
                "required",
                "The kind of check: one of the types below, each with keys of its own.",
            )
        )
        table.rows += [_row(n, models[0].model_fields[n]) for n in common if n != "type"]
        self.tables.append(table)
        for model, tag in zip(models, tags, strict=True):
            own = Table(f'Check type `"{tag}"`', 4)
            doc = importlib.import_module(f"failoverd.checks.{tag}").__doc__ or ""
            own.intro += [" ".join(p.split()) for p in doc.strip().split("\n\n")]
            own.rows = [_row(n, f) for n, f in model.model_fields.items() if n not in common]
            if not own.rows:
                own.intro.append("No keys besides the shared ones.")
            self.tables.append(own)


def node_tables(documented: dict[type[BaseModel], str] | None = None) -> list[Table]:
    """The node file's tables; `documented` collects each model's table header."""
    walker = _Walker("node", {} if documented is None else documented)
    for name, info in NodeConfig.model_fields.items():
        walker.field(name, info)
    return walker.tables


def witness_tables(documented: dict[type[BaseModel], str]) -> list[Table]:
    """The witness file's tables; tables shared with the node file link to it."""
    walker = _Walker("witness", documented)
    for name, info in WitnessConfig.model_fields.items():
        walker.field(name, info)
    return walker.tables


def missing_descriptions() -> list[str]:
    """Keys of either file that the reference would show without a description."""
    found = []
    for table in [*node_tables(), *witness_tables({})]:
        found += [f"{table.heading} {r.key}" for r in table.rows if not r.description]
    return found


# -- markdown -----------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (without the -1, -2 of repeated headings)."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _render_table(t: Table) -> list[str]:
    out = [f"{'#' * t.level} {t.heading}", ""]
    for paragraph in t.intro:
        out += [paragraph, ""]
    if t.rows:
        out += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
        out += [f"| `{r.key}` | {r.type} | {r.default} | {r.description} |" for r in t.rows]
        out.append("")
    return out


def _toc(tables: list[Table]) -> list[str]:
    return [f"{'  ' * (t.level - 3)}- [{t.heading}](#{slug(t.heading)})" for t in tables]


INTRO_TEXT = f"""\
Each node reads one TOML file (`failoverd run -c FILE`, default `{NODE_FILE}`);
the witness reads its own (`failoverd witness -c FILE`, default `{WITNESS_FILE}`).

- **Unknown keys are errors.** A misspelt key is reported, never ignored.
- **Durations are strings**: a number and a unit, `ms`, `s`, `m` or `h`:
  `"200ms"`, `"1.5s"`, `"2m"`. A bare number is refused (seconds or milliseconds?).
- **Addresses** are `HOST:PORT`; IPv6 in brackets: `"[2001:db8::1]:7890"`.
- **Relative paths** are relative to the directory of the configuration file.
- **Secret and password files** must be regular files, not readable by group or
  others (`chmod 600`). The cluster secret must hold at least 32 bytes; one
  trailing newline is not counted. Passwords never go into the configuration itself.
- **Check a file** with `failoverd check-config FILE`: it exits 0 and prints
  what the file makes the node do, including the worst-case failover time, or
  exits 2 with one line `FILE:LINE: what is wrong and how to fix it`.
  `failoverd check-config --json FILE` prints the effective configuration with
  every default filled in.
- **Reload** with `systemctl reload failoverd` (SIGHUP). A file that does not
  validate is refused and the running configuration kept.

This page is generated from the schema (`src/failoverd/config/schema.py`) by
`python -m failoverd.config.reference` (`make docs`); do not edit it by hand."""


def render() -> str:
    """The whole of docs/configuration.md."""
    _validate_examples()
    documented: dict[type[BaseModel], str] = {}
    node = node_tables(documented)
    witness = witness_tables(documented)
    out = [
        "<!-- Generated by `python -m failoverd.config.reference` (make docs). Do not edit. -->",
        "",
        "# Configuration reference",
        "",
        INTRO_TEXT,
        "",
        "## Contents",
        "",
        "- [The node file](#the-node-file)",
        *[f"  {line}" for line in _toc(node)],
        "- [The witness file](#the-witness-file)",
        *[f"  {line}" for line in _toc(witness)],
        "- [Example: a node](#example-a-node)",
        "- [Example: the witness](#example-the-witness)",
        "",
        "## The node file",
        "",
    ]
    for t in node:
        out += _render_table(t)
    out += ["## The witness file", ""]
    for t in witness:
        out += _render_table(t)
    out += [
        "## Example: a node",
        "",
        "A complete file for the primary of a pair in witness mode, with a local and a "
        "remote check and both kinds of alert.",
        "",
        "```toml",
        NODE_EXAMPLE.rstrip("\n"),
        "```",
        "",
        "## Example: the witness",
        "",
        "```toml",
        WITNESS_EXAMPLE.rstrip("\n"),
        "```",
    ]
    return "\n".join(out) + "\n"


def _validate_examples() -> None:
    """The examples must be valid files: a stale example fails `make docs` and the tests."""
    NodeConfig.model_validate(tomllib.loads(NODE_EXAMPLE))
    WitnessConfig.model_validate(tomllib.loads(WITNESS_EXAMPLE))


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
