"""Scheduler load: slurmctld RPCs per minute with 1, 10 and 50 running servers.

Ours (one shared squeue per interval) against stock batchspawner 1.3.0 (one squeue per
server per interval), in the same run, same cluster, same poll interval.  Counts come
from slurmctld itself (`sdiag`, reset before each window).  Needs the mini cluster up.
Usage: python benchmarks/scheduler_load.py [--sizes 1 10 50] [--window 60] [--poll 10]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.harness import DEPLOYED_FORM, REPO, HubError, HubProcess, launch

CONFIGS = {
    "workbench": REPO / "jupyterhub_config.py",
    "stock batchspawner": REPO / "benchmarks" / "stock_batchspawner_config.py",
}
USER = "alice"


def sdiag_counts() -> tuple[int, int]:
    """(job-info requests, all RPCs) since the last reset, by message type."""
    text = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = text.split("statistics by message type")[1].split("statistics by user")[0]
    counts = re.findall(r"^\s*(\w+)\s+\(\s*\d+\)\s+count:(\d+)", section, re.M)
    job_info = sum(int(n) for name, n in counts if name.startswith("REQUEST_JOB_INFO"))
    return job_info, sum(int(n) for _, n in counts)


def start_servers(hub: HubProcess, have: int, want: int, timeout: float = 600) -> None:
    """Grow from ``have`` to ``want`` ready named servers of USER."""
    names = [f"b{i:02d}" for i in range(have, want)]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda s: hub.start(USER, server=s), names))
    bad = [r.text for r in responses if r.status_code not in (201, 202)]
    if bad:
        raise HubError(f"spawns refused: {bad[:3]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = hub.api("GET", f"/users/{USER}").json()["servers"]
        if sum(1 for s in servers.values() if s.get("ready")) >= want:
            return
        time.sleep(2)
    raise HubError(f"{want} servers not ready within {timeout}s")


def stop_servers(hub: HubProcess) -> None:
    servers = list(hub.api("GET", f"/users/{USER}").json()["servers"])
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda s: hub.stop(USER, s), servers))


def measure(config: Path, sizes: list[int], window: float, poll: float) -> dict[int, tuple[float, float]]:
    results = {}
    hub = launch(
        hub={"named_servers_per_user": max(sizes), "poll_interval": poll},
        slurm={"qos": "normal", "memory": "320M"},
        config=config,
        form=DEPLOYED_FORM,
    )
    try:
        running = 0
        for n in sorted(sizes):
            start_servers(hub, running, n)
            running = n
            time.sleep(poll)  # let start-up queries settle
            subprocess.run(["sdiag", "-r"], check=True, capture_output=True)
            time.sleep(window)
            job_info, total = sdiag_counts()
            results[n] = (job_info * 60 / window, total * 60 / window)
            print(
                f"  {config.stem}: {n:3d} servers: {results[n][0]:7.1f} job-info RPC/min, {results[n][1]:7.1f} RPC/min",
                flush=True,
            )
        stop_servers(hub)
    finally:
        hub.shutdown()
        subprocess.run(["scancel", "-u", USER], check=False)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--window", type=float, default=60.0, help="seconds counted per size")
    parser.add_argument("--poll", type=float, default=10.0, help="poll interval of both hubs, seconds")
    args = parser.parse_args()
    table = {name: measure(config, args.sizes, args.window, args.poll) for name, config in CONFIGS.items()}
    ours, stock = table["workbench"], table["stock batchspawner"]
    print(f"\nscheduler load, poll interval {args.poll:g}s (slurmctld RPCs per minute, from sdiag):")
    print("| servers | workbench job-info | stock job-info | ratio | workbench all RPCs | stock all RPCs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        ratio = stock[n][0] / ours[n][0] if ours[n][0] else float("inf")
        print(f"| {n} | {ours[n][0]:.1f} | {stock[n][0]:.1f} | {ratio:.1f}x | {ours[n][1]:.1f} | {stock[n][1]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
