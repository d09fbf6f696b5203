"""failoverd nodes and witness in lab hosts: configs, the shared secret, the daemons.

The configs are built as the schema's models (so an invalid lab config fails
here, with pydantic's message) and written as TOML. Daemons run as
`failoverd run -c FILE` / `failoverd witness -c FILE` inside their host's
namespace, with their output in a log file.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import tomli_w

from failoverd.config.schema import NodeConfig, WitnessConfig
from failoverd.core.types import Preference, SafetyMode
from failoverd.lab.netns import Host, LabError, LabProcess

PEER_PORT = 7890
API_PORT = 8790
WITNESS_PORT = 7899
SECRET_BYTES = 32


class Endpoint(Protocol):
    """What a config needs of a host: its name and its address (a `Host` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def addr(self) -> str: ...


def write_secret(path: Path) -> Path:
    """A new cluster secret: 32 random bytes and a newline, mode 0600.

    The loader strips one trailing newline: without ours, a secret whose
    last random byte is a newline would count as 31 bytes and be refused.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode on O_CREAT
        f.write(os.urandom(SECRET_BYTES) + b"\n")
    return path


def node_config(
    host: Endpoint,
    peer: Endpoint,
    *,
    preference: Preference,
    secret_file: Path,
    state_dir: Path,
    safety: SafetyMode = SafetyMode.WITNESS,
    witness: Endpoint | None = None,
    peer_port: int = PEER_PORT,
    api_port: int = API_PORT,
    witness_port: int = WITNESS_PORT,
    timing: Mapping[str, Any] | None = None,
    scripts: Mapping[str, Any] | None = None,
    checks: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """The config of the node in `host`, whose peer is in `peer`.

    The node listens on its lab address (the load balancer checks its
    `/health` from `lb`). `timing` and `scripts` are the TOML sections as
    written in a file (durations as strings: "200ms"); `extra` adds or
    replaces whole top-level sections (e.g. `alerts`, `log`).
    """
    data: dict[str, Any] = {
        "node": {
            "name": host.name,
            "preference": preference.value,
            "listen": f"{host.addr}:{peer_port}",
            "api": f"{host.addr}:{api_port}",
            "state_dir": str(state_dir),
        },
        "peer": {
            "name": peer.name,
            "addresses": [f"{peer.addr}:{peer_port}"],
            "api": f"{peer.addr}:{api_port}",
        },
        "cluster": {"safety": safety.value, "secret_file": str(secret_file)},
        "timing": dict(timing or {}),
        "scripts": dict(scripts or {}),
        "check": [dict(c) for c in checks],
    }
    if witness is not None:
        data["witness"] = {"name": witness.name, "address": f"{witness.addr}:{witness_port}"}
    data.update(extra or {})
    return NodeConfig.model_validate(data)


def witness_config(
    host: Endpoint,
    nodes: tuple[Endpoint, Endpoint],
    *,
    secret_file: Path,
    state_dir: Path,
    port: int = WITNESS_PORT,
    api_port: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> WitnessConfig:
    """The config of the witness in `host`, voting for the two `nodes`."""
    section: dict[str, Any] = {
        "name": host.name,
        "listen": f"{host.addr}:{port}",
        "state_dir": str(state_dir),
        "nodes": [n.name for n in nodes],
    }
    if api_port is not None:
        section["api"] = f"{host.addr}:{api_port}"
    data: dict[str, Any] = {
        "witness": section,
        "cluster": {"safety": SafetyMode.WITNESS.value, "secret_file": str(secret_file)},
    }
    data.update(extra or {})
    return WitnessConfig.model_validate(data)


def config_toml(config: NodeConfig | WitnessConfig) -> str:
    """The config as TOML text: the fields that were set, durations as "200ms" strings."""
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True, exclude_unset=True))


def write_config(config: NodeConfig | WitnessConfig, path: Path) -> Path:
    """Write the config as TOML and check that it reads back as the same config."""
    text = config_toml(config)
    if type(config).model_validate(tomllib.loads(text)) != config:
        raise LabError(f"{path}: the written TOML does not read back as the same config")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def failoverd_command() -> list[str]:
    """The `failoverd` executable of this environment (the venv's, else the PATH's)."""
    beside = Path(sys.executable).with_name("failoverd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("failoverd")
    if found is None:
        raise LabError("no `failoverd` executable beside this Python or on PATH")
    return [found]


def node_daemon(host: Host, config_path: Path, log_path: Path) -> LabProcess:
    """`failoverd run -c FILE` in `host` (call `start()`)."""
    return LabProcess(host, [*failoverd_command(), "run", "-c", str(config_path)], log_path)


def witness_daemon(host: Host, config_path: Path, log_path: Path) -> LabProcess:
    """`failoverd witness -c FILE` in `host` (call `start()`)."""
    return LabProcess(host, [*failoverd_command(), "witness", "-c", str(config_path)], log_path)
