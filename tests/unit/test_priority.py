"""Real-time scheduling and locked memory, asked of the real kernel.

Each probe runs in a Python process of its own: the test process itself must
not become real-time or locked.
"""

import errno
import json
import os
import resource
import subprocess
import sys
from typing import Any

import pytest

from failoverd.runtime.priority import lock_memory, raise_priority

DROP_CAPABILITIES = ["setpriv", "--bounding-set", "-sys_nice,-ipc_lock", "--"]
"""Root without the two capabilities that would let it past the limits below."""

PROBE = """
import json, os, subprocess, sys, threading
from failoverd.runtime.priority import lock_memory, raise_priority

def policy(tid=0):
    return os.sched_getscheduler(tid)

def locked_kb(status):
    line = next(l for l in status.splitlines() if l.startswith("VmLck:"))
    return int(line.split()[1])

named_ready, finish = threading.Event(), threading.Event()
named = threading.Thread(target=lambda: (named_ready.set(), finish.wait()))
named.start()
named_ready.wait()
threads = [int(t) for t in sys.argv[2:]] or [named.native_id]
rt = raise_priority(int(sys.argv[1]), threads)
mem = lock_memory(True)
later = {}
after = threading.Thread(target=lambda: later.update(policy=policy()))
after.start()
after.join()
child = subprocess.run(
    [sys.executable, "-c",
     "import os; print(os.sched_getscheduler(0), open('/proc/self/status').read())"],
    capture_output=True, text=True, check=True,
).stdout
child_policy, child_status = child.split(" ", 1)
print(json.dumps({
    "rt": [rt.what, rt.error.errno if rt.error else None, rt.fix],
    "mem": [mem.what, mem.error.errno if mem.error else None, mem.fix],
    "main": [policy(), os.sched_getparam(0).sched_priority],
    "named": policy(named.native_id),
    "later": later["policy"],
    "child": int(child_policy),
    "locked_kb": locked_kb(open("/proc/self/status").read()),
    "child_locked_kb": locked_kb(child_status),
}))
finish.set()
"""

RR_RESET = os.SCHED_RR | os.SCHED_RESET_ON_FORK


def _unprivileged_limits() -> None:
    """What a user gets by default: no real-time priority, little lockable memory."""
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * 1024, 64 * 1024))


def probe(*args: str, unprivileged: bool = False) -> dict[str, Any]:
    drop = DROP_CAPABILITIES if unprivileged and os.geteuid() == 0 else []
    done = subprocess.run(
        [*drop, sys.executable, "-c", PROBE, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_unprivileged_limits if unprivileged else None,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: SCHED_RR and mlockall need CAP_SYS_NICE and CAP_IPC_LOCK")


def test_switched_off_asks_the_kernel_nothing() -> None:
    before = os.sched_getscheduler(0)
    rt = raise_priority(0, [1])  # pid 1 would be refused: it is not even tried
    mem = lock_memory(False)
    assert rt.ok and "normal scheduler" in rt.what
    assert mem.ok and "not locked" in mem.what
    assert os.sched_getscheduler(0) == before


def test_the_loop_and_the_named_thread_run_real_time_and_pass_it_on_to_nothing() -> None:
    needs_root()
    got = probe("10")
    assert got["rt"][1] is None and got["mem"][1] is None, got
    assert got["main"] == [RR_RESET, 10]
    assert got["named"] == RR_RESET
    # A thread created later, and a process started (a script, the service), start normal;
    # mlockall's locks end at fork and exec.
    assert got["later"] == os.SCHED_OTHER
    assert got["child"] == os.SCHED_OTHER
    assert got["locked_kb"] > 0
    assert got["child_locked_kb"] == 0


def test_a_refused_request_is_an_outcome_with_its_fix_not_an_exception() -> None:
    needs_root()
    got = probe("10", "999999999")  # no such thread
    assert got["rt"] == [
        "SCHED_RR priority 10",
        errno.ESRCH,
        "run the daemon as root (CAP_SYS_NICE), or set node.realtime_priority = 0",
    ]


def test_an_unprivileged_daemon_runs_on_without_either() -> None:
    """What a daemon started by a user, or by root without CAP_SYS_NICE and CAP_IPC_LOCK, gets."""
    got = probe("10", unprivileged=True)
    assert got["rt"][1] == errno.EPERM
    assert got["mem"][1] in (errno.ENOMEM, errno.EPERM, errno.EAGAIN)
    assert "node.lock_memory = false" in got["mem"][2]
    assert got["main"][0] == os.SCHED_OTHER
    assert got["locked_kb"] == 0
