"""Parsers fed with output recorded from the mini cluster's SLURM 22.05."""

from dataclasses import replace
from pathlib import Path

import pytest

from aifactory_workbench.slurm.client import Slurm, slurm_command
from aifactory_workbench.slurm.parsers import (
    SlurmError,
    clean_error,
    parse_positions,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_oneliner,
    parse_squeue,
)
from aifactory_workbench.slurm.pending import describe_end
from aifactory_workbench.slurm.values import format_duration, parse_duration

DATA = Path(__file__).parent.parent / "data"


def test_sbatch_parsable_plain_and_with_cluster_and_warnings():
    assert parse_sbatch_parsable("42\n") == "42"
    assert parse_sbatch_parsable("42;mn5mini\n") == "42"
    assert parse_sbatch_parsable("sbatch: warning: something odd\n43\n") == "43"


@pytest.mark.parametrize("output", ["", "\n", "Submitted batch job\n", "abc;mn5mini"])
def test_sbatch_without_job_id_is_an_error(output):
    with pytest.raises(SlurmError, match="no job id"):
        parse_sbatch_parsable(output)


def test_squeue_states_and_fields():
    """A job holding the acc node and one waiting for it (tests/data/record.sh)."""
    jobs = parse_squeue((DATA / "squeue.txt").read_text())
    (running,) = [j for j in jobs.values() if j.state == "RUNNING"]
    (pending,) = [j for j in jobs.values() if j.state == "PENDING"]
    assert running.is_running and not running.is_pending and running.node == "mn5-a01" and running.partition == "acc"
    assert (running.user, pending.user) == ("alice", "bob")
    assert running.start_time[:4].isdigit()
    assert pending.is_pending and pending.reason == "Resources" and pending.partition == "acc"
    assert not pending.is_running and pending.node == "n/a"


def test_a_completing_job_still_holds_its_node():
    (job,) = parse_squeue("43|COMPLETING|alice|gpp|mn5-n01|None|2026-11-27T03:40:01|ehpc01|1|2G|N/A|1:58:02\n").values()
    assert job.is_running and not job.is_pending


def test_squeue_garbage_is_an_error_not_an_empty_queue():
    with pytest.raises(SlurmError, match="unexpected squeue line"):
        parse_squeue("slurm_load_jobs error: Something new\n")


def test_sacct_records_and_user_facing_reasons():
    """Cancelled, failed with exit code 3, and walltime reached (steps folded into their jobs)."""
    records = parse_sacct((DATA / "sacct.txt").read_text())
    cancelled, failed, timeout = records.values()
    assert cancelled.state == "CANCELLED" and cancelled.ended and not failed.out_of_memory
    assert describe_end(cancelled) == "it was cancelled"
    assert describe_end(failed) == "it failed (exit code 3:0)"
    assert describe_end(timeout) == "it reached its walltime limit"
    assert describe_end(replace(failed, reason="NonZeroExitCode")).endswith("; SLURM's reason: NonZeroExitCode")


def test_how_jobs_end_under_faults_recorded_on_the_mini_cluster():
    records = parse_sacct((DATA / "sacct_ends.txt").read_text())
    preempted, oom, lost = records.values()  # steps are folded into their jobs
    assert describe_end(preempted) == "it was preempted by a higher-priority job"
    assert describe_end(lost) == "its compute node failed"
    # No cgroups: FAILED 0:9, its batch step killed above its --mem (800 MB asked of 200 MB).
    assert (oom.state, oom.req_mem_mb, oom.out_of_memory) == ("FAILED", 200, True)
    assert 800 <= oom.max_rss_mb <= 830
    assert describe_end(oom) == (
        f"it ran out of memory: it used {oom.max_rss_mb} MB of the 200 MB it asked for. "
        "Ask for more memory when you start it again"
    )
    assert not preempted.out_of_memory


def test_sacct_lines_of_another_shape_are_an_error():
    with pytest.raises(SlurmError, match="unexpected line"):
        parse_sacct("306|PREEMPTED|0:0|None|mn5-n01|00:00:03|2026-11-27T06:47:43\n")


def test_queue_positions_per_partition_in_squeues_order():
    output = "12|gpp\n15|acc\n13|gpp\n14|gpp\n"  # squeue -t PENDING -o %i|%P --sort=-p,i
    assert parse_positions(output) == {"12": "1 of 3", "13": "2 of 3", "14": "3 of 3", "15": "1 of 1"}
    assert parse_positions("") == {}


def test_scontrol_oneliner():
    line = "NodeName=mn5-n01 Arch=x86_64 CoresPerSocket=8 NodeAddr=127.0.0.1 NodeHostName=vm Version=22.05.8"
    fields = parse_scontrol_oneliner(line)
    assert fields["NodeAddr"] == "127.0.0.1" and fields["NodeName"] == "mn5-n01"


def test_clean_error_drops_prefixes():
    text = "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed\n"
    assert clean_error(text) == "Memory specification can not be satisfied; Batch job submission failed"


def test_commands_as_a_user_go_through_sudo_and_refuse_odd_names():
    slurm = Slurm()
    squeue = slurm_command("squeue")
    assert squeue.startswith("/")  # by its path: what sudo's rules name
    assert slurm.as_user("alice", ["squeue"]) == ["sudo", "-n", "-u", "alice", "--", squeue]
    assert slurm.as_user(None, ["squeue"]) == [squeue]
    assert Slurm(bin_dir="/opt/slurm/bin").as_user("alice", ["squeue"])[-1] == "/opt/slurm/bin/squeue"
    assert slurm.as_user("alice", ["/opt/x/helper"])[-1] == "/opt/x/helper"  # not SLURM's: as it is
    for bad in ["-u root", "alice;id", "Alice", "../x", ""]:
        if bad:
            with pytest.raises(SlurmError):
                slurm.as_user(bad, ["squeue"])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("02:00:00", 7200), ("1-00:00:00", 86400), ("1-02:03:04", 93784), ("00:30:00", 1800), ("45", 2700)],
)
def test_walltimes_read_and_written_the_same_way(text, seconds):
    assert parse_duration(text) == seconds
    if ":" in text and text.count(":") == 2:
        assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == seconds
    assert parse_duration("UNLIMITED") is None


def test_squeue_says_what_the_home_page_card_shows():
    """Account, cores, memory, GPUs and time left, as recorded (tests/data/record.sh)."""
    jobs = parse_squeue((DATA / "squeue.txt").read_text())
    (running,) = [j for j in jobs.values() if j.state == "RUNNING"]
    (pending,) = [j for j in jobs.values() if j.state == "PENDING"]
    assert (running.account, running.cpus, running.memory, running.gpus) == ("ehpc01", "80", "500M", 2)
    assert (pending.account, pending.cpus, pending.gpus) == ("ehpc02", "2", 1)
    assert 0 < parse_duration(running.time_left) <= 2 * 3600


def test_sacct_says_what_a_job_used():
    ends = parse_sacct((DATA / "sacct_ends.txt").read_text())
    preempted = next(iter(ends.values()))
    assert (preempted.alloc_cpus, preempted.elapsed_s) == (112, 2)
    assert preempted.core_hours == 112 * 2 / 3600 and preempted.gpu_hours == 0
    timeout = list(parse_sacct((DATA / "sacct.txt").read_text()).values())[-1]
    assert timeout.elapsed_s >= 60 and timeout.alloc_cpus == 1
