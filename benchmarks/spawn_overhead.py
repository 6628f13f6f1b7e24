"""One start, cut into phases: "start server" (REST API) to JupyterLab answering through the
proxy, against the floor: the same JupyterLab submitted with plain sbatch, timed to its port
answering.

Runs a hub against the mini cluster (which must be up: `make cluster-start`), on the idle
cluster, N times each, and prints the medians, their ratio, and where the time goes.  The
phases come from times the hub, the job and JupyterLab already log (to the millisecond, all on
this machine's clock): the hub's "Submitting", "submitted as SLURM job", "answers on" and
"Adding user ... to proxy"; the job's first line and the launcher's "serves on port" line;
JupyterLab's first log line and its "is running at".
Usage: /opt/aifactory/dev-venv/bin/python -m benchmarks.spawn_overhead [--runs 5] [--user alice]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import requests

from tests.harness import DEPLOYED_FORM, VENV, HubError, HubProcess, free_port, job_node, launch, queued_jobs

FLOOR_LOG = "/tmp/aifw-bench-floor-{job}.log"
FLOOR_SCRIPT = """#!/bin/bash
#SBATCH --job-name=aifw-bench-floor
#SBATCH --output=/tmp/aifw-bench-floor-%j.log
#SBATCH --partition=gpp
#SBATCH --mem=1G
#SBATCH --time=00:10:00
echo "floor job starts at $(date +%FT%T.%3N%:z)"
exec {venv}/bin/jupyter-lab --no-browser --ip=0.0.0.0 --port={port} --IdentityProvider.token=
"""

#: A log line's time: JupyterHub's and JupyterLab's "[I 2026-12-04 19:03:03.240 ServerApp]" (local
#: time), or the job's and the launcher's ISO 8601 with its offset.
_LOG_TIME = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")
_ISO_TIME = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d:\d\d)"


def log_time(line: str) -> float | None:
    found = _LOG_TIME.match(line)
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp() if found else None


def first(lines: list[str], pattern: str, after: float = 0.0) -> tuple[float, re.Match[str]]:
    """The time of the first line matching ``pattern`` (not before ``after``) and its match:
    the line's own ISO time if the pattern captures one, else its log prefix's."""
    for line in lines:
        found = re.search(pattern, line)
        if not found:
            continue
        iso = next((g for g in found.groups() if g and re.fullmatch(_ISO_TIME, g)), None)
        when = datetime.fromisoformat(iso).timestamp() if iso else log_time(line)
        if when is not None and when >= after:
            return when, found
    raise HubError(f"no log line matches {pattern!r}")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.time()
        time.sleep(0.05)
    raise HubError(f"{what} within {timeout}s")


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def one_floor(user: str, timeout: float = 120) -> dict[str, float]:
    """Plain sbatch of the same JupyterLab, timed until its port answers, in phases."""
    port = free_port()
    t0 = time.time()
    job = subprocess.run(
        ["sudo", "-u", user, "sbatch", "--parsable"],
        input=FLOOR_SCRIPT.format(venv=VENV, port=port),
        capture_output=True,
        text=True,
        check=True,
        cwd="/tmp",
    ).stdout.strip()
    submitted = time.time()
    try:
        node = wait_until(lambda: bool(job_node(job)), timeout, f"floor job {job} ran") and job_node(job)
        # Its name resolves to its address (/etc/hosts).
        end = wait_until(lambda: answers(f"http://{node}:{port}/api/status"), timeout, f"floor job {job} answered")
        lines = Path(FLOOR_LOG.format(job=job)).read_text().splitlines()
    finally:
        subprocess.run(["scancel", job], check=False)
        while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
            time.sleep(0.2)
        Path(FLOOR_LOG.format(job=job)).unlink(missing_ok=True)
    script, _ = first(lines, r"floor job starts at " + _ISO_TIME)
    imported, _ = first(lines, r"ServerApp\]")
    serving, _ = first(lines, r"is running at")
    return {
        "total": end - t0,
        "sbatch": submitted - t0,
        "SLURM's scheduling delay": script - submitted,
        "JupyterLab's imports": imported - script,
        "JupyterLab's extensions, until serving": serving - imported,
        "first request": end - serving,
    }


def one_spawn(hub: HubProcess, user: str, token: str, timeout: float = 120) -> dict[str, float]:
    """The hub's start, timed until JupyterLab answers through the proxy, in phases."""
    t0 = time.time()
    r = hub.start(user)
    if r.status_code not in (201, 202):
        raise HubError(f"start refused: {r.status_code} {r.text}")
    end = wait_until(
        lambda: bool(hub.server(user)) and hub.through_proxy(user, token).status_code == 200,
        timeout,
        f"JupyterLab of {user} answered",
    )
    hub_log = hub.log.read_text().splitlines()
    submitting, _ = first(hub_log, rf"Submitting JupyterLab for {user} to SLURM", after=t0 - 1)
    submitted, found = first(hub_log, rf"JupyterLab for {user} submitted as SLURM job (\d+)", after=submitting)
    job_log = Path(f"/home/{user}/.aifactory/logs/jupyterlab-{found.group(1)}.log").read_text().splitlines()
    script, _ = first(job_log, r"JupyterLab for \S+, job \d+ on \S+ at " + _ISO_TIME)
    launcher, _ = first(job_log, r"serves on port \d+ \(launcher " + _ISO_TIME)
    reported, _ = first(job_log, r"serves on port \d+ \(launcher \S+, reported " + _ISO_TIME)
    imported, _ = first(job_log, r"ServerApp\]")
    serving, _ = first(job_log, r"is running at")
    noticed, _ = first(hub_log, rf"JupyterLab of {user} answers on", after=submitted)
    routed, _ = first(hub_log, rf"Adding user {user} to proxy", after=submitted)
    return {
        "total": end - t0,
        "the hub's checks": submitting - t0,
        "sbatch": submitted - submitting,
        "SLURM's scheduling delay": script - submitted,
        "the batch script until the launcher": launcher - script,
        "the port report": reported - launcher,
        "JupyterLab's imports": imported - reported,
        "JupyterLab's extensions, until serving": serving - imported,
        "the hub sees it answer": noticed - serving,
        "the proxy route": routed - noticed,
        "first request": end - routed,
    }


def run_line(phases: dict[str, float]) -> str:
    """One run: its total, then its phases in seconds."""
    return f"{phases['total']:.2f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if k != "total") + ")"


def phase_table(paths: dict[str, list[dict[str, float]]]) -> list[str]:
    """Median seconds of each phase on each path (a phase a path does not have: blank)."""
    names = list(dict.fromkeys(name for runs in paths.values() for name in runs[0]))
    rows = ["| phase | " + " | ".join(paths) + " |", "|---|" + "---:|" * len(paths)]
    for name in names:
        cells = [
            f"{statistics.median(r[name] for r in runs):.2f} s" if name in runs[0] else "" for runs in paths.values()
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--user", default="alice")
    args = parser.parse_args()
    floor = []
    for i in range(args.runs):
        floor.append(one_floor(args.user))
        print(f"floor run {i + 1}: {run_line(floor[-1])}", flush=True)
    hub = launch(form=DEPLOYED_FORM)
    try:
        token = hub.user_token(args.user)
        ours = []
        for i in range(args.runs):
            ours.append(one_spawn(hub, args.user, token))
            print(f"hub run {i + 1}: {run_line(ours[-1])}", flush=True)
            hub.stop(args.user)
            while queued_jobs(args.user):
                time.sleep(0.2)
    finally:
        hub.shutdown()
    times, base = [r["total"] for r in ours], [r["total"] for r in floor]
    print(f"\nspawn overhead, median of {args.runs}:")
    print("| path | median | min | max |")
    print("|---|---:|---:|---:|")
    for path, runs in (
        ("hub: API call to JupyterLab answering via proxy", times),
        ("floor: plain sbatch, port answering", base),
    ):
        print(f"| {path} | {statistics.median(runs):.2f} s | {min(runs):.2f} s | {max(runs):.2f} s |")
    print(f"| ratio hub / floor | {statistics.median(times) / statistics.median(base):.2f} | | |")
    print(f"\nphases of a start, median of {args.runs} (log times, this machine's clock):")
    print("\n".join(phase_table({"hub": ours, "floor": floor})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
