"""Inside a spawned JupyterLab: SLURMCluster() with no arguments, the dashboard through the
hub, and worker jobs that end with the server. Code runs in a real kernel of the server,
over the Jupyter websocket, with the user's token."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .conftest import POLL_INTERVAL, HubProcess, sh

CODE = """
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print("LINK", client.dashboard_link)
"""


def execute_in_kernel(hub: HubProcess, user: str, token: str, code: str, timeout: float = 240) -> str:
    """Start a kernel in the user's server, run code, return its stdout (raise on error)."""
    r = hub.through_proxy_post(user, token, "api/kernels", {"name": "aifactory"})
    kernel_id = r.json()["id"]
    ws_url = hub.user_url(user).replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"

    async def run() -> str:
        conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex, "msg_type": "execute_request",
                  "version": "5.3"}  # fmt: skip
        content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False, "stop_on_error": True}
        request = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
        await conn.write_message(json.dumps(request))
        out, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(conn.read_message(), timeout))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                out.append(message["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(message["content"]["traceback"]))
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                conn.close()
                return "".join(out)
        raise AssertionError(f"kernel did not finish within {timeout}s; output so far: {''.join(out)}")

    return asyncio.run(run())


def worker_jobs(user: str) -> list[list[str]]:
    lines = sh("squeue", "-h", "-u", user, "-o", "%i|%j|%u|%a|%T").splitlines()
    return [line.split("|") for line in lines if line.split("|")[1].startswith("aifw-dask-")]


@pytest.mark.slow
def test_slurmcluster_dashboard_and_cleanup_inside_a_server(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    server_job = sh("squeue", "-h", "-u", "alice", "--name", "aifw-test-jupyterlab", "-o", "%i").strip()

    output = execute_in_kernel(hub, "alice", token, CODE)
    (job,) = worker_jobs("alice")
    assert job[1] == f"aifw-dask-{server_job}" and job[2] == "alice" and job[4] == "RUNNING"
    assert job[3] == sh("sacctmgr", "-n", "-P", "show", "user", "alice", "format=defaultaccount").strip()

    link = output.split("LINK ", 1)[1].split()[0]
    assert link.startswith("/user/alice/proxy/") and link.endswith("/status"), link
    assert hub.get(link, hub.user_token("alice")).status_code == 200
    assert hub.get(link, hub.user_token("bob")).status_code == 403

    t0 = time.monotonic()
    hub.stop("alice")
    while worker_jobs("alice") and time.monotonic() - t0 < 2 * POLL_INTERVAL:
        time.sleep(0.2)
    assert worker_jobs("alice") == [], "Dask workers outlived their notebook server"
