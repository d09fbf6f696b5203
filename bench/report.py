"""Summaries, the targets, and the results as markdown (RESULTS.md) and JSON (results.json)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FAILOVERD, KEEPALIVED = "failoverd", "keepalived"
RSS_LIMIT_MB = 40.0
IDLE_CPU_LIMIT = 1.0
CHECKS_CPU_LIMIT = 5.0
FAST_LIMIT = 0.5
RATIO_LIMIT = 1 / 3


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    failed: int
    min: float
    median: float
    p95: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "failed": self.failed,
            "min": round(self.min, 4),
            "median": round(self.median, 4),
            "p95": round(self.p95, 4),
            "max": round(self.max, 4),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(times: Sequence[float | None]) -> Summary | None:
    ok = [t for t in times if t is not None]
    if not ok:
        return None
    return Summary(
        len(ok),
        len(times) - len(ok),
        min(ok),
        statistics.median(ok),
        percentile(ok, 0.95),
        max(ok),
    )


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    ok: bool | None  # None: not measured in this run
    measured: str

    def mark(self) -> str:
        return "–" if self.ok is None else ("✓" if self.ok else "✗")

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.name, "ok": self.ok, "measured": self.measured}


def _results(data: dict[str, Any], system: str, profile: str) -> dict[str, Any] | None:
    for r in data["runs"]:
        if r["system"] == system and r["profile"] == profile:
            return dict(r)
    return None


def _median(run: dict[str, Any] | None, fault: str) -> float | None:
    if run is None:
        return None
    s = run.get("failover", {}).get(fault, {}).get("summary")
    return None if s is None else float(s["median"])


def targets(data: dict[str, Any]) -> list[Target]:
    out: list[Target] = []
    fd_default = _results(data, FAILOVERD, "default")
    ka_default = _results(data, KEEPALIVED, "default")
    fd_fast = _results(data, FAILOVERD, "fast")
    for fault in ("kill", "cut"):
        fd, ka = _median(fd_default, fault), _median(ka_default, fault)
        name = f"default profile median ≤ 1/3 of keepalived's default median ({fault})"
        if fd is None or ka is None:
            out.append(Target(name, None, "not measured"))
        else:
            out.append(
                Target(name, fd <= ka * RATIO_LIMIT, f"{fd:.3f}s vs {ka:.3f}s: {fd / ka:.2f}×")
            )
    for fault in ("kill", "cut"):
        fast = _median(fd_fast, fault)
        name = f"fast profile median ≤ 500 ms ({fault})"
        measured = "not measured" if fast is None else f"{fast * 1000:.0f} ms"
        out.append(Target(name, None if fast is None else fast <= FAST_LIMIT, measured))
    changes = []
    for run in data["runs"]:
        if run["system"] != FAILOVERD:
            continue
        for ff in run.get("false_failovers", []):
            changes.append((f"{run['profile']} {ff['kind']}", ff["role_changes"]))
    name = "0 false failovers for failoverd (every loss and SIGSTOP run)"
    if changes:
        measured = ", ".join(f"{k}: {n}" for k, n in changes)
        out.append(Target(name, all(n == 0 for _, n in changes), measured))
    else:
        out.append(Target(name, None, "not measured"))
    idle = [
        (proc, u)
        for run in data["runs"]
        if run["system"] == FAILOVERD and run["profile"] == "default" and run.get("footprint")
        for proc, u in run["footprint"]["processes"].items()
    ]
    if idle:
        worst_rss = max(idle, key=lambda x: x[1]["max_rss_mb"])
        worst_cpu = max(idle, key=lambda x: x[1]["cpu_percent"])
        out.append(
            Target(
                "idle RSS ≤ 40 MB (default profile, each failoverd process)",
                worst_rss[1]["max_rss_mb"] <= RSS_LIMIT_MB,
                f"at most {worst_rss[1]['max_rss_mb']:.1f} MB ({worst_rss[0]})",
            )
        )
        out.append(
            Target(
                "idle CPU ≤ 1 % (default profile, each failoverd process)",
                worst_cpu[1]["cpu_percent"] <= IDLE_CPU_LIMIT,
                f"at most {worst_cpu[1]['cpu_percent']:.2f} % of a core ({worst_cpu[0]})",
            )
        )
    else:
        out.append(Target("idle RSS ≤ 40 MB", None, "not measured"))
        out.append(Target("idle CPU ≤ 1 %", None, "not measured"))
    checks = data.get("checks")
    name = "100 checks ≤ 5 % CPU (default profile + 100 tcp checks, each failoverd process)"
    if checks:
        procs = checks["processes"]
        worst = max(procs.items(), key=lambda x: x[1]["cpu_percent"])
        out.append(
            Target(
                name,
                worst[1]["cpu_percent"] <= CHECKS_CPU_LIMIT,
                f"at most {worst[1]['cpu_percent']:.2f} % of a core ({worst[0]})",
            )
        )
    else:
        out.append(Target(name, None, "not measured"))
    return out


# -- markdown -------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _s(x: float) -> str:
    return f"{x:.3f}"


def failover_table(data: dict[str, Any]) -> list[str]:
    rows = []
    for run in data["runs"]:
        for fault, result in run.get("failover", {}).items():
            s = result.get("summary")
            if s is None:
                rows.append([run["system"], run["profile"], fault, "0", "–", "–", "–", "–", "–"])
                continue
            rows.append(
                [
                    run["system"],
                    run["profile"],
                    fault,
                    str(s["n"]),
                    str(s["failed"]),
                    _s(s["min"]),
                    _s(s["median"]),
                    _s(s["p95"]),
                    _s(s["max"]),
                ]
            )
    header = ["system", "profile", "fault", "n", "no answer", "min s", "median s", "p95 s", "max s"]
    return _table(header, rows)


def ratio_table(data: dict[str, Any]) -> list[str]:
    rows = []
    fd_profiles = [r["profile"] for r in data["runs"] if r["system"] == FAILOVERD]
    for fd_profile in fd_profiles:
        for ka_profile in ("default", "fast"):
            for fault in ("kill", "cut"):
                fd = _median(_results(data, FAILOVERD, fd_profile), fault)
                ka = _median(_results(data, KEEPALIVED, ka_profile), fault)
                if fd is None or ka is None:
                    continue
                rows.append([fd_profile, ka_profile, fault, f"{fd / ka:.2f}"])
    if not rows:
        return []
    return _table(["failoverd", "keepalived", "fault", "median ratio failoverd/keepalived"], rows)


def false_failover_table(data: dict[str, Any]) -> list[str]:
    rows = []
    for run in data["runs"]:
        for ff in run.get("false_failovers", []):
            what = (
                f"{ff['detail']}, {ff['seconds']:g}s"
                if ff["kind"] == "loss"
                else f"{ff['runs']} × {ff['detail']}"
            )
            dropped = "" if ff["dropped_packets"] is None else f" ({ff['dropped_packets']} dropped)"
            tried = ff.get("takeover_attempts")
            rows.append(
                [
                    run["system"],
                    run["profile"],
                    what + dropped,
                    str(ff["role_changes"]),
                    f"{ff.get('both_serving_seconds', 0.0):.3f}",
                    "–" if tried is None else str(tried),
                ]
            )
    header = [
        "system", "profile", "fault", "role changes", "both nodes serving, s",
        "takeovers begun (abandoned or not)",
    ]  # fmt: skip
    return [
        "A role change is a node starting its service (failoverd: its startup scripts; "
        "keepalived: entering MASTER, which adds the VIP and starts Dovecot) or beginning to "
        "stop it. A failoverd takeover can begin and be given up before anything starts (the "
        "witness still hears the active node): those are counted apart.",
        "",
        *_table(header, rows),
    ]


def footprint_table(data: dict[str, Any]) -> list[str]:
    rows = []
    entries = [(run["system"], run["profile"], run.get("footprint")) for run in data["runs"]]
    if data.get("checks"):
        entries.append((FAILOVERD, f"default + {data['checks_count']} tcp checks", data["checks"]))
    if data.get("lb_1s"):
        entries.append((FAILOVERD, "default, HAProxy checks every 1 s", data["lb_1s"]))
    for system, profile, fp in entries:
        if not fp:
            continue
        for proc, u in fp["processes"].items():
            rows.append(
                [
                    system,
                    profile,
                    proc,
                    f"{u['rss_mb']:.1f}",
                    f"{u['max_rss_mb']:.1f}",
                    f"{u['cpu_percent']:.2f}",
                    f"{u['children_cpu_percent']:.2f}",
                    f"{fp['seconds']:g}",
                    f"{fp['machine_cpu_percent']:.0f} %",
                ]
            )
    header = [
        "system", "profile", "process", "RSS MB", "max RSS MB", "CPU % of a core",
        "children's CPU %", "window s", "machine busy",
    ]  # fmt: skip
    return _table(header, rows)


def profile_lines(data: dict[str, Any]) -> list[str]:
    """py-spy's view of the failoverd processes, when the run was made with --py-spy."""
    entries = [(run["profile"], run.get("footprint")) for run in data["runs"]]
    if data.get("checks"):
        entries.append((f"default + {data['checks_count']} tcp checks", data["checks"]))
    lines: list[str] = []
    for profile, fp in entries:
        for proc, summary in ((fp or {}).get("py_spy") or {}).items():
            if not summary["top"]:
                continue
            cpu = fp["processes"][proc]["cpu_percent"]
            lines += [
                "",
                f"{profile}, {proc} ({cpu:.2f} % of a core; {summary['busy_samples']} busy "
                f"samples in {fp['py_spy_seconds']:g}s):",
                "",
                *_table(
                    ["function (inclusive)", "share of busy samples", "≈ % of a core"],
                    [
                        [f"`{r['function']}`", f"{r['share']:.0%}", f"{r['cpu_percent']:.2f}"]
                        for r in summary["top"]
                    ],
                ),
            ]
    if lines:
        lines = [
            "## Where failoverd's CPU goes (py-spy)",
            "",
            "Sampled after the footprint window, `--nonblocking`. A sample counts as busy when "
            "the thread is not waiting in select/a queue; a thread preempted inside a system "
            "call (sendto waking the receiver on a busy 2-core machine) counts as busy too, so "
            "system calls look bigger than their CPU.",
            *lines,
            "",
        ]
    return lines


def _mean_phases(run: dict[str, Any], fault: str) -> dict[str, float]:
    """The mean of each takeover step over the trials that had it."""
    steps: dict[str, list[float]] = {}
    for trial in run.get("failover", {}).get(fault, {}).get("trials", []):
        for step, at in trial.get("phases", {}).items():
            steps.setdefault(step, []).append(at)
    return {step: statistics.fmean(v) for step, v in steps.items()}


def bound_lines(data: dict[str, Any]) -> list[str]:
    """What each failover figure is made of: the measured steps beside the configured bound."""
    lines = []
    for run in data["runs"]:
        st = run["settings"]
        for fault in ("kill", "cut"):
            median = _median(run, fault)
            ph = _mean_phases(run, fault)
            if median is None or not ph:
                continue
            name = f"{run['system']} {run['profile']}, {fault}"
            if run["system"] == KEEPALIVED:
                lines.append(
                    f"- {name}: median {median:.3f}s. Backup became MASTER after "
                    f"{ph.get('master', float('nan')):.3f}s on average (master_down_interval "
                    f"{st['master_down_interval']:g}s = 3 × advert_int + skew, counted from "
                    f"the last advert heard), clients answered "
                    f"{ph.get('answered', float('nan')) - ph.get('master', float('nan')):.3f}s "
                    f"later (notify script starts Dovecot, gratuitous ARP, first login)."
                )
            elif "vote_block" in st:
                wait = ph.get("start", float("nan"))
                lines.append(
                    f"- {name}: median {median:.3f}s. Suspected after "
                    f"{ph.get('detected', float('nan')):.3f}s, lease granted and startup begun "
                    f"after {wait:.3f}s (vote block {st['vote_block']:g}s from the old active's "
                    f"last renewal: lease_time {st['lease_time']:g}s stretched for clock drift "
                    f"{st['clock_drift']:g}, + demote_margin), active after "
                    f"{ph.get('active', float('nan')):.3f}s, first login answered after "
                    f"{ph.get('answered', float('nan')):.3f}s (load balancer check, Dovecot's "
                    f"first login). The lease wait is {wait / median:.0%} of the median."
                )
            else:
                lines.append(
                    f"- {name}: median {median:.3f}s. Suspected after "
                    f"{ph.get('detected', float('nan')):.3f}s (dead_time "
                    f"{st['dead_time']:g}s), services started after "
                    f"{ph.get('start', float('nan')):.3f}s (cooperative: on the peer's answer to "
                    f"SHUTDOWN_YOUR_SERVICE, here refused or timed out), first login answered "
                    f"after {ph.get('answered', float('nan')):.3f}s."
                )
    return lines


def _duration(text: str) -> float:
    """Seconds from "100ms" / "1s" (the HAProxy inter of the settings)."""
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


def footprint_lines(data: dict[str, Any]) -> list[str]:
    """What the idle figures are made of: the imports behind the RSS, the events behind the CPU."""
    lines: list[str] = []
    layers = data.get("memory_layers")
    if layers:
        rows = [
            [str(r["layer"]), f"+{r['rss_mb']:.1f}", f"{r['total_mb']:.1f}", str(r["modules"])]
            for r in layers
        ]
        lines += [
            "A failoverd process's RSS after each layer of its imports (a fresh interpreter of "
            "the same environment, importing what the daemon imports):",
            "",
            *_table(["layer", "RSS MB", "total MB", "modules"], rows),
            "",
        ]
    for run in data["runs"]:
        fp, st = run.get("footprint"), run["settings"]
        if run["system"] != FAILOVERD or not fp or "vote_block" not in st:
            continue
        active = next((u for k, u in fp["processes"].items() if "(active)" in k), None)
        if active is None:
            continue
        hb = float(st["heartbeat_interval"])
        inter = _duration(st["haproxy"].split("inter ")[1].split()[0])
        check = float(st["local_check"].split()[-1].split("/")[0])
        events = 2 / hb + 1 / hb + 3 / hb + 1 / inter + 1 / check + 1 / hb
        cpu_ms = active["cpu_percent"] * 10  # ms of CPU per second
        lines.append(
            f"- failoverd {run['profile']}, active node at idle: every second "
            f"{2 / hb:g} heartbeats out (peer and witness), {1 / hb:g} acks out, "
            f"{3 / hb:g} datagrams in (the peer's heartbeats, two voters' acks), "
            f"{1 / hb:g} timer wake-ups, {1 / inter:g} `GET /health` from HAProxy "
            f"(inter {inter * 1000:g} ms) and {1 / check:g} POP3 check: about "
            f"{events:.0f} events for {cpu_ms:.1f} ms of CPU, "
            f"{cpu_ms / events * 1000:.0f} µs each."
        )
    return lines


def reading_lines(data: dict[str, Any]) -> list[str]:
    """What bounds the missed targets, in words, with this run's numbers."""
    lines: list[str] = []
    fd_default = _results(data, FAILOVERD, "default")
    ka_default = _results(data, KEEPALIVED, "default")
    ka_median = _median(ka_default, "kill")
    if fd_default is not None and "vote_block" in fd_default["settings"]:
        st = fd_default["settings"]
        drift, margin = st["clock_drift"], st["demote_margin"]
        stretch = (1 + drift) / (1 - drift)
        floor = (st["dead_time"] + margin) * stretch + margin
        text = (
            "- **Default profile vs keepalived's default.** In witness mode the standby may "
            "start the service only once every vote for the old active has run out: the vote "
            f"block, lease_time × (1 + drift)/(1 − drift) + demote_margin = "
            f"{st['vote_block']:g}s here, counted from the old active's last renewal. The "
            "lease must outlast the shutdown scripts (the old active, if it is only cut off, "
            "must have stopped Dovecot before its lease ends); with a graceful Dovecot stop "
            f"({st['shutdown']}) it is {st['lease_time']:g}s. Even an instant stop script "
            f"would leave (dead_time + demote_margin) × {stretch:.4f} + demote_margin = "
            f"{floor:.3f}s with the default timers"
        )
        if ka_median is not None:
            text += (
                f", more than a third of keepalived's default median ({ka_median / 3:.3f}s): "
                "the ratio target cannot be met by the default timers in witness mode. "
            )
        else:
            text += ". "
        text += (
            "The fast profile meets it (its stop script kills Dovecot in milliseconds, so its "
            "lease can be short), and the cooperative extra shows the default timers without "
            "a lease, at VRRP's safety level."
        )
        lines.append(text)
    fd_demote = _results(data, FAILOVERD, "demote")
    if fd_demote is not None and "vote_block" in fd_demote["settings"]:
        st = fd_demote["settings"]
        medians = [(f, _median(fd_demote, f)) for f in ("kill", "cut")]
        text = (
            "- **With a demote script** (the demote run: the default timers and graceful stop, "
            f"plus `[scripts] demote`, {st['demote']}). A node that cannot renew kills "
            f"Dovecot instead of stopping it gracefully, so the lease covers that: "
            f"{st['lease_time']:g}s, vote block {st['vote_block']:g}s. Medians: "
            + ", ".join(f"{f} {m:.3f}s" for f, m in medians if m is not None)
        )
        ratios = [
            f"{f} {m / ka:.2f}×"
            for f, m in medians
            if m is not None and (ka := _median(ka_default, f)) is not None
        ]
        if ratios:
            text += f"; of keepalived's default medians: {', '.join(ratios)}"
        lines.append(text + ".")
    ka_runs = [r for r in data["runs"] if r["system"] == KEEPALIVED]
    split = [
        (r["profile"], ff["kind"], ff["role_changes"], ff.get("both_serving_seconds", 0.0))
        for r in ka_runs
        for ff in r.get("false_failovers", [])
    ]
    if split:
        lines.append(
            "- **What keepalived's speed costs.** VRRP moves the address on silence alone: "
            "no lease, no third vote, no fencing. Under loss or a frozen daemon its backup "
            "becomes MASTER while the master still runs, and both hold the VIP and run Dovecot "
            "until the adverts get through again: "
            + "; ".join(f"{p} {k}: {n} role changes, both serving {b:.2f}s" for p, k, n, b in split)
            + ". failoverd's standby asks the witness first, and the active keeps its lease "
            "through the witness while the link between the nodes is lossy."
        )
    if data.get("memory_layers"):
        imports = data["memory_layers"][-1]["total_mb"]
        lines.append(
            f"- **RSS.** Importing what the daemon imports takes {imports:.0f} MB (table above: "
            "the interpreter, asyncio with OpenSSL, pydantic and the config schema's models, "
            "aiohttp for the API, prometheus_client); the daemon's own state adds little. "
            "40 MB is out of reach without dropping aiohttp or pydantic from the running "
            "daemon: not a bench-side fix."
        )
    lb = data.get("lb_1s")
    if lb and fd_default and fd_default.get("footprint"):
        base = max(u["cpu_percent"] for u in fd_default["footprint"]["processes"].values())
        polled = max(u["cpu_percent"] for u in lb["processes"].values())
        lines.append(
            "- **Idle CPU.** It is the Python cost of each event (the per-event figures above: "
            "HMAC and JSON of every datagram, the core's step, the status snapshot, asyncio) "
            "times the events a node handles even when nothing happens. With HAProxy checking "
            f"`/health` every second instead of every 100 ms the busiest node used {polled:.2f} "
            f"% of a core instead of {base:.2f} %: aiohttp answering health checks is a good "
            "part of it."
        )
    return lines


def target_lines(data: dict[str, Any]) -> list[str]:
    return [f"- {t.mark()} {t.name}: {t.measured}" for t in targets(data)]


def markdown(data: dict[str, Any], notes: str = "") -> str:
    m = data["machine"]
    lines = [
        "# failoverd bench: failover time, false failovers, footprint (beside keepalived)",
        "",
        f"Run {data['started']} ({data['duration_s'] / 60:.0f} min), `{data['command']}`"
        + (" (smoke: a few trials, not figures to quote)." if data["smoke"] else "."),
        "",
        "## Failover time",
        "",
        "From the fault to the end of the first successful POP3 login, through HAProxy "
        "(failoverd) or the VIP (keepalived), answered by the other node.",
        "",
        *failover_table(data),
        "",
        *ratio_table(data),
        "",
        "## False failovers",
        "",
        *false_failover_table(data),
        "",
        "## Footprint (idle)",
        "",
        *footprint_table(data),
        "",
        *footprint_lines(data),
        "",
        *profile_lines(data),
        "## Targets",
        "",
        *target_lines(data),
        "",
        "## What the failover figures are made of",
        "",
        *bound_lines(data),
        "",
        "## Reading the results",
        "",
        *reading_lines(data),
        "",
        "## Machine and versions",
        "",
        f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']:.1f} GB, kernel {m['kernel']}, "
        f"{m['os']}",
        f"- load average at start {_load(m['loadavg_start'])}, at end "
        f"{_load(m.get('loadavg_end'))} (the machine is shared with other engineers' tests)",
        *(f"- {k}: {v}" for k, v in data["versions"].items()),
        "",
        "## Settings",
        "",
        *(
            f"- {run['system']} {run['profile']}: "
            + "; ".join(f"{k} {v}" for k, v in run["settings"].items())
            for run in data["runs"]
        ),
        f"- client: {data['client']}",
        "",
    ]
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines)


def _load(value: Any) -> str:
    return "?" if not value else " / ".join(f"{x:.2f}" for x in value)
