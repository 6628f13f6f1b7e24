"""Sharing a running session (issue 13): alice shares her server with bob, who opens it and
edits a notebook that alice sees change (real-time collaboration, in Chromium); a revoked share,
a user never invited, and a share of a stopped server all get 403."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .conftest import HubProcess, chromium_pages, queued_jobs, serious_violations, sh, shot, sign_in, wait_for

STRANGER_PASSWORD = "aifw-carol-pw"


@pytest.fixture
def stranger() -> Iterator[str]:
    """A user of the machine whom nobody invites."""
    name = "aifwcarol"
    subprocess.run(["useradd", "-M", "-G", "aifactory-users", name], check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{name}:{STRANGER_PASSWORD}\n", text=True, check=True)
    yield name
    subprocess.run(["userdel", name], check=False, capture_output=True)


def as_user(hub: HubProcess, token: str, method: str, path: str, **kw) -> requests.Response:
    return requests.request(
        method, f"{hub.url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=30, **kw
    )


#: A server re-checks a token with the hub this often (config/jupyter: HubOAuth.cache_max_age):
#: a share or a revoke takes effect within it.
RECHECK = 15


def answers(hub: HubProcess, token: str, expected: int) -> int:
    """The status bob's token gets at alice's server, once it is ``expected`` or RECHECK has passed."""

    def status() -> int:
        return hub.through_proxy("alice", token).status_code

    if wait_for(lambda: status() == expected, RECHECK + 5, f"status {expected} at alice's server", every=1, fail=False):
        return expected
    return status()


def open_notebook(page, hub: HubProcess, owner: str, path: str) -> None:
    page.goto(f"{hub.user_url(owner)}lab/tree/{path}?reset")  # not the tabs a workspace restores
    if "oauth2/authorize" in page.url:  # another user's server: JupyterHub asks to confirm
        page.click("input[type=submit], button[type=submit]")
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)


@pytest.mark.slow
def test_a_colleague_works_in_a_shared_session_until_the_share_ends(demo_module_hub: HubProcess, stranger: str):
    """In the demo's setup (https front, users' origins, internal TLS), as issue 22 asks."""
    hub = demo_module_hub
    hub.start_ready("alice")
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    carol = hub.user_token(stranger)
    assert hub.through_proxy("alice", bob).status_code == 403

    assert as_user(hub, alice, "POST", "/shares/alice/", json={"user": "bob"}).status_code == 200
    assert answers(hub, bob, 200) == 200
    assert hub.through_proxy("alice", carol).status_code == 403
    page = hub.login("alice").get(f"{hub.url}/hub/share", timeout=30).text
    assert 'data-user="bob"' in page and f'data-user="{stranger}"' not in page

    # Both in the same notebook: what bob types, alice sees.
    notebook = {
        "type": "notebook",
        "content": {
            "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": None}],
            "metadata": {"kernelspec": {"name": "aifactory", "display_name": "Python 3 (AI Factory)"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    }
    url = f"{hub.user_url('alice')}api/contents/aifw-shared.ipynb"
    assert requests.put(url, json=notebook, headers={"Authorization": f"token {alice}"}, timeout=30).ok
    try:
        with chromium_pages(2, *hub.chromium_args) as (alice_page, bob_page):
            sign_in(alice_page, hub, "alice")
            open_notebook(alice_page, hub, "alice", "aifw-shared.ipynb")
            sign_in(bob_page, hub, "bob")
            open_notebook(bob_page, hub, "alice", "aifw-shared.ipynb")
            bob_page.click(".jp-Notebook .jp-Cell .cm-content")
            bob_page.keyboard.type("print('typed by bob')")
            alice_page.wait_for_function(
                "document.querySelector('.jp-Notebook .jp-Cell .cm-content').textContent.includes('typed by bob')",
                timeout=30_000,
            )
            # Revoked while his tab is open: it is cut and says why, not that the job ended (issue 22,
            # item 6); alice's own tab goes on.
            assert as_user(hub, alice, "PATCH", "/shares/alice/", json={"user": "bob"}).status_code == 200
            bob_page.get_by_text("alice stopped sharing this JupyterLab with you").wait_for(timeout=60_000)
            assert bob_page.get_by_text("Your JupyterLab job has ended").count() == 0
            # Only that notice (issue 36, item 8): no "Kernel died unexpectedly" of her kernel, which
            # runs on, once JupyterLab would have reconnected (at once), been refused, and said so.
            time.sleep(5)
            assert bob_page.locator(".jp-Dialog").count() == 0, bob_page.locator(".jp-Dialog").all_inner_texts()
            assert bob_page.get_by_text("Kernel died").count() == 0
            assert bob_page.get_by_text("alice stopped sharing this JupyterLab with you").count() == 1
            assert bob_page.is_visible(".aifw-end-action:has-text('Go to your home page')")
            assert alice_page.get_by_text("Access ended").count() == 0
            assert alice_page.get_by_text("Your JupyterLab job has ended").count() == 0
            # His reload is refused by her server in words, with a way to the hub (it said "403 : Forbidden").
            time.sleep(RECHECK)  # the server's cached answer about his token expires
            bob_page.reload()
            bob_page.wait_for_selector("#aifw-server-error h1", timeout=30_000)
            assert bob_page.inner_text("#aifw-server-error h1") == "This JupyterLab is not yours to open"
            assert "It belongs to alice" in bob_page.inner_text("#aifw-server-error")
            assert serious_violations(bob_page) == [], "the server's refusal"
            shot(bob_page, "26-revoked-refusal")
            bob_page.click("#aifw-server-error a")
            bob_page.wait_for_url(f"{hub.url}/hub/home", timeout=30_000)
    finally:
        requests.delete(url, headers={"Authorization": f"token {alice}"}, timeout=30)
    assert as_user(hub, alice, "POST", "/shares/alice/", json={"user": "bob"}).status_code == 200  # again

    # A share link: whoever signed in accepts it (JupyterHub's page, XSRF-checked) gets in too.
    code = as_user(hub, alice, "POST", "/share-codes/alice/", json={"expires_in": 3600}).json()
    session = hub.login(stranger, STRANGER_PASSWORD)
    accept = session.get(urljoin(f"{hub.url}/", code["accept_url"]), timeout=30)
    assert accept.status_code == 200 and "alice" in accept.text
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    session.post(f"{hub.url}/hub/accept-share", data={"code": code["code"], "_xsrf": xsrf}, timeout=60)
    assert answers(hub, carol, 200) == 200

    # Revoked: 403; shared again, then the server stops: the share ends with it.
    assert as_user(hub, alice, "PATCH", "/shares/alice/", json={"user": "bob"}).status_code == 200
    assert answers(hub, bob, 403) == 403
    assert as_user(hub, alice, "POST", "/shares/alice/", json={"user": "bob"}).status_code == 200
    listed = sorted(s["user"]["name"] for s in hub.api("GET", "/shares/alice/").json()["items"])
    assert listed == sorted(["bob", stranger])  # an admin lists them
    hub.stop("alice")
    assert hub.api("GET", "/shares/alice/").json()["items"] == []
    hub.start_ready("alice")
    assert answers(hub, bob, 403) == 403 and answers(hub, carol, 403) == 403
    hub.stop("alice")  # this module's other tests use the session's hub


def queued_job(user: str) -> str:
    (job_id,) = queued_jobs(user)
    return job_id


def accept(session: requests.Session, hub: HubProcess, code: str) -> int:
    """The status JupyterHub's accept page (XSRF-checked) answers a share code with."""
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    r = session.post(
        f"{hub.url}/hub/accept-share", data={"code": code, "_xsrf": xsrf}, timeout=60, allow_redirects=False
    )
    return r.status_code


def shared_names(hub: HubProcess) -> list[str]:
    return sorted(s["user"]["name"] for s in hub.api("GET", "/shares/alice/").json()["items"])


@pytest.mark.slow
def test_shares_end_when_the_job_ends_outside_the_hub(clean: HubProcess):
    """Issue 21, hole 5: an admin's scancel (as a walltime end, OOM or a node failure) ends
    alice's job; the hub forgets it, and her next session is not shared."""
    hub = clean
    hub.start_ready("alice")
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    assert as_user(hub, alice, "POST", "/shares/alice/", json={"user": "bob"}).status_code == 200
    assert as_user(hub, alice, "POST", "/share-codes/alice/", json={"expires_in": 3600}).status_code == 200
    assert answers(hub, bob, 200) == 200
    sh("scancel", queued_job("alice"))  # root, outside the hub
    wait_for(lambda: hub.server("alice") is None, 60, "the hub did not notice the job's end")
    assert shared_names(hub) == [], "the share outlived the job"
    assert hub.api("GET", "/share-codes/alice/").json()["items"] == [], "the share link outlived the job"
    hub.start_ready("alice")
    assert answers(hub, bob, 403) == 403


@pytest.mark.slow
def test_a_share_link_lets_one_person_in_and_is_listed_and_revoked(clean: HubProcess, stranger: str):
    """Issue 21, hole 6: a code cannot be used again (revoking carol, whom a link let in, keeps
    her out); /hub/share lists the links that are still open, and revokes them."""
    hub = clean
    hub.start_ready("alice")
    alice, carol = hub.user_token("alice"), hub.user_token(stranger)
    used = as_user(hub, alice, "POST", "/share-codes/alice/", json={"expires_in": 3600}).json()
    spare = as_user(hub, alice, "POST", "/share-codes/alice/", json={"expires_in": 3600}).json()
    session = hub.login(stranger, STRANGER_PASSWORD)
    assert accept(session, hub, used["code"]) == 302
    assert stranger in shared_names(hub)
    assert as_user(hub, alice, "PATCH", "/shares/alice/", json={"user": stranger}).status_code == 200
    assert accept(session, hub, used["code"]) == 400, "a used share link let carol in again"
    assert stranger not in shared_names(hub)
    # Whoever opens the used link is told so in words (it was JupyterHub's bare 404, "lots of moons").
    opened = session.get(f"{hub.url}/hub/accept-share?code={used['code']}", timeout=30)
    assert opened.status_code == 410 and "This share link has been used" in opened.text, opened.text[-2000:]
    assert "lots of moons" not in opened.text

    page = hub.login("alice").get(f"{hub.url}/hub/share", timeout=30).text
    assert f'data-code="{spare["id"]}"' in page, "the open share link is not listed"
    assert f'data-code="{used["id"]}"' not in page, "a used share link is still listed"
    assert as_user(hub, alice, "DELETE", f"/share-codes/alice/?id={spare['id']}").status_code == 204
    page = hub.login("alice").get(f"{hub.url}/hub/share", timeout=30).text
    assert f'data-code="{spare["id"]}"' not in page
    assert accept(session, hub, spare["code"]) == 400 and stranger not in shared_names(hub)
    assert answers(hub, carol, 403) == 403


async def open_socket(hub: HubProcess, path: str, token: str):
    url = hub.user_url("alice").replace("http", "ws", 1) + path
    return await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))


async def seconds_until_closed(conn, since: float, limit: float) -> float | None:
    """Seconds from ``since`` until the server closed the websocket; None if open after ``limit``."""
    while (left := since + limit - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(conn.read_message(), left)
        except TimeoutError:
            break
        if message is None:
            return time.monotonic() - since
    return None


@pytest.mark.slow
def test_a_revoked_colleagues_open_kernel_and_terminal_are_closed(clean: HubProcess):
    """Issue 21, hole 6: bob's open kernel and terminal websockets on alice's server close within
    the token re-check once she revokes him; alice's own stay open."""
    hub = clean
    hub.start_ready("alice")
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    assert as_user(hub, alice, "POST", "/shares/alice/", json={"user": "bob"}).status_code == 200
    assert answers(hub, bob, 200) == 200
    kernel = hub.through_proxy_post("alice", bob, "api/kernels", {"name": "aifactory"}).json()["id"]
    terminal = hub.through_proxy_post("alice", bob, "api/terminals", {}).json()["name"]

    async def play() -> tuple[list[float | None], float | None]:
        bobs = [
            await open_socket(hub, f"api/kernels/{kernel}/channels", bob),
            await open_socket(hub, f"terminals/websocket/{terminal}", bob),
        ]
        own = await open_socket(hub, f"api/kernels/{kernel}/channels", alice)
        revoked = await asyncio.to_thread(as_user, hub, alice, "PATCH", "/shares/alice/", json={"user": "bob"})
        assert revoked.status_code == 200
        since = time.monotonic()
        closed = [await seconds_until_closed(conn, since, RECHECK + 5) for conn in bobs]
        alice_closed = await seconds_until_closed(own, time.monotonic(), 3)
        for conn in [*bobs, own]:
            conn.close()
        return closed, alice_closed

    try:
        closed, alice_closed = asyncio.run(play())
        print(f"bob's kernel and terminal websockets closed {closed} s after the revoke")
        assert all(s is not None and s <= RECHECK + 2 for s in closed), f"bob's websockets stayed open: {closed}"
        assert alice_closed is None, "alice's own websocket was closed"
        assert answers(hub, bob, 403) == 403
    finally:
        requests.delete(
            f"{hub.user_url('alice')}api/kernels/{kernel}", headers={"Authorization": f"token {alice}"}, timeout=30
        )
