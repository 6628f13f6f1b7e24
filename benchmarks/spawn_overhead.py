"""Spawn overhead: "start server" (REST API) to JupyterLab answering through the proxy,
against the floor: the same JupyterLab submitted with plain sbatch, timed to its port answering.

Runs a hub against the mini cluster (which must be up: `make cluster-start`), on the idle
cluster, N times each, and prints the medians and their ratio.
Usage: /opt/aifactory/venv/bin/python benchmarks/spawn_overhead.py [--runs 5] [--user alice]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import requests

from tests.harness import (
    DEPLOYED_FORM,
    VENV,
    HubError,
    HubProcess,
    free_port,
    job_node,
    launch,
    queued_jobs,
)

FLOOR_SCRIPT = """#!/bin/bash
#SBATCH --job-name=aifw-bench-floor
#SBATCH --output=/dev/null
#SBATCH --partition=gpp
#SBATCH --mem=1G
#SBATCH --time=00:10:00
exec {venv}/bin/jupyter-lab --no-browser --ip=0.0.0.0 --port={port} --IdentityProvider.token=
"""


def one_floor(user: str, timeout: float = 120) -> float:
    """Plain sbatch of the same JupyterLab, timed until its port answers."""
    port = free_port()
    t0 = time.monotonic()
    job = subprocess.run(
        ["sudo", "-u", user, "sbatch", "--parsable"],
        input=FLOOR_SCRIPT.format(venv=VENV, port=port),
        capture_output=True,
        text=True,
        check=True,
        cwd="/tmp",
    ).stdout.strip()
    try:
        node = ""
        while time.monotonic() - t0 < timeout:
            node = node or job_node(job)  # its name resolves to its address (/etc/hosts)
            try:
                if node and requests.get(f"http://{node}:{port}/api/status", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise HubError(f"floor job {job} did not answer within {timeout}s")
    finally:
        subprocess.run(["scancel", job], check=False)
        while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
            time.sleep(0.2)


def one_spawn(hub: HubProcess, user: str, token: str, timeout: float = 120) -> float:
    t0 = time.monotonic()
    r = hub.start(user)
    if r.status_code not in (201, 202):
        raise HubError(f"start refused: {r.status_code} {r.text}")
    while time.monotonic() - t0 < timeout:
        if hub.server(user) and hub.through_proxy(user, token).status_code == 200:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise HubError(f"JupyterLab of {user} did not answer within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--user", default="alice")
    args = parser.parse_args()
    floor = []
    for i in range(args.runs):
        floor.append(one_floor(args.user))
        print(f"floor run {i + 1}: {floor[-1]:.2f} s", flush=True)
    hub = launch(form=DEPLOYED_FORM)
    try:
        token = hub.user_token(args.user)
        times = []
        for i in range(args.runs):
            times.append(one_spawn(hub, args.user, token))
            print(f"hub run {i + 1}: {times[-1]:.2f} s", flush=True)
            hub.stop(args.user)
            while queued_jobs(args.user):
                time.sleep(0.2)
    finally:
        hub.shutdown()
    ours, base = statistics.median(times), statistics.median(floor)
    print(f"\nspawn overhead, median of {args.runs}:")
    print("| path | median | min | max |")
    print("|---|---:|---:|---:|")
    print(
        f"| hub: API call to JupyterLab answering via proxy | {ours:.2f} s | {min(times):.2f} s | {max(times):.2f} s |"
    )
    print(f"| floor: plain sbatch, port answering | {base:.2f} s | {min(floor):.2f} s | {max(floor):.2f} s |")
    print(f"| ratio hub / floor | {ours / base:.2f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
