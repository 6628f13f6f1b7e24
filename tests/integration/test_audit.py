"""The audit log records logins, spawns with their resources, stops and admin actions."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from .conftest import HubProcess


def entries(hub: HubProcess) -> list[dict]:
    r = hub.api("GET", "/aifactory/audit?n=1000")
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
