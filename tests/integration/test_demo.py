"""`failoverd demo` end to end: it fails over, fails back, cleans up and exits 0."""

import os
import re
import subprocess
from pathlib import Path

from failoverd.demo.cluster import leftovers
from failoverd.lab.node import failoverd_command


def test_demo_fails_over_and_back_and_cleans_up() -> None:
    wide = {**os.environ, "COLUMNS": "200"}  # no wrapped table cells
    done = subprocess.run(
        [*failoverd_command(), "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=wide,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    print(out)
    found = re.search(r"^Directory: (\S+)", out, re.MULTILINE)
    assert found is not None
    base = Path(found.group(1))
    assert not base.exists()
    assert not leftovers(base)
    assert "Safety mode: witness" in out
    for event in (
        "kill -9",
        "failure detected",
        "SHUTDOWN_YOUR_SERVICE sent",
        "answer to SHUTDOWN_YOUR_SERVICE",
        "startup scripts started",
        "taking_over → active",
        "service answering again",
    ):
        assert event in out, event
    assert re.search(r"Failover time: \d+\.\d{3}s", out)
    assert "alpha is active again" in out
