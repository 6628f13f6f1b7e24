"""Sharing a running session (issue 13): alice shares her server with bob, who opens it and
edits a notebook that alice sees change (real-time collaboration, in Chromium); a revoked share,
a user never invited, and a share of a stopped server all get 403."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest
import requests

from tests.harness import demo_password

from .conftest import HubProcess, chromium_pages

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
    return requests.request(method, f"{hub.url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                            timeout=30, **kw)  # fmt: skip


#: A server re-checks a token with the hub this often (config/jupyter: HubOAuth.cache_max_age):
#: a share or a revoke takes effect within it.
RECHECK = 15


def answers(hub: HubProcess, token: str, expected: int) -> int:
    """The status bob's token gets at alice's server, once it is ``expected`` or RECHECK has passed."""
    deadline = time.monotonic() + RECHECK + 5
    while (status := hub.through_proxy("alice", token).status_code) != expected and time.monotonic() < deadline:
        time.sleep(1)
    return status


def sign_in(page, hub: HubProcess, user: str) -> None:
    page.goto(f"{hub.url}/hub/login?next=%2Fhub%2Fhome")
    page.fill("#username_input", user)
    page.fill("#password_input", demo_password(user))
    page.click("#login_submit")
    page.wait_for_url("**/hub/home", timeout=60_000)


def open_notebook(page, hub: HubProcess, owner: str, path: str) -> None:
    page.goto(f"{hub.user_url(owner)}lab/tree/{path}")
    if "oauth2/authorize" in page.url:  # another user's server: JupyterHub asks to confirm
        page.click("input[type=submit], button[type=submit]")
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=120_000)


@pytest.mark.slow
def test_a_colleague_works_in_a_shared_session_until_the_share_ends(clean: HubProcess, stranger: str):
    hub = clean
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
        with chromium_pages(2) as (alice_page, bob_page):
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
    finally:
        requests.delete(url, headers={"Authorization": f"token {alice}"}, timeout=30)

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
