"""A kernel on another partition (issue 38, goal 4; issue 39): from "start kernel" in a JupyterLab
on gpp to the first output of a cell run on an acc node, against the floor: the same kernel
started by hand with ``srun`` on acc, a client on the login node connecting to it.

Both paths ask acc for the same job (2 cores, 2G, 1 GPU) and run the same Python; the floor's
kernel listens on plain TCP (a person at a prompt would not set up encryption), ours on CurveZMQ.
Runs interleaved, N of each, in the demo's setup (https front, per-user origins, internal TLS,
PostgreSQL), on the idle mini cluster (``make cluster-start``); prints each run, the medians with
their spread, and the ratio.
Usage: /opt/aifactory/dev-venv/bin/python -m benchmarks.remote_kernel [--runs 5] [--user alice]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import time

import requests

from tests.harness import VENV, HubProcess, demo_certificates, launch_demo_setup, postgres_database, sh
from tests.integration.conftest import execute_in_kernel

KERNEL = "aifactory-acc"

#: The floor, run as the user on the login node: srun starts the kernel on acc with a connection
#: file in a private folder of the home; a client there waits for its ports, connects, and times
#: the first output of print(1) from the moment srun was started.
FLOOR = """
import json, os, secrets, subprocess, sys, tempfile, time
from jupyter_client import BlockingKernelClient
started = time.monotonic()
folder = tempfile.mkdtemp(prefix="bench-kernel-", dir=os.path.expanduser("~"))
path = os.path.join(folder, "connection.json")
ports = dict(shell_port=0, iopub_port=0, stdin_port=0, hb_port=0, control_port=0)
json.dump(dict(ip="0.0.0.0", transport="tcp", key=secrets.token_hex(16), signature_scheme="hmac-sha256", **ports),
          open(path, "w"))
srun = subprocess.Popen(["srun", "-p", "acc", "--gres=gpu:1", "-c", "2", "--mem=2G", "-t", "00:10:00", "-J",
                         "aifw-bench-kernel", sys.executable, "-m", "ipykernel_launcher", "-f", path])
try:
    while not json.load(open(path)).get("shell_port"):
        time.sleep(0.05)
    node = subprocess.run(["squeue", "-h", "-n", "aifw-bench-kernel", "-u", os.environ["USER"], "-o", "%N"],
                          capture_output=True, text=True).stdout.split()[0]
    info = json.load(open(path))
    client = BlockingKernelClient()
    client.load_connection_info({**info, "ip": node})
    client.start_channels()
    client.execute_interactive("print(1)", timeout=120)
    print(f"{time.monotonic() - started:.3f}")
finally:
    srun.terminate()
    srun.wait()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)
"""


def one_floor(user: str) -> float:
    done = subprocess.run(
        ["sudo", "-u", user, f"{VENV}/bin/python", "-c", FLOOR],
        capture_output=True,
        text=True,
        cwd="/tmp",
        timeout=300,
        check=True,
    )
    return float(done.stdout.split()[-1])


def one_kernel(hub: HubProcess, user: str, token: str) -> float:
    """From the kernel's start (POST api/kernels) to its first output, then shut down and gone."""
    started = time.monotonic()
    assert execute_in_kernel(hub, user, token, "print(1)", kernel=KERNEL, timeout=300).strip() == "1"
    took = time.monotonic() - started
    for kernel in hub.through_proxy(user, token, "api/kernels").json():
        requests.delete(
            f"{hub.user_url(user)}api/kernels/{kernel['id']}",
            headers={"Authorization": f"token {token}"},
            timeout=60,
            verify=hub.verify,
        )
    while "aifw-kernel-" in sh("squeue", "-h", "-u", user, "-o", "%j"):
        time.sleep(0.5)
    return took


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--user", default="alice")
    args = parser.parse_args()
    ours: list[float] = []
    floor: list[float] = []
    with contextlib.ExitStack() as stack:
        certs = stack.enter_context(demo_certificates())
        hub = launch_demo_setup(certs, hub={"db_url": stack.enter_context(postgres_database())})
        stack.callback(hub.shutdown)
        token = hub.user_token(args.user)
        hub.start_ready(args.user)
        stack.callback(hub.stop, args.user)
        for i in range(args.runs):
            floor.append(one_floor(args.user))
            ours.append(one_kernel(hub, args.user, token))
            print(f"run {i + 1}: through JupyterLab {ours[-1]:.2f} s, srun by hand {floor[-1]:.2f} s", flush=True)
    print(f"\na kernel on acc, start to first output, median of {args.runs}:")
    print(f"* from JupyterLab on gpp (aifactory-slurm): {spread(ours)}")
    print(f"* srun by hand from the login node: {spread(floor)}")
    print(f"ratio {statistics.median(ours) / statistics.median(floor):.2f} (goal: at most 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
