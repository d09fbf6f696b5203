"""The unit files in contrib/systemd: the settings the daemon and its operators rely on."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from failoverd.config.schema import NodeSection, WitnessSection

UNITS = Path(__file__).parents[2] / "contrib" / "systemd"
NODE = UNITS / "failoverd.service"
WITNESS = UNITS / "failoverd-witness.service"

# Options that give the unit a mount namespace, take privileges away or filter system
# calls: all inherited by the service the startup scripts start (see failoverd.service).
INHERITED_SANDBOX = {
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "SystemCallFilter",
    "MemoryDenyWriteExecute",
    "UMask",
}


def parse(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(path)
    return unit


@pytest.mark.parametrize(
    ("path", "command"),
    [
        (NODE, "/usr/local/bin/failoverd run -c /etc/failoverd/failoverd.toml"),
        (WITNESS, "/usr/local/bin/failoverd witness -c /etc/failoverd/witness.toml"),
    ],
)
def test_notify_watchdog_reload_restart(path: Path, command: str) -> None:
    unit = parse(path)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "10s"
    assert service["ExecStart"] == command
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_stopping_the_node_daemon_leaves_its_service_running() -> None:
    service = parse(NODE)["Service"]
    assert service["KillMode"] == "process"
    assert INHERITED_SANDBOX.isdisjoint(service)


def test_the_node_daemon_may_raise_its_priority_and_lock_its_memory() -> None:
    """node.realtime_priority and node.lock_memory are on by default: the unit must let
    the daemon have SCHED_RR and mlockall (root's CAP_SYS_NICE and CAP_IPC_LOCK)."""
    service = parse(NODE)["Service"]
    assert service.get("User", "root") == "root"
    assert "RestrictRealtime" not in service
    assert "CapabilityBoundingSet" not in service
    assert NodeSection.model_fields["realtime_priority"].default > 0
    assert NodeSection.model_fields["lock_memory"].default is True


def test_state_directories_match_the_config_defaults() -> None:
    node_default = NodeSection.model_fields["state_dir"].default
    witness_default = WitnessSection.model_fields["state_dir"].default
    assert Path("/var/lib") / parse(NODE)["Service"]["StateDirectory"] == node_default
    assert Path("/var/lib") / parse(WITNESS)["Service"]["StateDirectory"] == witness_default


def test_the_witness_is_sandboxed() -> None:
    service = parse(WITNESS)["Service"]
    assert service.get("KillMode", "control-group") == "control-group"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    for unit in (NODE, WITNESS):
        shutil.copy(unit, tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in (NODE, WITNESS))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The only complaint allowed: the daemon is not installed on this machine.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "/usr/local/bin/failoverd is not executable" not in line
    ]
    assert problems == []
