"""Start-time choices: which smaller requests are tried, what the estimate answers, and what it costs
in ``sbatch --test-only`` calls (against the in-memory SLURM)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import replace

import pytest
from jupyterhub.spawner import SpawnException

from aifactory_workbench.slurm.choices import Reservation
from aifactory_workbench.slurm.values import parse_memory_mb
from aifactory_workbench.spawners.alternatives import (
    MAX_CANDIDATES,
    Candidate,
    StartCache,
    candidates,
    offered,
    when_text,
)
from aifactory_workbench.spawners.room import rooms

from .defaults import JOB
from .fakes import acc_node, choices_for, new_spawner
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


#: The acc node while another job holds one of its two GPUs (and 2G, 1 core): what waits_with_two_gpus plays.
ONE_GPU_HELD = [acc_node(cpus=1, mem=2048, gpus=1)]


def spawner_on(slurm: FakeSlurm, alternatives_after: int = 300, nodes=None):
    """alice's spawner on the mini cluster's choices, the partition's nodes read from ``nodes``
    (``scontrol show node`` records; by default the acc node with one GPU held)."""
    spawner = new_spawner(slurm=slurm)
    spawner.alternatives_after = alternatives_after

    async def choices():
        return choices_for()

    async def no_usage(account, since):
        return []

    async def rooms_now(partition):
        slurm.asked.append(("", ["scontrol", "show", "node", "-o"]))
        return rooms(ONE_GPU_HELD if nodes is None else nodes, partition)

    spawner.choices = choices
    spawner.discovery.account_usage = no_usage
    spawner.rooms_now = rooms_now
    return spawner


def count_test_only(slurm: FakeSlurm) -> int:
    return sum(1 for argv in slurm.commands() if argv[:2] == ["sbatch", "--test-only"])


async def test_a_waiting_request_gets_sooner_alternatives_in_at_most_four_calls_and_none_when_asked_again():
    slurm = FakeSlurm()
    slurm.test_start = waits_with_two_gpus
    spawner = spawner_on(slurm)
    answer = await spawner.estimate(ACC_2_GPUS)
    assert "in about 2 h" in answer["start_text"]
    assert [a["label"] for a in answer["alternatives"]] == ["1 GPU: now"]  # 2 GPUs for 1 h waits as long
    assert answer["alternatives"][0]["options"] == ACC_2_GPUS | {"gpus": 1}
    assert count_test_only(slurm) == 3 <= 1 + MAX_CANDIDATES  # the request, 1 GPU, 2 GPUs for 1 h
    assert not [argv for argv in slurm.commands() if argv == ["sbatch", "--parsable"]], "nothing is submitted"
    again = await spawner.estimate({"partition": ["acc"], "gpus": ["2"], "walltime": ["02:00:00"]})  # as a form posts
    assert again["alternatives"] == answer["alternatives"] and count_test_only(slurm) == 3
    # the alternative applied is a new form state: it starts now, so nothing else is tried
    applied = await spawner.estimate(answer["alternatives"][0]["options"])
    assert applied["alternatives"] == [] and "now" in applied["start_text"] and count_test_only(slurm) == 4


ALICE_GPU_2 = {"partition": "acc", "cpus": 20, "memory": "8G", "gpus": 2, "walltime": "02:00:00"}
#: bob's job on the GPU preset (20 cores, 8G, 1 GPU) on the acc node (16000 MB): 8G more do not fit.
BOBS_JOB = [acc_node()]


def test_a_wait_for_memory_gets_the_request_cut_to_what_is_free_first_then_half_the_memory():
    asked = settings(**ALICE_GPU_2)
    found = candidates(ALICE_GPU_2, asked, choices_for(), rooms(BOBS_JOB, "acc"), floor_mb=2048)
    assert [(c.options, c.what) for c in found] == [
        (ALICE_GPU_2 | {"memory": "7G", "gpus": 1}, "1 GPU, 7G memory"),
        (ALICE_GPU_2 | {"memory": "4G", "gpus": 1}, "1 GPU, 4G memory"),
        (ALICE_GPU_2 | {"gpus": 1}, "1 GPU"),
    ]
    one_gpu = ALICE_GPU_2 | {"gpus": 1}  # memory alone holds it
    found = candidates(one_gpu, settings(**one_gpu), choices_for(), rooms(BOBS_JOB, "acc"), floor_mb=2048)
    assert [c.what for c in found] == ["1 GPU, 7G memory", "1 GPU, 4G memory", "1 GPU, 10 cores"]


def test_less_memory_is_never_under_the_floor_and_not_tried_when_memory_is_not_short():
    asked = settings(**ALICE_GPU_2)
    found = candidates(ALICE_GPU_2, asked, choices_for(), rooms(BOBS_JOB, "acc"), floor_mb=8192)
    assert [c.what for c in found] == ["1 GPU", "2 GPUs, 10 cores", "2 GPUs for 1 h"]
    found = candidates(ALICE_GPU_2, asked, choices_for(), rooms(ONE_GPU_HELD, "acc"), floor_mb=2048)
    assert [c.what for c in found] == ["1 GPU", "2 GPUs, 10 cores", "2 GPUs for 1 h"]


def on_acc_with_bobs_job(script: str) -> str:
    """sbatch --test-only on the acc node while bob's job holds 8G and 1 GPU: starts now only what
    fits in the 7808 MB and the one GPU left, else when bob's job ends (two hours)."""
    gres = re.search(r"--gres=gpu:(\d+)", script)
    memory = parse_memory_mb(re.search(r"--mem=(\S+)", script).group(1)) or 0
    fits = (int(gres.group(1)) if gres else 0) <= 1 and memory <= 16000 - 8192
    return (dt.datetime.now() + (dt.timedelta() if fits else dt.timedelta(hours=2))).isoformat(timespec="seconds")


async def test_the_issues_wait_says_memory_holds_it_and_offers_less_memory_that_starts_now():
    slurm = FakeSlurm()
    slurm.test_start = on_acc_with_bobs_job
    answer = await spawner_on(slurm, nodes=BOBS_JOB).estimate(ALICE_GPU_2)
    assert "in about 2 h" in answer["start_text"]
    assert [a["label"] for a in answer["alternatives"]] == ["1 GPU, 7G memory: now", "1 GPU, 4G memory: now"]
    assert answer["holds_text"] == (
        "Waiting for memory and GPUs on acc: 8 of 15.6 GB in use, 8 GB asked; 1 of 2 GPUs in use, 2 GPUs asked."
    )
    assert answer["alternatives"][0]["options"] == ALICE_GPU_2 | {"memory": "7G", "gpus": 1}
    assert count_test_only(slurm) == 1 + MAX_CANDIDATES  # the request, its two memory cuts, 1 GPU (waits: memory)
    nodes_read = [argv for argv in slurm.commands() if argv[:3] == ["scontrol", "show", "node"]]
    assert len(nodes_read) == 1  # one look at the nodes for the form state
    applied = await spawner_on(slurm, nodes=BOBS_JOB).estimate(answer["alternatives"][0]["options"])
    assert applied["holds_text"] == "" and "now" in applied["start_text"]  # not waiting: nothing holds it


async def test_nothing_is_said_of_what_holds_a_request_that_starts_now_or_whose_nodes_have_room():
    slurm = FakeSlurm()
    answer = await spawner_on(slurm, nodes=BOBS_JOB).estimate(ALICE_GPU_2)  # SLURM says now
    assert answer["holds_text"] == "" and not [a for a in slurm.commands() if a[:2] == ["scontrol", "show"]]
    waits = FakeSlurm()
    waits.test_start = on_acc_with_bobs_job
    idle = [acc_node(cpus=0, mem=0, gpus=0, state="IDLE")]  # SLURM says wait, the nodes have room: unsure
    assert (await spawner_on(waits, nodes=idle).estimate(ALICE_GPU_2))["holds_text"] == ""


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
    queued = await spawner.queued_estimate()  # the queued page's answer: and what holds the job
    assert queued == {"alternatives": offers, "holds_text": queued["holds_text"]}
    assert queued["holds_text"] == "Waiting for GPUs on acc: 1 of 2 GPUs in use, 2 GPUs asked."
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
