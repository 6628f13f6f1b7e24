"""Issue 35, item 5: the proxy on its own. A graceful hub restart (SIGTERM, as `make hub-stop`
and systemd's restart send it, then a new hub) keeps an open JupyterLab terminal and kernel
working: the same websockets, opened through the proxy before the restart, run a command and
code after it. In the demo's setup: the https front, each user's origin, internal TLS, and a
proxy that made the internal certificates itself on its first start, before any hub.

With the proxy as the hub's child (hub.proxy_token_file ""), the hub's stop ends the proxy and
both websockets close: this test then fails at the first read after the restart."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .conftest import HubProcess, launch_demo_setup, plain, ws_request

pytestmark = pytest.mark.integration


@pytest.fixture
def hub_and_proxy(demo_certs: Path) -> Iterator[HubProcess]:
    hub = launch_demo_setup(demo_certs, own_proxy=True)
    try:
        yield hub
    finally:
        hub.shutdown()


class Terminal:
    """A JupyterLab terminal's websocket, held open across calls."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.shown = ""

    async def read_until(self, text: str, timeout: float = 60) -> None:
        await asyncio.wait_for(self._read_until(text), timeout)

    async def _read_until(self, text: str) -> None:
        while text not in plain(self.shown):
            message = await self.conn.read_message()
            if message is None:
                raise AssertionError(f"the terminal's websocket closed; it showed: {self.shown[-500:]!r}")
            kind, *content = json.loads(message)
            if kind == "stdout":
                self.shown += content[0]

    async def run(self, command: str, marker: str) -> None:
        """Type ``command; echo MARKER`` and wait for the marker's output (its echo is split)."""
        await self.conn.write_message(json.dumps(["stdin", f"{command}; echo {marker[:1]}''{marker[1:]}\r"]))
        await self.read_until(f"\n{marker}")


class Kernel:
    """A kernel's websocket (channels), held open across calls."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn

    async def execute(self, code: str, timeout: float = 120) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "session": uuid.uuid4().hex, "msg_type": "execute_request", "version": "5.3"}
        content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
        request = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
        await self.conn.write_message(json.dumps(request))
        return await asyncio.wait_for(self._output_of(msg_id), timeout)

    async def _output_of(self, msg_id: str) -> str:
        """What the request printed, once the kernel is idle after it."""
        out: list[str] = []
        while True:
            message = await self.conn.read_message()
            if message is None:
                raise AssertionError(f"the kernel's websocket closed; output so far: {out}")
            reply = json.loads(message)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "stream":
                out.append(reply["content"]["text"])
            elif reply["msg_type"] == "error":
                raise AssertionError("\n".join(reply["content"]["traceback"]))
            elif reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                return "".join(out)


async def open_terminal(hub: HubProcess, user: str, token: str) -> Terminal:
    name = hub.through_proxy_post(user, token, "api/terminals", {}).json()["name"]
    url = hub.user_url(user).replace("http", "ws", 1) + f"terminals/websocket/{name}"
    terminal = Terminal(await websocket_connect(ws_request(hub, url, token)))
    await terminal.read_until("$")  # the shell's first prompt: it reads now
    return terminal


async def open_kernel(hub: HubProcess, user: str, token: str) -> Kernel:
    kernel_id = hub.through_proxy_post(user, token, "api/kernels", {"name": "aifactory"}).json()["id"]
    url = hub.user_url(user).replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    return Kernel(await websocket_connect(ws_request(hub, url, token)))


@pytest.mark.slow
def test_a_graceful_hub_restart_keeps_an_open_terminal_and_kernel_working(hub_and_proxy: HubProcess):
    hub = hub_and_proxy
    hub.start_ready("alice")
    token = hub.user_token("alice")

    async def across_a_restart() -> None:
        terminal, kernel = await open_terminal(hub, "alice", token), await open_kernel(hub, "alice", token)
        await terminal.run("n=$((20+1))", "before-restart")
        assert await kernel.execute("x = 6 * 7\nprint(x)") == "42\n"
        hub_pid, proxy_pid = hub.process.pid, hub.proxy.pid
        await asyncio.to_thread(hub.restart)
        assert hub.process.pid != hub_pid and hub.proxy.poll() is None and hub.proxy.pid == proxy_pid
        # The same websockets: the shell and the kernel kept their state, and answer.
        await terminal.run("echo n=$n", "after-restart")
        assert "n=21" in plain(terminal.shown)
        assert await kernel.execute("print(x + 1)") == "43\n"
        terminal.conn.close()
        kernel.conn.close()

    asyncio.run(across_a_restart())
    # The new hub knows the server it did not start, and new connections reach it through the proxy.
    hub.wait_ready("alice", timeout=60)
    assert hub.through_proxy("alice", token).status_code == 200
    hub.stop("alice")
