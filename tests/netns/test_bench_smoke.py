"""A tiny run of `python -m bench` (what `make bench` runs): it completes and writes its report.

One trial per fault of failoverd's fast profile, a short loss and SIGSTOP run.
Timing figures are printed by the bench, never asserted here.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[2]


def test_bench_smoke_writes_results(tmp_path: Path) -> None:
    for tool, package in (("haproxy", "haproxy"), ("dovecot", "dovecot-pop3d")):
        if shutil.which(tool) is None:
            pytest.skip(f"the bench needs {tool} (apt-get install {package})")
    # keepalived is compared by `make bench` (which installs it); the smoke run checks
    # that the bench itself works end to end, on failoverd alone.
    runs = ["failoverd:fast"]
    argv = [
        sys.executable, "-m", "bench", "--smoke", "--only", ",".join(runs), "--trials", "1",
        "--loss-seconds", "2", "--sigstop-runs", "1", "--sigstop-seconds", "1",
        "--footprint-seconds", "1", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=80, check=False)
    print(done.stdout)
    print(done.stderr, file=sys.stderr)
    assert done.returncode == 0, done.stderr[-2000:]

    data = json.loads((tmp_path / "results.json").read_text())
    assert [f"{r['system']}:{r['profile']}" for r in data["runs"]] == runs
    for run in data["runs"]:
        assert "errors" not in run, run["errors"]
        assert set(run["failover"]) == {"kill", "cut"}
        for result in run["failover"].values():
            (trial,) = result["trials"]
            assert trial["seconds"] is not None, trial  # the other node answered at all
        assert {f["kind"] for f in run["false_failovers"]} == {"sigstop", "loss"}
        assert run["footprint"]["processes"]
    names = " / ".join(t["target"] for t in data["targets"])
    for target in ("fast profile median ≤ 500 ms (kill)", "false failovers", "100 checks"):
        assert target in names
    text = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## Failover time", "## False failovers", "## Footprint", "## Targets"):
        assert heading in text
    assert text in done.stdout  # the same table is printed
