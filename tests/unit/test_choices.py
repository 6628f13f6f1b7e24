"""What a user may ask for, computed from SLURM 22.05 output recorded on the mini cluster."""

from dataclasses import replace

import pytest

from aifactory_workbench.slurm.choices import (
    Reservation,
    open_to,
    partition_limits,
    reservation_for,
)
from aifactory_workbench.slurm.job_fields import OptionError
from aifactory_workbench.slurm.parsers import parse_gres_count, parse_scontrol_records, parse_tres
from aifactory_workbench.slurm.values import parse_memory_mb

from .defaults import JOB
from .fakes import NODES, PARTITIONS, QOS, choices_for

RESERVATION = parse_scontrol_records(
    "ReservationName=ws1 StartTime=2026-11-28T06:15:58 EndTime=2026-11-28T07:15:58 Duration=01:00:00 "
    "Nodes=mn5-n01 NodeCnt=1 CoreCnt=112 Features=(null) PartitionName=(null) Flags=IGNORE_JOBS,SPEC_NODES "
    "TRES=cpu=112 Users=alice Groups=(null) Accounts=(null) Licenses=(null) State=INACTIVE\n"
)[0]


def test_partition_limits_come_from_nodes_partition_and_its_qos():
    gpp, acc = (partition_limits(r, NODES, QOS) for r in PARTITIONS)
    assert (gpp.max_cpus, gpp.max_memory_mb, gpp.max_gpus, gpp.max_walltime, gpp.default) == (
        112,
        16000,
        0,
        172800,
        True,
    )
    assert (acc.max_cpus, acc.max_gpus, acc.max_walltime, acc.default) == (80, 2, 86400, False)
    assert acc.limits_text() == "up to 80 cores, 16000M of memory, 2 GPUs, 24 h"
    assert replace(acc, max_walltime=5400).limits_text().endswith(", 1 h 30 min")  # not cut to whole hours


def test_a_walltime_limit_reads_the_same_in_the_limits_and_in_the_refusal():
    """The spawn form's and the notebook-job dialog's limit line and the refusal of a longer
    walltime word the limit one way (slurm/display.py), not "48 h" in one and "48:00:00" in the
    other (issue 37)."""
    choices = choices_for()
    limits = choices.limits(replace(JOB, qos="normal"))
    assert "at most 48 h with QoS normal" in limits["text"] and limits["walltime"] == "2-00:00:00"
    with pytest.raises(OptionError, match="at most 48 h on gpp"):
        choices.check(replace(JOB, qos="normal", walltime="2-00:00:01"))
    assert choices.partitions["gpp"].limits_text().endswith(", 48 h")


def test_partitions_closed_to_the_users_accounts_or_groups_are_not_offered():
    gpp = PARTITIONS[0]
    assert open_to(gpp, {"ehpc01"}, {"aifactory-users"})
    assert not open_to(gpp | {"AllowAccounts": "ehpc02,ehpc03"}, {"ehpc01"}, set())
    assert open_to(gpp | {"AllowAccounts": "ehpc02,ehpc01"}, {"ehpc01"}, set())
    assert not open_to(gpp | {"DenyAccounts": "ehpc01"}, {"ehpc01"}, set())
    assert not open_to(gpp | {"AllowGroups": "bsc"}, {"ehpc01"}, {"aifactory-users"})
    assert not open_to(gpp | {"State": "DOWN"}, {"ehpc01"}, set())
    assert not open_to(gpp | {"Hidden": "YES"}, {"ehpc01"}, set())
    assert not open_to(gpp, set(), set())  # no association: nothing to charge


def test_reservations_are_for_their_users_accounts_or_groups_only():
    assert reservation_for(RESERVATION, "alice", {"ehpc01"}, set())
    assert not reservation_for(RESERVATION, "bob", {"ehpc02"}, set())
    by_account = RESERVATION | {"Users": "(null)", "Accounts": "ehpc02"}
    assert reservation_for(by_account, "bob", {"ehpc02"}, set()) and not reservation_for(
        by_account, "alice", {"ehpc01"}, set()
    )
    all_but_bob = RESERVATION | {"Users": "-bob"}
    assert reservation_for(all_but_bob, "alice", set(), set()) and not reservation_for(all_but_bob, "bob", set(), set())
    assert not reservation_for(RESERVATION | {"State": "ENDED"}, "alice", set(), set())


def test_a_request_within_the_limits_passes():
    choices_for().check(replace(JOB, partition="acc", cpus=80, gpus=2, walltime="12:00:00", qos="interactive"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"partition": "gpp2"}, "partition: 'gpp2' is not accepted; allowed: one of gpp, acc"),
        ({"account": "ehpc02"}, "account: 'ehpc02' is not accepted; allowed: one of ehpc01"),
        ({"qos": "debug"}, "qos: 'debug' is not accepted; allowed: one of interactive, normal (for account ehpc01)"),
        ({"partition": "acc", "cpus": 81}, "cpus: 81 is not accepted; allowed: at most 80 on partition acc"),
        ({"memory": "16G"}, "memory: '16G' is not accepted; allowed: at most 16000M on partition gpp"),
        ({"gpus": 1}, "gpus: 1 is not accepted; allowed: 0 on partition gpp; GPUs are on one of acc"),
        ({"partition": "acc", "gpus": 3}, "gpus: 3 is not accepted; allowed: at most 2 on partition acc"),
        (
            {"walltime": "12:00:01"},
            "walltime: '12:00:01' is not accepted; allowed: at most 12 h on gpp with QoS interactive",
        ),
        ({"qos": "normal", "walltime": "2-00:00:01"}, "at most 48 h on gpp with QoS normal"),
        ({"reservation": "ws1"}, "reservation: 'ws1' is not accepted; allowed: \"\" (no reservation is open to you)"),
    ],
)
def test_each_refusal_names_the_field_the_value_and_what_is_allowed(change, message):
    with pytest.raises(OptionError) as e:
        choices_for().check(replace(JOB, **change))
    assert message in str(e.value)


def test_a_job_without_a_qos_gets_the_walltime_limit_of_the_associations_default_qos():
    choices_for().check(replace(JOB, qos="", walltime="1-00:00:00"))  # normal: 2 days
    with pytest.raises(OptionError, match="at most 48 h on gpp with QoS normal"):
        choices_for().check(replace(JOB, qos="", walltime="2-00:00:01"))


def test_a_reservation_tied_to_a_partition_needs_that_partition():
    res = {"ws1": Reservation("ws1", "acc", "2026-11-28T06:15:58", "2026-11-28T07:15:58")}
    choices_for(reservations=res).check(replace(JOB, partition="acc", reservation="ws1"))
    with pytest.raises(OptionError, match="reservation: 'ws1' is not accepted; allowed: only with partition acc"):
        choices_for(reservations=res).check(replace(JOB, reservation="ws1"))


def test_size_and_tres_parsers():
    assert [parse_memory_mb(t) for t in ("16000", "16000M", "2G", "1T", "512K", "UNLIMITED")] == [
        16000,
        16000,
        2048,
        1048576,
        0,
        None,
    ]
    assert parse_gres_count("gpu:2") == 2 and parse_gres_count("gpu:a100:4(S:0-1),gpu:h100:2") == 6
    assert parse_gres_count("(null)") == 0
    assert parse_tres("cpu=4,mem=2G,gres/gpu=1") == {"cpu": "4", "mem": "2G", "gres/gpu": "1"} and parse_tres("") == {}
    assert parse_scontrol_records("No reservations in the system\n") == []
