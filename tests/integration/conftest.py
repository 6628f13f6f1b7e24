"""Fixtures for tests against the real mini cluster and a real hub (subprocess, CHP, PAM)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.harness import (  # noqa: F401 - re-exported for the test modules
    CLUSTER,
    CONTROLLER,
    HUB_USER,
    HUB_VENV,
    LIBEXEC,
    LOGIN_NODE,
    POLL_INTERVAL,
    REPO,
    TEST_JOB_NAME,
    VENV,
    HubProcess,
    cluster_nodes,
    demo_certificates,
    demo_password,
    free_port,
    gpus_held,
    job_node,
    launch,
    launch_demo_setup,
    on_node,
    partition_nodes,
    queued_jobs,
    sh,
    spki_pin,
    wait_for,
)


@pytest.fixture(scope="session", autouse=True)
def cluster() -> None:
    if subprocess.run(["bash", str(CLUSTER), "status"], capture_output=True).returncode != 0:
        pytest.fail("the mini cluster is not running: `make test` starts it (or: bash cluster/minicluster.sh start)")
    free_the_nodes()


def free_the_nodes() -> None:
    """The tests count on the mini cluster's nodes being free when they begin: a job left by the
    demo on the same cluster (a session, a kernel holding the acc node's GPUs) is cancelled first,
    and named."""
    left = sh("squeue", "-h", "-o", "%i %u %j %P %T").splitlines()
    if not left:
        return
    warnings.warn("the suite cancels the jobs it found on the cluster: " + "; ".join(left), stacklevel=1)
    sh("scancel", *(line.split()[0] for line in left), check=False)
    wait_for(lambda: not sh("squeue", "-h", "-o", "%i").strip(), 90, "the jobs found on the cluster gone")


@pytest.fixture(scope="module")
def demo_certs() -> Iterator[Path]:
    """The demo's CA and wildcard certificate for hub.localhost, made by the demo's own script."""
    with demo_certificates() as directory:
        yield directory


@contextlib.contextmanager
def requests_trusting(ca_file: str) -> Iterator[None]:
    """This test's own ``requests`` calls trust the demo's CA, as its browsers do (hub.chromium_args)."""
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = before


@pytest.fixture(scope="module")
def demo_module_hub(demo_certs: Path) -> Iterator[HubProcess]:
    """:func:`launch_demo_setup`'s hub for a whole module, whose plain ``requests`` trust it."""
    hub = launch_demo_setup(demo_certs)
    try:
        with requests_trusting(str(hub.verify)):
            yield hub
    finally:
        hub.shutdown()


@pytest.fixture
def demo_setup_hub(demo_certs: Path) -> Iterator[HubProcess]:
    """:func:`launch_demo_setup`'s hub, for one test."""
    hub = launch_demo_setup(demo_certs)
    try:
        yield hub
    finally:
        hub.shutdown()


@pytest.fixture(scope="session")
def hub() -> Iterator[HubProcess]:
    hub = launch()
    yield hub
    hub.shutdown()


@pytest.fixture
def clean(hub: HubProcess) -> Iterator[HubProcess]:
    """A test that starts servers leaves none behind, and no test job in the queue."""
    yield hub
    for name in ("alice", "bob", "instructor"):
        if hub.api("GET", f"/users/{name}").status_code == 200 and hub.server(name) is not None:
            hub.stop(name)
    wait_for(lambda: not queued_jobs(), 30, "no test job left in the queue", fail=False)


@pytest.fixture
def full_partition() -> Iterator[str]:
    """Every core of every gpp node taken by another job (root's), as on a busy cluster."""
    # Whole nodes: a job that has just ended may hold its cores a little longer (the filler waits).
    nodes = len(partition_nodes("gpp"))
    job = sh(
        "sbatch",
        "--parsable",
        "--job-name=aifw-test-filler",
        "--partition=gpp",
        "--qos=normal",
        f"--nodes={nodes}",
        "--exclusive",
        "--mem=1G",
        "--output=/dev/null",
        "--wrap",
        "sleep 900",
    ).strip()
    wait_for(lambda: sh("squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING", 90, "could not fill the partition")
    yield job
    subprocess.run(["scancel", job], check=False)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium_pages(count: int, *args: str):
    """``count`` pages of Debian's Chromium, headless, each its own browsing context (its own
    cookies: one person each); like users' browsers it resolves every name under .localhost to
    this machine. ``args``: more of Chromium's switches."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *args])
        contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(count)]
        try:
            yield [context.new_page() for context in contexts]
        finally:
            for context in contexts:
                context.close()
            browser.close()


@contextlib.contextmanager
def chromium_page(*args: str):
    """One page of :func:`chromium_pages`."""
    with chromium_pages(1, *args) as (page,):
        yield page


def sign_in(page, hub: HubProcess, user: str) -> None:
    """Sign ``user`` in at the hub's login page in Chromium, landing on the home page."""
    page.goto(f"{hub.url}/hub/login?next=%2Fhub%2Fhome")
    page.fill("#username_input", user)
    page.fill("#password_input", demo_password(user))
    page.click("#login_submit")
    page.wait_for_url("**/hub/home", timeout=60_000)


#: Where browser tests leave their screenshots (a CI run keeps them as artifacts).
ARTIFACTS = Path(os.environ.get("AIFW_ARTIFACTS", REPO / "build" / "journey"))
AXE = Path("/opt/aifactory/node/node_modules/axe-core/axe.min.js")


def serious_violations(page, within: str = "") -> list[str]:
    """axe-core's serious and critical violations on the page (WCAG 2 A and AA rules), or in the
    part of it that the CSS selector ``within`` names (ours, inside JupyterLab's page, whose own
    widgets carry findings that are JupyterLab's to fix)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make install` installs axe-core from npm")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "(within) => axe.run(within ? {include: [within]} : document, "
        "{runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})",
        within,
    )
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def wait_for_kernel(page, timeout: float = 120) -> None:
    """Until the open notebook's kernel is attached and idle, as the status bar says it
    ("Python 3 (AI Factory) | Idle"). The notebook's execution indicator reads idle before then,
    while the status bar still says "No Kernel | Initializing": cells run then run nothing."""
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=timeout * 1000)


def ws_request(hub: HubProcess, url: str, token: str) -> HTTPRequest:
    """A websocket request to a user's server, trusting the https front's own CA where it has one."""
    ca = hub.verify if isinstance(hub.verify, str) else None
    return HTTPRequest(url, headers={"Authorization": f"token {token}"}, ca_certs=ca)


def execute_in_kernel(
    hub: HubProcess,
    user: str,
    token: str,
    code: str,
    timeout: float = 240,
    wait: bool = True,
    kernel: str = "aifactory",
) -> str:
    """Start a kernel (``kernel``, the site's by default) in the user's server, run code, return
    its stdout (raise on error); ``wait=False``: return as soon as the kernel is busy with it,
    leaving it running."""
    r = hub.through_proxy_post(user, token, "api/kernels", {"name": kernel})
    kernel_id = r.json()["id"]
    ws_url = hub.user_url(user).replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"

    async def run() -> str:
        conn = await websocket_connect(ws_request(hub, ws_url, token))
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "username": user,
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        }
        content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False, "stop_on_error": True}
        request = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
        await conn.write_message(json.dumps(request))
        out, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(conn.read_message(), timeout))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if not wait and kind == "status" and message["content"]["execution_state"] == "busy":
                conn.close()
                return ""
            if kind == "stream":
                out.append(message["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(message["content"]["traceback"]))
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                conn.close()
                return "".join(out)
        raise AssertionError(f"kernel did not finish within {timeout}s; output so far: {''.join(out)}")

    return asyncio.run(run())


#: A terminal's control sequences (colours, titles, bracketed paste), left out of what it shows.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def plain(shown: str) -> str:
    return _CONTROL.sub("", shown)


def run_in_terminal(hub: HubProcess, user: str, token: str, commands: str, until: str, timeout: float = 60) -> str:
    """Open a JupyterLab terminal in the user's server, as its page does, type ``commands``
    and return what it shows up to the line ``until`` (raise if it never comes)."""
    name = hub.through_proxy_post(user, token, "api/terminals", {}).json()["name"]
    ws_url = hub.user_url(user).replace("http", "ws", 1) + f"terminals/websocket/{name}"

    async def run() -> str:
        conn = await websocket_connect(ws_request(hub, ws_url, token))
        typed = commands + f"\necho {until[:1]}''{until[1:]}\n"
        shown, deadline = "", time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(conn.read_message(), left)
            except TimeoutError:
                break
            if message is None:
                break
            kind, *content = json.loads(message)
            if kind == "stdout":
                shown += content[0]
                if typed:  # the shell's first prompt: it reads now (type-ahead would only echo)
                    await conn.write_message(json.dumps(["stdin", typed.replace("\n", "\r")]))
                    typed = ""
            if f"\n{until}" in plain(shown):
                conn.close()
                return plain(shown)
        conn.close()
        raise AssertionError(f"the terminal never showed {until!r}; it showed: {shown[-2000:]}")

    try:
        return asyncio.run(run())
    finally:
        requests.delete(
            hub.user_url(user) + f"api/terminals/{name}",
            headers={"Authorization": f"token {token}"},
            timeout=30,
            verify=hub.verify,
        )
