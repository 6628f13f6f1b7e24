"""Every route of the hub, called by another tenant (docs/security/entry-points.md).

Driven by the hub's own route table (hub/routes.py), so a route added tomorrow is tried too:
bob, with his own token (and, for the pages, his own signed-in browser session), calls each
route in alice's name with every method its handler has, and each answers a refusal (403 or
404), never a 2xx or a server error, and nothing reaches SLURM for alice."""

from __future__ import annotations

import re

import requests
from tornado import web

from aifactory_workbench.hub.routes import page_routes, routes

from .conftest import HubProcess, queued_jobs

METHODS = ("get", "post", "delete", "put", "patch")
#: What each route's parts are filled with: alice's name, her default server, a job id, an entry
#: and a workshop that are not bob's.
PARTS = {r"([^/]+)": "alice", r"/?([^/]*)": "", r"([0-9]+)": "1", r"([0-9a-f]{12})": "0123456789ab"}
#: A body each handler could act on, were the caller allowed.
BODY = {"user_options": {"partition": "gpp"}, "minutes": 60, "path": "a.ipynb", "title": "t", "port": 1}


class _Site:
    class singleuser:  # noqa: N801 (the site file's section, as routes() reads it)
        venv = ""

    class gallery:  # noqa: N801
        shared_storage: list[str] = []


def filled(pattern: str) -> str:
    for part, value in sorted(PARTS.items(), key=lambda kv: -len(kv[0])):
        pattern = pattern.replace(part, value)
    pattern = re.sub(r"\([a-z\[\]\-0-9{},]+\)", "aifwtest", pattern)  # a workshop's name
    assert "(" not in pattern, pattern
    return pattern


def handler_methods(handler: type) -> list[str]:
    """The methods the handler answers (tornado's own answer 405)."""
    return [m for m in METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)]


def test_another_tenant_is_refused_by_every_route_of_the_hub(hub: HubProcess):
    """bob calls each of the hub's API routes for alice: the one exception, adding a colleague
    (any user who may share may ask), is tried with names no one may share with."""
    bob = {"Authorization": f"token {hub.user_token('bob')}"}
    hub.user_token("alice")
    before = set(queued_jobs("alice"))
    tried = []
    for route in routes(None, None, None, _Site()):
        pattern, handler = route[0], route[1]
        path = filled(pattern)
        if "colleagues" in pattern:
            paths = [path.replace("alice", name) for name in ("root", "aifactory-hub", "nobody", "no-such-person")]
        else:
            paths = [path]
        for method in handler_methods(handler):
            for one in paths:
                r = requests.request(method, f"{hub.url}/hub/api{one}", headers=bob, json=BODY, timeout=60)
                tried.append((method.upper(), one, r.status_code))
                assert r.status_code in (403, 404), (method, one, r.status_code, r.text[:300])
    assert len(tried) >= 15, tried
    assert set(queued_jobs("alice")) <= before and hub.server("alice") is None


#: Who each page is for: everyone (it shows the caller's own, or nothing of anyone's), the
#: caller's own (it lists what the caller leads; its actions need that), or admins. A page the
#: hub adds must be classed here before this test passes.
PAGES = {
    "/gallery": "everyone",
    "/share": "everyone",
    "/accept-share": "everyone",
    "/help": "everyone",
    "/workshops": "own",
    "/operator": "admins",
    # JupyterHub's spawn page (hub/spawn_page.py): the caller's own form; posting it starts the
    # caller's own server, so it is not posted here. In alice's name it refuses bob.
    "/spawn": "everyone",
    "/spawn/([^/]+)": "own",
    "/spawn/([^/]+)/([^/]+)": "own",
}


def test_another_tenant_is_refused_by_every_page_that_is_not_everyones(hub: HubProcess):
    """bob, signed in, opens each page of the hub and posts to those that act (with the XSRF
    token his own session holds): the admins' page refuses him outright, the instructors' page
    shows him what he leads (nothing) and refuses to stop seats of a workshop he does not lead."""
    session = hub.login("bob")
    before = set(queued_jobs("alice"))
    for route in page_routes(None, None, None, "", ""):
        pattern, handler = route[0], route[1]
        url = f"{hub.url}/hub{filled(pattern)}"
        assert pattern in PAGES, f"class the new page {pattern} in PAGES"
        page = session.get(url, timeout=60)
        if PAGES[pattern] == "admins":
            assert page.status_code == 403, (pattern, page.status_code)
        else:  # (accept-share without a code: 400, saying so)
            assert page.status_code < 500, (pattern, page.status_code)
        if PAGES[pattern] == "everyone":
            continue
        xsrf = session.cookies.get("_xsrf", "")
        form = {"_xsrf": xsrf, "workshop": "aifwtest", "job": "1", "user": "alice", "reason": "x"}
        for method in [m for m in handler_methods(handler) if m != "get"]:
            r = session.request(method, url, data=form, timeout=60)
            assert r.status_code in (403, 404), (method, pattern, r.status_code)
    assert set(queued_jobs("alice")) <= before
