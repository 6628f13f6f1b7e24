"""What the hub costs per user: its CPU and memory with 10, 50 and 100 idle servers running.

Starts a hub against the mini cluster as a site runs it (poll every 30 s, the culler on with a
one-hour timeout, so every JupyterLab reports its activity every 5 min and checks its Dask
workers every 2.5 min), then brings up idle servers in steps (default 10, 50, 100; 1 core and
300M each: 100 fill the two gpp nodes' 32000M) through the REST API.  After each step it lets
the starts settle, then measures for a window (default 180 s):

* the CPU seconds per minute of the hub and every process it started (its proxy, the culler
  services, and the ``sudo``/SLURM commands it ran and reaped);
* the same of slurmctld, which the servers' own checks reach;
* the resident memory of the hub and of its proxy;
* the requests the hub answered in the window, by handler, from its /hub/metrics (less
  this benchmark's own).

It prints one row a step, and each figure divided by the number of servers: a cost that
grows faster than the servers shows as a per-server figure that grows.  Removes its users.
Usage: python -m benchmarks.hub_cost [--steps 10 50 100] [--window 180]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.hub_load import create_users, remove_users
from tests.harness import DEPLOYED_FORM, HubError, HubProcess, launch

SMALL = {"partition": "gpp", "cpus": "1", "memory": "300M", "walltime": "02:00:00"}
TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state is [0], utime [11])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def processes() -> dict[int, list[str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = proc_stat(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def family(pid: int) -> dict[int, list[str]]:
    """The process ``pid`` and its descendants (the hub, its proxy, its services, their commands)."""
    table = processes()
    kept, grew = {pid}, True
    while grew:
        more = {p for p, fields in table.items() if int(fields[1]) in kept} - kept
        kept |= more
        grew = bool(more)
    return {p: table[p] for p in kept if p in table}


def family_cpu(pid: int) -> float:
    """CPU seconds of the hub's live processes, and of the children they reaped."""
    return sum(sum(int(v) for v in fields[11:15]) for fields in family(pid).values()) / TICKS


def pids_of(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_of(pids: list[int]) -> float:
    return sum(sum(int(v) for v in proc_stat(p)[11:13]) for p in pids) / TICKS


def rss_mb(pid: int) -> float:
    found = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) / 1024 if found else 0.0


def proxy_pid(hub_pid: int) -> int:
    for pid in family(hub_pid):
        try:
            if b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except FileNotFoundError:
            continue
    raise LookupError("the hub's proxy")


def requests_by_handler(hub: HubProcess) -> Counter:
    """Requests the hub has answered, by handler, from its Prometheus metrics."""
    found = re.findall(
        r'^jupyterhub_request_duration_seconds_count\{code="\d+",handler="([^"]+)",method="(\w+)"\} ([0-9.e+]+)$',
        hub.api("GET", "/metrics").text,
        re.M,
    )
    counts: Counter = Counter()
    for handler, method, value in found:
        counts[f"{method} {handler.rsplit('.', 1)[-1]}"] += int(float(value))
    return counts


def start_servers(hub: HubProcess, names: list[str], timeout: float) -> list[str]:
    """Start each server (8 at a time, as people arrive) and wait until all are ready; failures."""

    def one(name: str) -> str:
        try:
            r = hub.start(name, SMALL)
            if r.status_code not in (201, 202):
                return f"{name}: {r.status_code} {r.text[:200]}"
            hub.wait_ready(name, timeout)
        except (HubError, OSError) as e:
            return f"{name}: {e}"
        return ""

    with ThreadPoolExecutor(8) as pool:
        return [f for f in pool.map(one, names) if f]


def measure(hub: HubProcess, window: float) -> dict:
    sid = hub.process.pid
    ctld = pids_of("slurmctld")
    hub_cpu0, ctld_cpu0, requests0 = family_cpu(sid), cpu_of(ctld), requests_by_handler(hub)
    t0 = time.monotonic()
    peak_hub = peak_proxy = 0.0
    proxy = proxy_pid(sid)
    while time.monotonic() - t0 < window:
        peak_hub, peak_proxy = max(peak_hub, rss_mb(sid)), max(peak_proxy, rss_mb(proxy))
        time.sleep(1)
    minutes = (time.monotonic() - t0) / 60
    answered = requests_by_handler(hub) - requests0
    answered.pop("GET MetricsHandler", None)  # this benchmark's own
    return {
        "hub_cpu": (family_cpu(sid) - hub_cpu0) / minutes,
        "ctld_cpu": (cpu_of(ctld) - ctld_cpu0) / minutes,
        "hub_rss": peak_hub,
        "proxy_rss": peak_proxy,
        "requests": {k: v / minutes for k, v in answered.items() if v},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--window", type=float, default=180.0, help="seconds measured at each step")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after the last start, before measuring")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    names = [f"cost{i:03d}" for i in range(max(args.steps))]
    create_users(names)
    rows: list[tuple[int, dict]] = []
    failures: list[str] = []
    try:
        hub = launch(
            hub={"poll_interval": 30},
            form=DEPLOYED_FORM,
            culler={"idle_timeout": 3600, "every": 60},
        )
        try:
            base = measure(hub, min(args.window, 60))
            rows.append((0, base))
            running = 0
            for step in args.steps:
                failures += start_servers(hub, names[running:step], args.timeout)
                running = step
                time.sleep(args.settle)
                rows.append((step, measure(hub, args.window)))
                print(f"measured {step} servers", file=sys.stderr)
        finally:
            hub.shutdown()
            for name in names:
                subprocess.run(["scancel", "-u", name], check=False)
    finally:
        remove_users(names)
    print(f"\nwhat the hub costs per idle server: culler every 60 s, activity every 5 min; {args.window:.0f} s a step")
    print(
        "| servers | hub CPU s/min (per server) | slurmctld CPU s/min (per server) "
        "| hub RSS MB (+ per server) | proxy RSS MB | hub requests/min |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    base_rss = rows[0][1]["hub_rss"]
    for n, m in rows:

        def per(v: float, n: int = n) -> str:
            return f" ({v / n:.3f})" if n else ""

        extra_rss = f" (+{(m['hub_rss'] - base_rss) / n:.2f})" if n else ""
        print(
            f"| {n} | {m['hub_cpu']:.2f}{per(m['hub_cpu'])} | {m['ctld_cpu']:.2f}{per(m['ctld_cpu'])} "
            f"| {m['hub_rss']:.0f}{extra_rss} | {m['proxy_rss']:.0f} | {sum(m['requests'].values()):.1f} |"
        )
    print("\nrequests per minute by handler at each step:")
    for n, m in rows:
        top = sorted(m["requests"].items(), key=lambda kv: -kv[1])[:6]
        print(f"  {n} servers: " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    for f in failures[:10]:
        print("  failed:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
