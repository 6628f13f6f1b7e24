"""Parsers fed with output recorded from the mini cluster's SLURM 22.05."""

from pathlib import Path

import pytest

from aifactory.slurm import (
    Slurm,
    SlurmError,
    clean_error,
    describe_end,
    parse_positions,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_oneliner,
    parse_squeue,
)

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
    jobs = parse_squeue((DATA / "squeue.txt").read_text())
    assert list(jobs) == ["41", "42", "43"]
    assert jobs["41"].is_running and jobs["41"].node == "mn5-n01" and jobs["41"].account == "ehpc01"
    assert jobs["42"].is_pending and jobs["42"].reason == "Resources" and not jobs["42"].is_running
    assert jobs["43"].is_running  # COMPLETING still holds the node


def test_squeue_garbage_is_an_error_not_an_empty_queue():
    with pytest.raises(SlurmError, match="unexpected squeue line"):
        parse_squeue("slurm_load_jobs error: Something new\n")


def test_sacct_records_and_user_facing_reasons():
    records = parse_sacct((DATA / "sacct.txt").read_text())
    assert records["2"].state == "CANCELLED" and records["2"].ended
    assert describe_end(records["2"]) == "it was cancelled"
    assert describe_end(records["7"]) == "it failed (exit code 3:0); SLURM's reason: NonZeroExitCode"
    assert describe_end(records["9"]).startswith("it reached its walltime limit")


def test_how_jobs_end_under_faults_recorded_on_the_mini_cluster():
    records = parse_sacct((DATA / "sacct_ends.txt").read_text())
    assert set(records) == {"306", "308", "309"}  # steps are folded into their jobs
    assert describe_end(records["306"]) == "it was preempted by a higher-priority job"
    assert describe_end(records["309"]) == "its compute node failed"
    oom = records["308"]  # no cgroups: FAILED 0:9, its batch step killed above its --mem
    assert (oom.state, oom.max_rss_mb, oom.req_mem_mb, oom.out_of_memory) == ("FAILED", 809, 200, True)
    assert describe_end(oom) == (
        "it ran out of memory: it used 809 MB of the 200 MB it asked for. Ask for more memory when you start it again"
    )
    assert not records["306"].out_of_memory


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
    assert slurm.as_user("alice", ["squeue"]) == ["sudo", "-n", "-E", "-u", "alice", "--", "squeue"]
    assert slurm.as_user(None, ["squeue"]) == ["squeue"]
    for bad in ["-u root", "alice;id", "Alice", "../x", ""]:
        if bad:
            with pytest.raises(SlurmError):
                slurm.as_user(bad, ["squeue"])
