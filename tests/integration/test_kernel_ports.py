"""A kernel's outputs are its owner's alone (lab/private_kernels.py). Every port a user's process
opens on a node is reachable by every other tenant there, loopback included: alice's kernels
listened on five TCP ports of 127.0.0.1, and whoever subscribed to the iopub port read every
output of her notebook. bob, with a process on her node, plays that attack; alice herself,
listening the same way, shows that the outputs were there to read."""

from __future__ import annotations

import subprocess

from .conftest import VENV, HubProcess, execute_in_kernel, job_node, on_node, queued_jobs

SECRET = "aifw-kernel-secret"

#: In alice's kernel: its iopub address, then the secret printed four times a second for 30 s.
LEAKS = f"""
import json, threading, time
from ipykernel.connect import get_connection_file
info = json.load(open(get_connection_file()))
separator = ":" if info["transport"] == "tcp" else "-"
print(f"{{info['transport']}}://{{info['ip']}}{{separator}}{{info['iopub_port']}}", flush=True)

def leak():
    for _ in range(120):
        print({SECRET!r}, flush=True)
        time.sleep(0.25)

threading.Thread(target=leak, daemon=True).start()
"""

#: A subscriber to the address its command line names: "heard" once a message carries the secret, else "nothing".
LISTENS = f"""
import sys, time, zmq
url = sys.argv[1]
sub = zmq.Context().socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.setsockopt(zmq.RCVTIMEO, 500)
sub.connect(url)
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        frames = sub.recv_multipart()
    except zmq.Again:
        continue
    if any({SECRET.encode()!r} in frame for frame in frames):
        print("heard", flush=True)
        sys.exit()
print("nothing", flush=True)
"""


def listen_as(user: str, node: str, url: str) -> subprocess.Popen:
    listener = subprocess.Popen(
        on_node(node, "sudo", "-u", user, f"{VENV}/bin/python", "-c", LISTENS, url),
        cwd="/tmp",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return listener


def test_another_tenant_on_the_node_cannot_read_a_kernels_outputs(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    url = execute_in_kernel(hub, "alice", hub.user_token("alice"), LEAKS).splitlines()[0]
    (job,) = queued_jobs("alice")
    node = job_node(job)
    bob, alice = listen_as("bob", node, url), listen_as("alice", node, url)
    said = {name: p.communicate(timeout=60) for name, p in (("bob", bob), ("alice", alice))}
    assert said["alice"][0].strip() == "heard", ("the kernel's outputs were not there to read", url, said["alice"])
    assert said["bob"][0].strip() == "nothing", ("bob read alice's kernel's outputs", url, said["bob"])
    assert url.startswith("ipc:///tmp/aifw-job-"), url
