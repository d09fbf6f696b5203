"""The scenario framework's parts that need no lab, and `failoverd selftest` itself."""

import subprocess

import pytest
from click.testing import CliRunner

from failoverd.cli import selftest_cmd
from failoverd.cli.main import cli
from failoverd.core.types import SafetyMode
from failoverd.lab import fence
from failoverd.lab.cluster import journal_problems, transitions
from failoverd.lab.node import failoverd_command
from failoverd.lab.scenarios import QUICK, SCENARIOS, ScenarioResult
from failoverd.lab.watch import Sample, _overlap


def _record(clock: float, epoch: int, kind: str = "hold", frm: str = "", to: str = "") -> dict:
    return {
        "clock": clock,
        "epoch": epoch,
        "kind": kind,
        "from": frm or None,
        "to": to or None,
        "reason": "r",
    }


def test_journal_problems_accept_a_failover_and_a_failback() -> None:
    journals = {
        "primary": [
            _record(1, 1, "transition", "taking_over", "active"),
            _record(5, 1, "transition", "active", "releasing"),
            _record(9, 3, "transition", "taking_over", "active"),
        ],
        "standby": [_record(6, 2, "transition", "taking_over", "active")],
    }
    assert journal_problems(journals) == []
    moves = list(transitions(journals, since=2))
    order = [(m["node"], m["clock"]) for m in moves]
    assert order == [("primary", 5), ("standby", 6), ("primary", 9)]


def test_journal_problems_find_epochs_going_back_and_a_reused_epoch() -> None:
    journals = {
        "primary": [_record(1, 2, "transition", "taking_over", "active"), _record(2, 1, "script")],
        "standby": [_record(3, 2, "transition", "taking_over", "active")],
    }
    problems = journal_problems(journals)
    assert any("epoch went from 2 to 1" in p for p in problems)
    assert any("takeovers out of order" in p for p in problems)


def test_dual_activity_counts_sample_periods_with_two_nodes_serving() -> None:
    both = ("primary", "standby")
    samples = [
        Sample(0.0, ("primary",), ()),
        Sample(0.1, both, ()),
        Sample(0.2, both, ()),
        Sample(0.3, ("standby",), ()),
        Sample(5.0, both, ()),  # the watch stalled after it: counted up to the cap
    ]
    assert _overlap(samples, "serving", cap=0.2) == pytest.approx(0.1 + 0.1 + 0.1)
    assert _overlap(samples, "healthy", cap=0.2) == 0


def test_the_quick_subset_is_part_of_the_matrix_and_names_are_unique() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) == 14
    assert QUICK and all(s in SCENARIOS for s in QUICK)


def test_selftest_lists_the_scenarios_without_root() -> None:
    result = CliRunner().invoke(cli, ["selftest", "--list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == [s.name for s in SCENARIOS]


def test_selftest_refuses_in_one_line_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest_cmd.os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["selftest", "--quick"])
    assert result.exit_code == selftest_cmd.UNAVAILABLE
    assert result.output.strip().splitlines() == [
        "failoverd selftest: needs root (network namespaces, iptables): run it as root"
    ]


def test_selftest_names_a_missing_package_and_make_system_deps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(selftest_cmd.os, "geteuid", lambda: 0)
    monkeypatch.setattr("failoverd.lab.netns.Topology.require", staticmethod(lambda: None))
    monkeypatch.setattr(selftest_cmd.shutil, "which", lambda tool: None)
    assert selftest_cmd._unavailable() == (
        "HAProxy is not installed; install the lab's packages with `make system-deps` (as root)"
    )


def test_selftest_refuses_an_unknown_scenario() -> None:
    result = CliRunner().invoke(cli, ["selftest", "--scenario", "nope"])
    assert result.exit_code == 2
    assert "no scenario nope" in result.output


def test_verdict_table_shows_every_figure() -> None:
    results = [
        ScenarioResult("a", SafetyMode.WITNESS, True, 6.74, 0.0, 0, "fine", 6.6, 17.0),
        ScenarioResult("b", SafetyMode.WITNESS, False, None, 1.25, 2, "bad", 0.0, 9.0),
    ]
    table = selftest_cmd._verdict(results)
    text = "\n".join(" ".join(str(c) for c in col.cells) for col in table.columns)
    assert "6.7s" in text and "1.2s" in text and "-" in text
    assert [str(c) for c in table.columns[1].cells] == ["✓", "✗"]


def test_fence_command_fails_in_one_line_when_the_switch_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert fence.main(["--switch", "127.0.0.1:1", "--timeout", "1", "primary"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("fence primary: power switch 127.0.0.1:1 unreachable")


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_selftest_runs_a_scenario_and_prints_the_verdict() -> None:
    done = subprocess.run(
        [*failoverd_command(), "selftest", "--mode", "fence", "--scenario", "service-dies"],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "service-dies" in done.stdout and "✓" in done.stdout
    assert "1/1 passed" in done.stdout
