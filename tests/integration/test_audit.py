"""The audit log records logins, spawns with their resources, stops and admin actions."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness import demo_password

from .conftest import HubProcess


def entries(hub: HubProcess, n: int = 1000) -> list[dict]:
    r = hub.api("GET", f"/aifactory/audit?n={n}")
    assert r.status_code == 200, r.text
    return r.json()["entries"]


@pytest.mark.slow
def test_logins_spawns_stops_and_admin_actions_are_recorded_for_admins_only(clean: HubProcess):
    hub = clean
    hub.login("alice", "alice-aif")
    hub.start_ready("alice", {"cpus": 2, "memory": "1G"})
    hub.stop("alice")
    assert hub.api("POST", "/users/instructor").status_code in (201, 409)  # an admin action
    log = entries(hub)
    assert any(e["event"] == "login" and e["user"] == "alice" for e in log)
    spawn = [e for e in log if e["event"] == "spawn" and e["user"] == "alice"][-1]
    assert (spawn["cpus"], spawn["memory"], spawn["partition"]) == (2, "1G", "gpp") and spawn["job_id"]
    assert any(e["event"] == "stop" and e["job_id"] == spawn["job_id"] for e in log)
    assert any(e["event"] == "admin_action" and e["path"].endswith("/users/instructor") for e in log)
    # Users may not read it; the file is the hub's alone.
    r = hub.get("/hub/api/aifactory/audit", hub.user_token("bob"))
    assert r.status_code == 403
    state_dir = Path(yaml.safe_load(hub.site_file.read_text())["hub"]["state_dir"])
    assert stat.S_IMODE((state_dir / "audit.log").stat().st_mode) == 0o600


def test_a_forged_client_address_is_not_what_the_audit_records(hub: HubProcess):
    """X-Real-Ip is any client's to send; the address is the one the proxy saw (issue 11, hole 10)."""
    session = requests.Session()
    session.headers.update({"X-Real-Ip": "203.0.113.9", "X-Forwarded-For": "203.0.113.10"})
    page = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    form = {"username": "bob", "password": demo_password("bob"), "_xsrf": xsrf}
    r = session.post(f"{hub.url}/hub/login?next=/hub/home", data=form, timeout=60)
    assert r.status_code == 200 and "/hub/home" in r.url
    login = [e for e in entries(hub) if e["event"] == "login" and e["user"] == "bob"][-1]
    assert login["ip"] in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), login


@pytest.mark.parametrize("n", ["0", "-5", "abc", "10001", "1e3"])
def test_the_audit_api_refuses_an_odd_count_with_a_400(hub: HubProcess, n: str):
    r = hub.api("GET", f"/aifactory/audit?n={n}")
    assert r.status_code == 400 and "from 1 to 10000" in r.json()["message"]


def test_the_audit_api_gives_the_count_asked_for(hub: HubProcess):
    hub.login("alice")
    assert len(entries(hub, 1)) == 1


@pytest.mark.slow
def test_an_admin_starting_someone_elses_server_from_the_page_is_recorded(clean: HubProcess):
    hub = clean
    hub.ensure_user("bob")
    session = hub.login("admin")
    r = session.post(
        f"{hub.url}/hub/spawn/bob", data={"preset": "quick", "_xsrf": session.cookies.get("_xsrf", "")}, timeout=60
    )
    assert r.status_code == 200, r.text[-1000:]
    hub.wait_ready("bob")
    log = entries(hub)
    action = [e for e in log if e["event"] == "admin_action" and e["path"] == "/hub/spawn/bob"][-1]
    assert action["actor"] == "admin" and action["method"] == "POST"
    spawn = [e for e in log if e["event"] == "spawn" and e["user"] == "bob"][-1]
    assert spawn["actor"] == "admin"
