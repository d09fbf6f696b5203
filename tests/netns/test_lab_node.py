"""Lab configs for nodes and witness: valid, readable back, accepted by `failoverd check-config`."""

import functools
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from failoverd.config.load import read_secret_file
from failoverd.config.schema import NodeConfig, WitnessConfig
from failoverd.core.types import Preference, SafetyMode
from failoverd.lab.netns import Host, Topology, run_command
from failoverd.lab.node import (
    failoverd_command,
    node_config,
    node_daemon,
    witness_config,
    write_config,
    write_secret,
)


@dataclass(frozen=True)
class FakeHost:
    name: str
    addr: str


PRIMARY = FakeHost("primary", "10.231.5.11")
STANDBY = FakeHost("standby", "10.231.5.12")
WITNESS = FakeHost("witness", "10.231.5.13")


def pair_configs(tmp_path: Path, safety: SafetyMode) -> dict[str, NodeConfig | WitnessConfig]:
    secret = write_secret(tmp_path / "secret")
    node = functools.partial(
        node_config,
        secret_file=secret,
        safety=safety,
        witness=WITNESS if safety is SafetyMode.WITNESS else None,
        timing={"heartbeat_interval": "100ms", "dead_time": "600ms"},
        scripts={
            "startup": ["/bin/true"],
            "shutdown": [{"command": "/bin/true", "timeout": "2s"}],
            "fence": ["/bin/true"] if safety is SafetyMode.FENCE else [],
        },
    )
    pop3 = {"type": "pop3", "name": "pop3", "scope": "local", "host": PRIMARY.addr, "port": 110}
    configs: dict[str, NodeConfig | WitnessConfig] = {
        "primary": node(
            PRIMARY,
            STANDBY,
            preference=Preference.PRIMARY,
            state_dir=tmp_path / "primary",
            checks=[pop3],
        ),
        "standby": node(
            STANDBY, PRIMARY, preference=Preference.STANDBY, state_dir=tmp_path / "standby"
        ),
    }
    if safety is SafetyMode.WITNESS:
        configs["witness"] = witness_config(
            WITNESS, (PRIMARY, STANDBY), secret_file=secret, state_dir=tmp_path / "witness"
        )
    return configs


@pytest.mark.parametrize("safety", list(SafetyMode))
def test_configs_are_valid_and_read_back_unchanged(tmp_path: Path, safety: SafetyMode) -> None:
    for name, config in pair_configs(tmp_path, safety).items():
        path = write_config(config, tmp_path / f"{name}.toml")
        data = tomllib.loads(path.read_text())
        assert type(config).model_validate(data) == config
        assert data["cluster"]["safety"] == safety.value  # stated, not left to a default


def test_node_config_points_the_pair_at_each_other(tmp_path: Path) -> None:
    primary = pair_configs(tmp_path, SafetyMode.WITNESS)["primary"]
    assert isinstance(primary, NodeConfig)
    assert primary.node.listen == "10.231.5.11:7890"
    assert primary.node.api == "10.231.5.11:8790"  # reachable from the load balancer's host
    assert primary.peer.addresses == ["10.231.5.12:7890"]
    assert primary.witness is not None
    assert primary.witness.address == "10.231.5.13:7899"


def test_secret_is_32_private_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    write_secret(path)
    first = read_secret_file(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret_file(write_secret(path)) != first


def test_secret_keeps_32_bytes_when_its_last_random_byte_is_a_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "urandom", lambda n: b"x" * (n - 1) + b"\n")
    assert read_secret_file(write_secret(tmp_path / "secret")) == b"x" * 31 + b"\n"


def test_daemon_command_runs_the_failoverd_of_this_environment(tmp_path: Path) -> None:
    host = Host(Topology(), "primary", "unused", PRIMARY.addr)
    daemon = node_daemon(host, tmp_path / "p.toml", tmp_path / "p.log")
    assert daemon.argv == [*failoverd_command(), "run", "-c", str(tmp_path / "p.toml")]
    assert Path(daemon.argv[0]).exists()


@pytest.mark.parametrize("safety", list(SafetyMode))
def test_failoverd_check_config_accepts_the_lab_configs(tmp_path: Path, safety: SafetyMode) -> None:
    cmd = failoverd_command()
    if run_command([*cmd, "check-config", "--help"], check=False).returncode != 0:
        pytest.skip("`failoverd check-config` does not exist yet")
    for name, config in pair_configs(tmp_path, safety).items():
        path = write_config(config, tmp_path / f"{name}.toml")
        flags = ["--witness"] if isinstance(config, WitnessConfig) else []
        done = run_command([*cmd, "check-config", *flags, str(path)], check=False)
        assert done.returncode == 0, f"{name}: {done.stderr}"
