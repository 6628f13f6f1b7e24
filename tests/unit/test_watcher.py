"""The watcher's judgement of a job from a snapshot, and its pace (no scheduler needed)."""

from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.formats import SQUEUE_JOBS, SQUEUE_POSITIONS
from aifactory_workbench.slurm.parsers import JobInfo
from aifactory_workbench.spawners.watcher import JobWatcher, Seen, Snapshot

from .recorded_slurm import FakeSlurm

SCRIPT = "#!/bin/bash\n#SBATCH --job-name=aifw-test-positions\n"


def job(job_id: str, state: str) -> JobInfo:
    return JobInfo(job_id, state, "alice", "gpp", "mn5-n01", "None", "")


def test_a_listed_job_is_queued_whatever_the_snapshot_time():
    snap = Snapshot({"7": job("7", "PENDING"), "8": job("8", "RUNNING")}, taken_at=100.0)
    assert snap.seen("7", submitted_at=200.0, owner="alice")[0] is Seen.IN_QUEUE
    assert snap.seen("8", submitted_at=50.0, owner="alice")[0] is Seen.IN_QUEUE


def test_an_absent_job_is_gone_only_if_the_query_came_after_its_submission():
    snap = Snapshot({}, taken_at=100.0)
    assert snap.seen("9", submitted_at=50.0, owner="alice")[0] is Seen.GONE
    assert snap.seen("9", submitted_at=150.0, owner="alice")[0] is Seen.UNKNOWN  # submitted after the query


def test_a_failed_query_keeps_the_last_good_view():
    snap = Snapshot({"7": job("7", "RUNNING")}, taken_at=100.0, error="Unable to contact slurm controller")
    assert snap.seen("7", submitted_at=50.0, owner="alice")[0] is Seen.IN_QUEUE


def test_pace_is_fast_while_a_job_starts_and_backs_off_on_failures():
    watcher = JobWatcher(Slurm(), "aifw-test-unit", interval=10.0, fast_interval=1.0)
    assert watcher.pause() == 10.0
    watcher._closely.add("7")
    assert watcher.pause() == 1.0
    watcher._closely.clear()
    watcher.failures = 1
    assert watcher.pause() == 10.0
    watcher.failures = 3
    assert watcher.pause() == 40.0
    watcher.failures = 10
    assert watcher.pause() == watcher.max_backoff


def position_queries(slurm: FakeSlurm) -> int:
    return sum(1 for _, argv in slurm.asked if argv[-1] == SQUEUE_POSITIONS.option)


def test_queue_positions_are_one_query_for_all_only_while_a_job_pends():
    import asyncio

    slurm = FakeSlurm()
    job_id = asyncio.run(slurm.submit(SCRIPT, user="alice", env={}))
    watcher = JobWatcher(slurm, "aifw-test-positions", interval=10.0, fast_interval=1.0)

    async def refreshes(n):
        return [await watcher.refresh() for _ in range(n)]

    snaps = asyncio.run(refreshes(3))
    assert [s.positions for s in snaps] == [{job_id: "1 of 1"}] * 3
    assert position_queries(slurm) == 1  # then at most every position_interval
    slurm.run_job(job_id)
    assert asyncio.run(refreshes(1))[0].positions == {} and position_queries(slurm) == 1


def test_a_job_of_that_id_but_another_owner_is_not_the_servers():
    """Job ids restart when a cluster is rebuilt: the hub's job 7 of alice is not bob's job 7."""
    snap = Snapshot({"7": job("7", "RUNNING")}, taken_at=100.0)
    assert snap.seen("7", submitted_at=50.0, owner="bob") == (Seen.GONE, None)


def test_a_watched_job_missing_from_the_name_query_is_looked_up_by_id():
    """A job renamed behind the hub's back (scontrol update name=...) is still the server's."""
    import asyncio

    slurm = FakeSlurm()
    job_id = asyncio.run(slurm.submit(SCRIPT, user="alice", env={}))
    slurm.rename(job_id, "renamed")
    watcher = JobWatcher(slurm, "aifw-test-renamed", interval=10.0, fast_interval=1.0)
    watcher._watched[job_id] = object()
    snap = asyncio.run(watcher.refresh())
    assert ("", ["squeue", "-h", "-j", job_id, "-o", SQUEUE_JOBS.option]) in slurm.asked
    assert snap.seen(job_id, submitted_at=0.0, owner="alice")[0] is Seen.IN_QUEUE
