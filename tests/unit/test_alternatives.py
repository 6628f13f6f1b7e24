"""Start-time choices: which smaller requests are tried, what the estimate answers, and what it costs
in ``sbatch --test-only`` calls (against the in-memory SLURM)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import replace

import pytest
from jupyterhub.spawner import SpawnException

from aifactory_workbench.spawners.alternatives import (
    MAX_CANDIDATES,
    Candidate,
    StartCache,
    candidates,
    offered,
    when_text,
)
from aifactory_workbench.spawners.choices import Reservation

from .defaults import JOB
from .fakes import choices_for, new_spawner
from .recorded_slurm import FakeSlurm

ACC_2_GPUS = {"partition": "acc", "gpus": 2, "walltime": "02:00:00"}


def settings(**options):
    return replace(JOB, **options)


def test_fewer_gpus_then_a_shorter_walltime_each_within_what_the_user_may_run():
    found = candidates(ACC_2_GPUS, settings(**ACC_2_GPUS, cpus=1), choices_for())
    # half of 2 GPUs is 1 GPU (once); gpp has no GPUs, so it is no candidate
    assert [(c.options, c.what) for c in found] == [
        (ACC_2_GPUS | {"gpus": 1}, "1 GPU"),
        (ACC_2_GPUS | {"walltime": "01:00:00"}, "2 GPUs for 1 h"),
    ]


def test_at_most_three_candidates_in_a_fixed_order_and_each_passes_the_check():
    asked = {"partition": "gpp", "cpus": 8, "walltime": "04:00:00"}
    reservations = {"ws1": Reservation("ws1", "", "2026-11-28T06:15:58", "2026-11-28T07:15:58")}
    choices = choices_for(reservations=reservations)
    found = candidates(asked, settings(**asked), choices)
    assert len(found) == MAX_CANDIDATES
    assert [c.what for c in found] == ["4 cores", "8 cores for 1 h", "8 cores on acc"]
    for c in found:
        choices.check(settings(**c.options))
    # a reservation of the user's comes last, when the others are not possible
    short = {"partition": "gpp", "cpus": 1, "walltime": "00:05:00"}
    one_partition = replace(choices, partitions={"gpp": choices.partitions["gpp"]})
    assert [c.what for c in candidates(short, settings(**short), one_partition)] == ["1 core in reservation ws1"]


def test_a_candidate_outside_the_users_limits_is_never_offered():
    # the interactive QoS allows 12 h: half of a 2-day walltime there would be refused, 1 h is not
    asked = {"partition": "gpp", "cpus": 1, "qos": "interactive", "walltime": "10:00:00"}
    found = candidates(asked, settings(**asked), choices_for())
    assert all(c.options["partition"] == "gpp" or c.options.get("qos") == "interactive" for c in found)
    acc = replace(choices_for(), partitions={"gpp": choices_for().partitions["gpp"]})
    assert candidates(ACC_2_GPUS, settings(**ACC_2_GPUS), acc) == []  # no acc: nothing runs the request


def test_only_sooner_starts_are_offered_soonest_first_with_their_labels():
    now = dt.datetime(2026, 12, 4, 12, 0)
    one, short, slower = (
        Candidate({"gpus": 1}, "1 GPU"),
        Candidate({"walltime": "01:00:00"}, "2 GPUs for 1 h"),
        Candidate({"cpus": 1}, "1 core"),
    )
    tested = [(short, "2026-12-04T13:05:00"), (one, "2026-12-04T12:00:10"), (slower, "2026-12-04T15:00:00")]
    found = offered(tested, "2026-12-04T14:20:00", now)
    assert [a["label"] for a in found] == ["1 GPU: now", "2 GPUs for 1 h: about 13:05"]
    assert found[0] == {
        "options": {"gpus": 1},
        "what": "1 GPU",
        "start": "2026-12-04T12:00:10",
        "start_text": "now",
        "label": "1 GPU: now",
    }
    assert when_text("2026-12-05T09:00:00", now) == "about 2026-12-05 09:00"
    assert offered(tested, "not a time", now) == []


def waits_with_two_gpus(script: str) -> str:
    """The mini cluster with one of acc's two GPUs held by another job: 2 GPUs wait two hours."""
    later = dt.timedelta(hours=2) if re.search(r"--gres=gpu:2\b", script) else dt.timedelta()
    return (dt.datetime.now() + later).isoformat(timespec="seconds")


def spawner_on(slurm: FakeSlurm, alternatives_after: int = 300):
    spawner = new_spawner(slurm=slurm)
    spawner.alternatives_after = alternatives_after

    async def choices():
        return choices_for()

    async def no_usage(account, since):
        return []

    spawner.choices = choices
    spawner.discovery.account_usage = no_usage
    return spawner


def count_test_only(slurm: FakeSlurm) -> int:
    return sum(1 for argv in slurm.commands() if argv[:2] == ["sbatch", "--test-only"])


async def test_a_waiting_request_gets_sooner_alternatives_in_at_most_four_calls_and_none_when_asked_again():
    slurm = FakeSlurm()
    slurm.test_start = waits_with_two_gpus
    spawner = spawner_on(slurm)
    answer = await spawner.estimate(ACC_2_GPUS)
    assert "in about 120 min" in answer["start_text"]
    assert [a["label"] for a in answer["alternatives"]] == ["1 GPU: now"]  # 2 GPUs for 1 h waits as long
    assert answer["alternatives"][0]["options"] == ACC_2_GPUS | {"gpus": 1}
    assert count_test_only(slurm) == 3 <= 1 + MAX_CANDIDATES  # the request, 1 GPU, 2 GPUs for 1 h
    assert not [argv for argv in slurm.commands() if argv == ["sbatch", "--parsable"]], "nothing is submitted"
    again = await spawner.estimate({"partition": ["acc"], "gpus": ["2"], "walltime": ["02:00:00"]})  # as a form posts
    assert again["alternatives"] == answer["alternatives"] and count_test_only(slurm) == 3
    # the alternative applied is a new form state: it starts now, so nothing else is tried
    applied = await spawner.estimate(answer["alternatives"][0]["options"])
    assert applied["alternatives"] == [] and "now" in applied["start_text"] and count_test_only(slurm) == 4


async def test_no_alternatives_when_the_site_offers_none_or_the_request_starts_soon_enough():
    slurm = FakeSlurm()
    slurm.test_start = waits_with_two_gpus
    answer = await spawner_on(slurm, alternatives_after=0).estimate(ACC_2_GPUS)
    assert answer["alternatives"] == [] and count_test_only(slurm) == 1
    patient = FakeSlurm()
    patient.test_start = waits_with_two_gpus
    assert (await spawner_on(patient, alternatives_after=3 * 3600).estimate(ACC_2_GPUS))["alternatives"] == []
    assert count_test_only(patient) == 1


async def test_a_users_test_only_calls_run_one_at_a_time():
    cache, running, most = StartCache(ttl=60), [0], [0]

    async def compute():
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1
        return "2026-12-04T12:00:00"

    await asyncio.gather(*(cache.get(f"alice:{i}", "alice", compute) for i in range(3)))
    assert most[0] == 1
    await asyncio.gather(cache.get("alice:x", "alice", compute), cache.get("bob:x", "bob", compute))
    assert most[0] == 2  # another user's do not wait for alice's


class Audit:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def record(self, event: str, **fields) -> None:
        self.events.append({"event": event, **fields})


async def queued_spawner(slurm: FakeSlurm):
    """alice's spawner while her 2-GPU job waits in the queue (a start in progress)."""
    slurm.test_start = waits_with_two_gpus
    spawner = spawner_on(slurm)
    spawner.services.audit = Audit()
    await spawner.check_user_options(ACC_2_GPUS)
    spawner.engine.begin(log_path="/home/alice/.aifactory/logs/jupyterlab-%j.log")
    old = await spawner.engine.submit("#!/bin/bash\n#SBATCH --partition=acc\n", {}, token="t" * 32)
    spawner.engine.queue_status = {"id": old, "state": "PENDING"}
    spawner._spawn_pending = True
    return spawner, old


async def test_the_queued_page_offers_the_alternatives_and_one_press_replaces_the_waiting_job():
    slurm = FakeSlurm()
    spawner, old = await queued_spawner(slurm)
    offers = await spawner.queued_alternatives()
    assert [a["label"] for a in offers] == ["1 GPU: now"]
    new = await spawner.replace_queued(offers[0]["options"])
    assert spawner.job_id == new != old and old not in slurm.queue_now and new in slurm.queue_now
    submitted = [argv[0] for argv in slurm.commands() if argv in (["sbatch", "--parsable"], ["scancel", old])]
    assert submitted == ["sbatch", "sbatch", "scancel"]  # the new job before the old one goes
    assert "#SBATCH --gres=gpu:1" in slurm.scripts[new]
    event = spawner.services.audit.events[-1]
    assert (event["event"], event["job_id"], event["replaced"], event["partition"]) == ("replace", new, old, "acc")
    assert spawner.accepted_options == offers[0]["options"]  # a later start without options replays these
    spawner._spawn_pending = False
    assert await spawner.queued_alternatives() == []


async def test_options_a_spawn_would_refuse_never_replace_the_waiting_job():
    slurm = FakeSlurm()
    spawner, old = await queued_spawner(slurm)
    for options in (ACC_2_GPUS | {"gpus": 3}, ACC_2_GPUS | {"cpus": "$(id)"}, ACC_2_GPUS | {"partition": "gpp"}):
        with pytest.raises(SpawnException) as refused:
            await spawner.replace_queued(options)
        assert refused.value.status_code == 400
    slurm.refusal = "Invalid generic resource (gres) specification"
    with pytest.raises(SpawnException) as refused:
        await spawner.replace_queued(ACC_2_GPUS | {"gpus": 1})
    assert f"Job {old} keeps waiting" in refused.value.jupyterhub_message
    assert "Invalid generic resource" in refused.value.jupyterhub_message
    assert spawner.job_id == old and old in slurm.queue_now and not [a for a in slurm.commands() if a[0] == "scancel"]
    assert not [e for e in spawner.services.audit.events if e["event"] == "replace"]
    spawner._spawn_pending = False
    with pytest.raises(SpawnException) as not_starting:
        await spawner.replace_queued(ACC_2_GPUS | {"gpus": 1})
    assert not_starting.value.status_code == 409
