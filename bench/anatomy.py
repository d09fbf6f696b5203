"""What a failoverd process's memory is made of: its RSS after each layer of imports.

Run in a fresh interpreter of the same environment as the daemons, importing
in the order the daemon's own imports pull things in; each step's growth is
what that layer costs in RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys

# (label, modules): cumulative; the daemon imports all of them (`failoverd run` goes
# through failoverd.cli, which registers every command).
LAYERS = (
    ("python interpreter", ()),
    ("asyncio (with ssl, OpenSSL)", ("asyncio",)),
    ("pydantic", ("pydantic",)),
    ("failoverd's config schema (pydantic models)", ("failoverd.config.load",)),
    ("aiohttp (client and web server)", ("aiohttp", "aiohttp.web")),
    ("prometheus_client", ("prometheus_client",)),
    ("failoverd runtime, checks, alerts, API", ("failoverd.runtime.daemon", "failoverd.api")),
    ("the CLI (click, rich, every command)", ("failoverd.cli",)),
)

_PROBE = """
import importlib, json, sys
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
out = []
for label, modules in json.loads(sys.argv[1]):
    for m in modules:
        importlib.import_module(m)
    out.append([label, rss(), len(sys.modules)])
print(json.dumps(out))
"""


def layers() -> list[dict[str, float | str | int]]:
    """Each layer's RSS growth in MB, with the total after it and the modules loaded."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(LAYERS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = json.loads(done.stdout)
    out: list[dict[str, float | str | int]] = []
    previous = 0.0
    for label, rss, modules in rows:
        out.append(
            {
                "layer": label,
                "rss_mb": round(rss - previous, 1),
                "total_mb": round(rss, 1),
                "modules": modules,
            }
        )
        previous = rss
    return out
