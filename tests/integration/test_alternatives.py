"""Start-time choices on the real cluster: with one of the acc node's two GPUs held by bob's job,
alice's request for 2 GPUs waits, and the form and the queued page offer 1 GPU, which starts now.
Each choice is SLURM's own answer (``sbatch --test-only`` as alice), within four calls per form
state; pressing "start now instead" on the queued page submits the new job before it cancels
the waiting one, and the start in progress goes on with it: no gap, no second server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests

from .conftest import (
    HubProcess,
    chromium_page,
    gpus_held,
    launch,
    partition_nodes,
    queued_jobs,
    serious_violations,
    sh,
    sign_in,
    wait_for,
)

#: SLURM expects 2 GPUs to wait for bob's job (hours): past this threshold, alternatives are tried.
ALTERNATIVES_AFTER = 60
TWO_GPUS = {"partition": "acc", "gpus": 2, "walltime": "02:00:00"}


@pytest.fixture(scope="module")
def alt_hub() -> Iterator[HubProcess]:
    """A hub that offers alternatives after a minute's wait and keeps SLURM's answers a minute."""
    hub = launch(form={"discovery_cache": 60, "usage_days": 30, "alternatives_after": ALTERNATIVES_AFTER})
    yield hub
    hub.shutdown()


@pytest.fixture
def clean_alt(alt_hub: HubProcess) -> Iterator[HubProcess]:
    yield alt_hub
    if alt_hub.api("GET", "/users/alice").status_code == 200 and alt_hub.server("alice") is not None:
        alt_hub.stop("alice")
    wait_for(lambda: not queued_jobs("alice"), 30, "no test job of alice's left", fail=False)


@pytest.fixture
def one_gpu_held() -> Iterator[str]:
    """bob's job on the acc node holding 1 of its 2 GPUs for 4 h (as another tenant's would)."""
    (node,) = partition_nodes("acc")
    assert "gpu:2" in sh("scontrol", "show", "node", node.name, "-o"), "the acc node should have 2 GPUs"
    with gpus_held("bob", 1) as job:
        yield job


def estimate(hub: HubProcess, options: dict) -> dict:
    r = requests.post(
        f"{hub.url}/hub/api/aifactory/estimate/alice",
        json={"user_options": options},
        headers={"Authorization": f"token {hub.user_token('alice')}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return r.json()


def alternatives_api(hub: HubProcess, method: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{hub.url}/hub/api/aifactory/alternatives/alice",
        headers={"Authorization": f"token {hub.user_token('alice')}"},
        timeout=120,
        **kwargs,
    )


def job_times(*job_ids: str) -> dict[str, dict[str, str]]:
    """Accounting's submit and end times and state of these jobs."""
    out = sh("sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", "JobID,Submit,End,State")
    return {
        line.split("|")[0]: dict(zip(("submit", "end", "state"), line.split("|")[1:], strict=True))
        for line in out.splitlines()
    }


def audit_entries(hub: HubProcess) -> list[dict]:
    r = hub.api("GET", "/aifactory/audit?n=1000")
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def test_two_gpus_wait_and_one_gpu_is_offered_to_start_now_within_four_test_only_calls(
    clean_alt: HubProcess, one_gpu_held: str
):
    hub = clean_alt
    before = hub.test_only_calls()
    body = estimate(hub, TWO_GPUS)
    calls = hub.test_only_calls() - before
    assert "in about" in body["start_text"], body  # later than now: bob's job holds a GPU for hours
    assert [a["label"] for a in body["alternatives"]] == ["1 GPU: now"], body["alternatives"]
    (one,) = body["alternatives"]
    assert one["options"] == TWO_GPUS | {"gpus": 1} and one["start_text"] == "now"
    # the request, 1 GPU, 2 GPUs for 1 h (no sooner: bob's job ends later than any hour's wait)
    assert 2 <= calls <= 4, calls
    again = estimate(hub, {"partition": "acc", "gpus": "2", "walltime": "02:00:00"})  # the same state, as text
    assert again["alternatives"] == body["alternatives"] and hub.test_only_calls() - before == calls
    assert queued_jobs("alice") == {}  # nothing was submitted

    applied = estimate(hub, one["options"])  # one click applies it and asks again
    assert applied["alternatives"] == [] and applied["start_text"] == "SLURM expects it to start now."
    t0 = time.monotonic()
    assert hub.start("alice", one["options"]).status_code in (201, 202)
    hub.wait_ready("alice")
    (job,) = queued_jobs("alice").values()
    assert job["state"] == "RUNNING" and job["partition"] == "acc", job
    print(f"1-GPU alternative ready in {time.monotonic() - t0:.1f} s")


def test_in_the_form_one_click_applies_the_alternative_and_start_runs_at_once(clean_alt: HubProcess, one_gpu_held: str):
    hub = clean_alt
    with chromium_page() as page:
        sign_in(page, hub, "alice")
        page.goto(f"{hub.url}/hub/spawn")
        page.wait_for_function("document.getElementById('aifw-start').textContent.includes('SLURM expects')")
        page.select_option("#partition", "acc")
        page.fill("#walltime", "02:00:00")
        t0 = time.monotonic()
        page.fill("#gpus", "2")  # the change: 2 GPUs wait for bob's job
        page.wait_for_selector(".aifw-alternative", timeout=60_000)
        print(f"form change to alternatives shown: {time.monotonic() - t0:.2f} s")
        assert "in about" in page.inner_text("#aifw-start")
        assert page.locator(".aifw-alternative").all_inner_texts() == ["1 GPU: now"]
        assert serious_violations(page) == [], "spawn form with alternatives"
        page.click(".aifw-alternative")  # one click applies it, and the estimate updates
        assert page.input_value("#gpus") == "1" and page.input_value("#partition") == "acc"
        assert page.is_checked("#preset-custom")
        page.wait_for_function("document.getElementById('aifw-start').textContent.includes('start now')")
        assert page.locator(".aifw-alternative").count() == 0
        page.click("#spawn_form button[type=submit]")
        hub.wait_ready("alice")
    (job,) = queued_jobs("alice").values()
    assert job["state"] == "RUNNING" and job["partition"] == "acc", job
    shown = sh("scontrol", "show", "job", next(iter(queued_jobs("alice"))), "-o")
    assert re.search(r"gres[/:]gpu[:=]1\b", shown) and not re.search(r"gres[/:]gpu[:=]2\b", shown), shown


@pytest.mark.slow
def test_start_now_instead_replaces_the_waiting_job_with_no_gap_and_no_second_server(
    clean_alt: HubProcess, one_gpu_held: str
):
    hub = clean_alt
    assert hub.start("alice", TWO_GPUS).status_code == 202
    (old,) = wait_for(lambda: list(queued_jobs("alice")), 60, "alice's 2-GPU job in the queue")
    assert queued_jobs("alice")[old]["state"] == "PENDING"
    page = hub.login("alice").get(f"{hub.url}/hub/spawn-pending/alice", timeout=60)
    assert page.status_code == 200 and 'id="aifw-queued-alternatives"' in page.text
    assert "/hub/api/aifactory/alternatives/alice/" in page.text

    def offered() -> list[dict]:
        r = alternatives_api(hub, "GET")
        assert r.status_code == 200, r.text
        return r.json()["alternatives"]

    (one,) = wait_for(offered, 60, "the queued page's alternatives")  # once the hub has seen it queued
    assert one["label"] == "1 GPU: now" and one["options"]["gpus"] == 1

    r = alternatives_api(hub, "POST", json={"user_options": one["options"]})
    assert r.status_code == 200, r.text
    new = r.json()["job_id"]
    assert r.json()["replaced"] == old and new != old
    hub.wait_ready("alice")

    jobs = queued_jobs("alice")
    assert list(jobs) == [new] and jobs[new]["state"] == "RUNNING", jobs

    def accounted() -> dict[str, dict[str, str]]:
        times = job_times(old, new)
        return times if times.get(old, {}).get("state", "").startswith("CANCELLED") and new in times else {}

    times = wait_for(accounted, 30, "accounting of the cancelled job and its replacement")
    # no gap: the new job was submitted no later than the waiting one was cancelled
    assert times[new]["submit"] <= times[old]["end"], times
    servers = hub.api("GET", "/users/alice").json()["servers"]
    assert list(servers) == [""] and servers[""]["ready"], servers  # the one server, going on
    replaced = [e for e in audit_entries(hub) if e.get("event") == "replace"]
    assert replaced and replaced[-1]["job_id"] == new and replaced[-1]["replaced"] == old, replaced


def test_a_replacement_slurm_refuses_leaves_the_waiting_job(clean_alt: HubProcess, one_gpu_held: str):
    hub = clean_alt
    assert hub.start("alice", TWO_GPUS).status_code == 202
    (old,) = wait_for(lambda: list(queued_jobs("alice")), 60, "alice's 2-GPU job in the queue")
    wait_for(lambda: alternatives_api(hub, "GET").json()["alternatives"], 60, "the hub sees the job queued")
    refused = alternatives_api(hub, "POST", json={"user_options": TWO_GPUS | {"gpus": 3}})
    assert refused.status_code == 400 and "gpus" in refused.json()["message"], refused.text
    assert list(queued_jobs("alice")) == [old] and queued_jobs("alice")[old]["state"] == "PENDING"
    bob = requests.post(
        f"{hub.url}/hub/api/aifactory/alternatives/bob",
        json={"user_options": TWO_GPUS | {"gpus": 1}},
        headers={"Authorization": f"token {hub.user_token('alice')}"},
        timeout=60,
    )
    assert bob.status_code in (403, 404)  # another user's server is not alice's to replace
    assert list(queued_jobs("alice")) == [old]
