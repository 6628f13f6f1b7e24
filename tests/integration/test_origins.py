"""Issue 11, hole 1: a page that one user's JupyterLab serves cannot act as whoever opens it.

Bob's own ~/.jupyter config makes his server serve a page of his choice, to anyone (his server
runs his code: nothing stops him). Alice, signed in to the hub, opens bob's link in Chromium.
The page's script tries to create an API token for alice with her hub login.  With one origin
for everyone it succeeds; with each user's server on its own origin (hub.user_subdomains, the
default), served over https with the demo's own CA and wildcard certificate, it fails.
"""

from __future__ import annotations

import contextlib
import json
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness import demo_password, free_port

from .conftest import REPO, HubProcess, chromium_page, launch, spki_pin

ATTACK_PAGE = REPO / "tests" / "data" / "attack" / "steal-token.html"
TOSS_LOGIN_PAGE = REPO / "tests" / "data" / "attack" / "toss-login-cookie.html"


@contextlib.contextmanager
def serving_a_page(user: str, page: Path) -> Iterator[str]:
    """The user's server config adds a folder of theirs to the files served without login;
    yields the page's path under their server's URL.  The home is as it was afterwards."""
    home = Path(pwd.getpwnam(user).pw_dir)
    config_dir, pages = home / ".jupyter", home / "aifw-test-pages"
    config = config_dir / "jupyter_server_config.py"
    made_config_dir = not config_dir.exists()
    saved = config.read_bytes() if config.exists() else None
    config_dir.mkdir(exist_ok=True)
    pages.mkdir(exist_ok=True)
    shutil.copy(page, pages / page.name)
    config.write_text(f"c.ServerApp.extra_static_paths = [{str(pages)!r}]\n")
    subprocess.run(["chown", "-R", f"{user}:{user}", str(config_dir), str(pages)], check=True)
    try:
        yield f"static/{page.name}"
    finally:
        shutil.rmtree(pages, ignore_errors=True)
        if made_config_dir:
            shutil.rmtree(config_dir, ignore_errors=True)
        elif saved is None:
            config.unlink(missing_ok=True)
        else:
            config.write_bytes(saved)


@pytest.fixture
def bob_serves_a_page() -> Iterator[str]:
    with serving_a_page("bob", ATTACK_PAGE) as path:
        yield path


def sign_in(page, hub: HubProcess, user: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", demo_password(user))
    page.click("#login_submit")
    page.wait_for_selector("#aifw-form", timeout=60_000)  # no server yet: the spawn form


def open_attack_page(page, hub: HubProcess, path: str) -> dict[str, str]:
    page.goto(f"{hub.user_url('bob')}{path}#hub={hub.url}&victim=alice")
    page.wait_for_function("document.title === 'done'", timeout=60_000)
    return json.loads(page.inner_text("body"))


def tokens_made_by_the_page(hub: HubProcess) -> list[dict]:
    tokens = hub.api("GET", "/users/alice/tokens").json()["api_tokens"]
    return [t for t in tokens if t["note"] in ("stolen", "tossed")]


@pytest.mark.slow
def test_with_one_origin_for_everyone_a_page_bob_serves_takes_alices_account(bob_serves_a_page):
    """Why hub.user_subdomains is on by default: the attack, as it worked before."""
    hub = launch(hub={"user_subdomains": False, "public_url": ""})
    try:
        hub.start_ready("bob")
        with chromium_page() as page:
            sign_in(page, hub, "alice")
            results = open_attack_page(page, hub, bob_serves_a_page)
        assert results["hub"].startswith("token "), results
        stolen = results["hub"].split()[1]
        me = requests.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {stolen}"}, timeout=30)
        assert me.json()["name"] == "alice"
    finally:
        hub.shutdown()


@pytest.mark.slow
def test_on_its_own_origin_over_https_a_page_bob_serves_cannot_act_as_alice(bob_serves_a_page, demo_certs):
    port = free_port()
    front = {
        "port": port,
        "public_url": f"https://hub.localhost:{port}/",
        "ssl_cert": str(demo_certs / "hub.crt"),
        "ssl_key": str(demo_certs / "hub.key"),
    }
    hub = launch(hub=front, verify=str(demo_certs / "ca.crt"))
    try:
        hub.start_ready("bob")
        # The wildcard certificate, checked against the demo CA, serves bob's own name.
        assert hub.through_proxy("bob", hub.user_token("bob")).status_code == 200
        with chromium_page(f"--ignore-certificate-errors-spki-list={spki_pin(demo_certs / 'hub.crt')}") as page:
            sign_in(page, hub, "alice")
            assert page.url.startswith(f"https://hub.localhost:{port}/hub/")
            results = open_attack_page(page, hub, bob_serves_a_page)
            assert page.url.startswith(f"https://bob.hub.localhost:{port}/user/bob/")
        # The hub's pages are another origin: the browser does not let the script read them.
        assert results["hub"].startswith("blocked: TypeError"), results
        # At bob's origin, the hub's paths answer without alice's login (her cookie is the hub host's).
        assert results["here"].startswith("no login"), results
        # Blind, with a tossed XSRF cookie: sent, and refused by the hub.
        assert results["blind"] == "sent" and tokens_made_by_the_page(hub) == []
    finally:
        hub.shutdown()


@pytest.fixture
def https_hub(demo_certs: Path) -> Iterator[HubProcess]:
    """A hub as the demo runs it: https with the demo's CA, each user's server on its own origin."""
    port = free_port()
    front = {
        "port": port,
        "public_url": f"https://hub.localhost:{port}/",
        "ssl_cert": str(demo_certs / "hub.crt"),
        "ssl_key": str(demo_certs / "hub.key"),
    }
    hub = launch(hub=front, verify=str(demo_certs / "ca.crt"))
    try:
        yield hub
    finally:
        hub.shutdown()


@pytest.mark.slow
def test_a_page_on_alices_origin_cannot_sign_bob_in_as_alice(https_hub: HubProcess, demo_certs: Path):
    """Issue 21, hole 15: user origins are children of the hub's host, so a page alice serves
    could set a cookie for the hub's whole domain.  She tosses her own hub login onto it; bob
    opens her link and then the hub: he must not be signed in as alice (login fixation)."""
    hub = https_hub
    login = next(c for c in hub.login("alice").cookies if c.name.endswith("jupyterhub-hub-login"))
    host = hub.url.split("://", 1)[1].split(":")[0]
    with serving_a_page("alice", TOSS_LOGIN_PAGE) as path:
        hub.start_ready("alice")
        with chromium_page(f"--ignore-certificate-errors-spki-list={spki_pin(demo_certs / 'hub.crt')}") as page:
            page.goto(f"{hub.user_url('alice')}{path}#domain={host}&cookie={login.name}&value={login.value}")
            page.wait_for_function("document.title === 'done'", timeout=60_000)
            page.goto(f"{hub.url}/hub/home")
            assert "/hub/login" in page.url, f"bob's browser reached {page.url} signed in with alice's login"
