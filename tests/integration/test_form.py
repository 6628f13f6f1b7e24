"""The spawn form from the live cluster: per-user options, limits, estimates and links."""

from __future__ import annotations

import html
import json
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .conftest import HubProcess, partition_nodes, queued_jobs, sh


def form_data(session: requests.Session, hub: HubProcess, query: str = "") -> dict:
    """The data the form's script works from (what the page offers), and the page itself."""
    page = session.get(f"{hub.url}/hub/spawn{query}", timeout=60)
    found = re.search(r'<script type="application/json" id="aifw-data">(.*?)</script>', page.text, re.S)
    assert found, page.text[-2000:]
    return json.loads(found.group(1)) | {"page": page.text, "status": page.status_code}


def select_options(page: str, select_id: str) -> list[str]:
    block = re.search(rf'<select[^>]*id="{select_id}".*?</select>', page, re.S).group(0)
    return [html.unescape(v) for v in re.findall(r'<option value="([^"]*)"', block)]


def post_with_xsrf(session: requests.Session, url: str, **kwargs) -> requests.Response:
    return session.post(url, headers={"X-XSRFToken": session.cookies.get("_xsrf", "")}, timeout=60, **kwargs)


def job_details(job_id: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", sh("scontrol", "show", "job", job_id, "-o")))


@pytest.fixture
def reservation() -> Iterator[str]:
    """A reservation for alice alone, as an admin makes for a workshop."""
    name = "aifw-test-workshop"
    subprocess.run(["scontrol", "delete", f"reservationname={name}"], capture_output=True)
    sh(
        "scontrol",
        "create",
        "reservation",
        f"reservationname={name}",
        "users=alice",
        "starttime=now",
        "duration=30",
        "corecnt=2",
        "partitionname=gpp",
        "flags=ignore_jobs",
    )
    time.sleep(1.1)  # the test hub's discovery cache
    yield name
    subprocess.run(["scontrol", "delete", f"reservationname={name}"], capture_output=True)


def test_each_user_is_offered_only_their_own_accounts(hub: HubProcess):
    offered = {user: select_options(form_data(hub.login(user), hub)["page"], "account") for user in ("alice", "bob")}
    assert offered == {"alice": ["ehpc01"], "bob": ["ehpc02"]}
    instructor = form_data(hub.login("instructor"), hub)
    assert sorted(instructor["choices"]["accounts"]["gpp"]) == ["ehpc01", "ehpc02"]
    r = hub.start("alice", {"account": "ehpc02"})
    assert r.status_code == 400 and "account: 'ehpc02' is not accepted; allowed: one of ehpc01" in r.json()["message"]


def test_acc_offers_gpus_gpp_does_not_and_the_form_shows_the_limits(hub: HubProcess):
    data = form_data(hub.login("alice"), hub)
    parts = data["choices"]["partitions"]
    assert parts["acc"]["max_gpus"] == 2 and parts["gpp"]["max_gpus"] == 0
    assert parts["acc"]["max_cpus"] == 80 and parts["gpp"]["max_cpus"] == 112
    assert parts["acc"]["limits"] == "up to 80 cores, 16000M of memory, 2 GPUs, 24 h"
    assert parts["gpp"]["limits"] == "up to 112 cores, 16000M of memory, no GPUs, 48 h"
    assert [p["name"] for p in data["presets"]] == ["quick", "analysis", "gpu", "workshop"]
    r = hub.start("alice", {"partition": "gpp", "gpus": 1})
    assert r.status_code == 400
    assert r.json()["message"].endswith("gpus: 1 is not accepted; allowed: 0 on partition gpp; GPUs are on one of acc")
    assert queued_jobs("alice") == {}


def test_a_reservation_is_offered_only_to_its_users(hub: HubProcess, reservation: str):
    assert reservation in select_options(form_data(hub.login("alice"), hub)["page"], "reservation")
    assert select_options(form_data(hub.login("bob"), hub)["page"], "reservation") == [""]
    r = hub.start("bob", {"reservation": reservation})
    assert r.status_code == 400 and f"reservation: '{reservation}' is not accepted" in r.json()["message"]
    assert queued_jobs("bob") == {}


def test_the_estimate_gives_start_cost_and_the_accounts_usage_without_submitting(hub: HubProcess):
    session = hub.login("alice")
    before = hub.slurm_commands().get("sbatch", 0)
    r = post_with_xsrf(session, f"{hub.url}/hub/api/aifactory/estimate/alice", json={"user_options": {"preset": "gpu"}})
    assert r.status_code == 200, r.text
    body = r.json()
    # the numbers, and the texts the form shows (slurm/display.py: the form rounds nothing itself)
    assert body["cost"] == {
        "hours": 2.0,
        "core_hours": 40.0,
        "gpu_hours": 2.0,
        "core_hours_text": "40.00",
        "gpu_hours_text": "2.00",
    }
    assert body["usage"]["account"] == "ehpc01" and body["usage"]["core_hours"] >= 0
    assert body["usage"]["core_hours_text"] == f"{body['usage']['core_hours']:.2f}"
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d", body["start"]), body
    assert body["start_text"].startswith("SLURM expects it to start")
    refused = post_with_xsrf(
        session, f"{hub.url}/hub/api/aifactory/estimate/alice", json={"user_options": {"walltime": "3-00:00:00"}}
    )
    assert refused.status_code == 400 and "walltime: '3-00:00:00' is not accepted" in refused.json()["message"]
    assert refused.json()["field"] == "walltime"  # the form marks that field and keeps Start disabled
    other = post_with_xsrf(session, f"{hub.url}/hub/api/aifactory/estimate/bob", json={"user_options": {}})
    assert other.status_code == 404  # JupyterHub's answer for another user's resource (needs_scope)
    assert hub.slurm_commands().get("sbatch", 0) == before + 1  # the one --test-only
    assert queued_jobs("alice") == {}


def test_estimates_need_the_servers_scope_and_run_one_at_a_time(hub: HubProcess):
    """Each estimate forks sudo, sbatch --test-only and sacct: a script must not be able to
    load the scheduler through it, nor a token that may not start servers (issue 11, hole 9)."""
    url = f"{hub.url}/hub/api/aifactory/estimate/alice"
    r = hub.api("POST", "/users/alice/tokens", json={"scopes": ["read:users:name!user=alice"], "expires_in": 600})
    narrow = r.json()["token"]
    r = requests.post(url, json={"user_options": {}}, headers={"Authorization": f"token {narrow}"}, timeout=60)
    assert r.status_code == 403, r.text

    full = {"Authorization": f"token {hub.user_token('alice')}"}
    before = hub.slurm_commands().get("sbatch", 0)
    with ThreadPoolExecutor(10) as pool:
        codes = list(
            pool.map(
                lambda _: requests.post(url, json={"user_options": {}}, headers=full, timeout=60).status_code, range(10)
            )
        )
    assert set(codes) <= {200, 429} and codes.count(429) >= 1, codes
    # One at a time, and an answer reused within form.discovery_cache costs no --test-only.
    assert 0 < hub.slurm_commands().get("sbatch", 0) - before <= codes.count(200)


@pytest.mark.slow
def test_a_link_fills_the_form_and_only_the_users_confirmation_starts_the_job(clean: HubProcess):
    """A GET never spawns: a third-party page could make the user's browser open the link with
    their cookie and start 80 cores and 2 GPUs for 24 h on their account (issue 11, hole 8)."""
    hub = clean
    session = hub.login("alice")
    refused = form_data(session, hub, "?opt-preset=gpu&opt-cpus=81&opt-walltime=00:30:00")
    assert (
        refused["status"] == 400 and "cpus: 81 is not accepted; allowed: at most 80 on partition acc" in refused["page"]
    )
    assert 'value="81"' in refused["page"] and 'value="00:30:00"' in refused["page"]
    assert queued_jobs("alice") == {}

    link = form_data(session, hub, "?opt-preset=gpu&opt-cpus=4&opt-walltime=00:30:00")
    assert link["status"] == 200 and 'id="aifw-from-link"' in link["page"]
    assert re.search(r'id="preset-gpu"[^>]*checked', link["page"]) and 'value="4"' in link["page"]
    time.sleep(2)
    assert queued_jobs("alice") == {}, "a GET started a job"

    confirm = {"preset": "gpu", "cpus": "4", "walltime": "00:30:00", "_xsrf": session.cookies.get("_xsrf", "")}
    r = session.post(f"{hub.url}/hub/spawn", data=confirm, timeout=60)
    assert r.status_code == 200, r.text[-2000:]
    (job_id,) = queued_jobs("alice")
    job = job_details(job_id)
    assert (job["Partition"], job["NumCPUs"], job["TimeLimit"]) == ("acc", "4", "00:30:00")
    assert "gres/gpu=1" in job["TRES"] and "mem=8G" in job["TRES"], job["TRES"]
    assert job["Account"] == "ehpc01" and job["QOS"] == "interactive"
    hub.wait_ready("alice")
    # Remembered: the next form opens with the settings of this spawn.
    hub.stop("alice")
    page = form_data(session, hub)["page"]
    assert 'id="preset-gpu"\n             value="gpu" checked' in page or re.search(
        r'id="preset-gpu"[^>]*checked', page
    )
    assert re.search(r'name="cpus" value="4"', page)


@pytest.mark.slow
def test_a_job_in_a_reservation_runs_there(clean: HubProcess, reservation: str):
    hub = clean
    hub.start_ready("alice", {"preset": "quick", "reservation": reservation})
    (job_id,) = queued_jobs("alice")
    assert job_details(job_id)["Reservation"] == reservation
    hub.stop("alice")


@pytest.mark.slow
def test_a_refused_request_is_not_replayed_by_the_next_start(clean: HubProcess):
    """A typo in one start must not become the user's remembered settings (issue 11, hole 12)."""
    hub = clean
    hub.start_ready("alice", {"memory": "700M"})
    hub.stop("alice")
    refused = hub.start("alice", {"cpus": 100000})
    assert refused.status_code == 400 and "cpus" in refused.json()["message"]
    again = hub.api("POST", "/users/alice/server")  # no options: the last accepted ones
    assert again.status_code in (201, 202), again.text
    hub.wait_ready("alice")
    (job_id,) = queued_jobs("alice")
    assert "mem=700M" in job_details(job_id)["TRES"]


@pytest.mark.slow
def test_a_constraint_from_a_link_the_estimate_and_the_api_runs_on_a_node_with_that_feature(clean: HubProcess):
    """Issue 24: constraint, added as one row of the job fields' table, works end to end."""
    hub = clean
    (node,) = [n.name for n in partition_nodes("gpp") if "highmem" in n.features]
    session = hub.login("alice")
    link = form_data(session, hub, "?opt-constraint=highmem")
    assert link["status"] == 200 and re.search(r'name="constraint" value="highmem"', link["page"])
    estimate = f"{hub.url}/hub/api/aifactory/estimate/alice"
    unknown = post_with_xsrf(session, estimate, json={"user_options": {"constraint": "nosuchfeature"}})
    assert unknown.status_code == 400 and unknown.json()["field"] == "constraint", unknown.text
    assert "Invalid feature specification" in unknown.json()["message"]
    assert post_with_xsrf(session, estimate, json={"user_options": {"constraint": "highmem"}}).status_code == 200
    hub.start_ready("alice", {"constraint": "highmem", "walltime": "00:10:00"})
    (job_id,) = queued_jobs("alice")
    job = job_details(job_id)
    assert (job["Features"], job["NodeList"]) == ("highmem", node), job
