"""What holds a waiting request (spawners/room.py): the room of the partition's nodes, from
``scontrol show node -o`` records, and the words the form and the queued page show (issue 36:
with bob's GPU job holding 8 GB of the acc node's 16000 MB, alice's 8G + 2 GPUs waits, for
memory as much as for GPUs, and the form never said so)."""

from __future__ import annotations

from dataclasses import replace

from aifactory_workbench.spawners.room import fits_now, holds, rooms

from .defaults import JOB
from .fakes import acc_node

#: bob's job on the GPU preset (20 cores, 8G, 1 GPU) on the acc node; alice asks 8G and 2 GPUs.
BOBS_JOB = [acc_node()]
ALICE_GPU_2 = replace(JOB, partition="acc", cpus=20, memory="8G", gpus=2, walltime="02:00:00")


def test_the_issues_wait_names_memory_and_the_gpus_as_what_holds_it():
    hold = holds(ALICE_GPU_2, rooms(BOBS_JOB, "acc"))
    assert hold is not None and hold.resources == ("memory", "gpus")
    assert hold.text == (
        "Waiting for memory and GPUs on acc: 8 of 15.6 GB in use, 8 GB asked; 1 of 2 GPUs in use, 2 GPUs asked."
    )
    # one GPU asked: memory alone holds it (what the issue calls the hidden cause)
    one_gpu = holds(replace(ALICE_GPU_2, gpus=1), rooms(BOBS_JOB, "acc"))
    assert one_gpu is not None and one_gpu.text == "Waiting for memory on acc: 8 of 15.6 GB in use, 8 GB asked."


def test_cores_hold_a_request_when_they_are_what_is_short():
    busy = rooms([acc_node(cpus=100, mem=2048, gpus=0)], "acc")
    hold = holds(replace(ALICE_GPU_2, gpus=0, memory="2G"), busy)
    assert hold is not None and hold.text == "Waiting for cores on acc: 100 of 112 cores in use, 20 cores asked."


def test_nothing_is_said_when_a_node_has_room_or_the_records_do_not_say():
    fits = replace(ALICE_GPU_2, memory="4G", gpus=1)
    assert holds(fits, rooms(BOBS_JOB, "acc")) is None  # a node has room: the wait is for something else
    no_alloc = {k: v for k, v in acc_node().items() if k != "AllocMem"}
    assert holds(replace(ALICE_GPU_2, gpus=1), rooms([no_alloc], "acc")) is None  # memory in use unknown
    untracked = {k: v for k, v in acc_node().items() if k not in ("CfgTRES", "AllocTRES")}
    hold = holds(ALICE_GPU_2, rooms([untracked], "acc"))
    assert hold is not None and hold.resources == ("memory",)  # GPUs in use unknown: not named
    assert holds(replace(ALICE_GPU_2, reservation="ws1"), rooms(BOBS_JOB, "acc")) is None  # a reservation's nodes
    assert holds(ALICE_GPU_2, rooms([acc_node(state="MIXED+DRAIN")], "acc")) is None  # no node takes a job
    assert holds(ALICE_GPU_2, rooms(BOBS_JOB, "gpp2")) is None  # no node of that partition


def test_on_several_nodes_a_resource_holds_only_when_every_node_lacks_it():
    two = [acc_node(), acc_node(mem=10240, gpus=0, name="mn5-n02")]
    hold = holds(replace(ALICE_GPU_2, gpus=1), rooms(two, "acc"))
    assert hold is not None and hold.text == (
        "Waiting for memory on acc: at most 7.6 GB free on any of its 2 nodes, 8 GB asked."
    )
    roomy = [*two, acc_node(cpus=0, mem=0, gpus=0, state="IDLE", name="mn5-n03")]
    assert holds(ALICE_GPU_2, rooms(roomy, "acc")) is None


def test_the_request_cut_to_what_a_node_has_free_never_under_the_floor():
    assert fits_now(ALICE_GPU_2, rooms(BOBS_JOB, "acc"), floor_mb=2048) == {"memory": "7G", "gpus": 1}
    assert fits_now(ALICE_GPU_2, rooms(BOBS_JOB, "acc"), floor_mb=8192) == {}  # 7G is under the floor
    assert fits_now(replace(ALICE_GPU_2, memory="4G", gpus=1), rooms(BOBS_JOB, "acc"), floor_mb=2048) == {}  # fits
    full = rooms([acc_node(gpus=2)], "acc")
    assert fits_now(ALICE_GPU_2, full, floor_mb=2048) == {}  # no GPU free: no cut keeps one
