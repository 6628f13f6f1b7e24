"""The watcher's judgement of a job from a snapshot, and its pace (no scheduler needed)."""

from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.parsers import JobInfo
from aifactory_workbench.spawners.watcher import JobWatcher, Seen, Snapshot


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


class CountingSlurm:
    """A queue with one pending job; counts the position queries."""

    def __init__(self, state: str) -> None:
        self.state, self.position_queries = state, 0

    async def queue(self, job_name):
        return {"7": job("7", self.state)}

    async def queue_positions(self):
        self.position_queries += 1
        return {"7": "2 of 3"}


def test_queue_positions_are_one_query_for_all_only_while_a_job_pends():
    import asyncio

    slurm = CountingSlurm("PENDING")
    watcher = JobWatcher(slurm, "aifw-test-positions", interval=10.0, fast_interval=1.0)

    async def refreshes(n):
        return [await watcher.refresh() for _ in range(n)]

    snaps = asyncio.run(refreshes(3))
    assert [s.positions for s in snaps] == [{"7": "2 of 3"}] * 3
    assert slurm.position_queries == 1  # then at most every position_interval
    slurm.state = "RUNNING"
    assert asyncio.run(refreshes(1))[0].positions == {} and slurm.position_queries == 1


def test_a_job_of_that_id_but_another_owner_is_not_the_servers():
    """Job ids restart when a cluster is rebuilt: the hub's job 7 of alice is not bob's job 7."""
    snap = Snapshot({"7": job("7", "RUNNING")}, taken_at=100.0)
    assert snap.seen("7", submitted_at=50.0, owner="bob") == (Seen.GONE, None)


class RenamingSlurm:
    """Job 7 was renamed: the query by name misses it, the query by id finds it."""

    def __init__(self) -> None:
        self.by_id: list[list[str]] = []

    async def queue(self, job_name):
        return {}

    async def jobs_by_id(self, job_ids):
        self.by_id.append(job_ids)
        return {"7": job("7", "RUNNING")}


def test_a_watched_job_missing_from_the_name_query_is_looked_up_by_id():
    import asyncio

    slurm = RenamingSlurm()
    watcher = JobWatcher(slurm, "aifw-test-renamed", interval=10.0, fast_interval=1.0)
    watcher._watched["7"] = object()
    snap = asyncio.run(watcher.refresh())
    assert slurm.by_id == [["7"]] and snap.seen("7", submitted_at=0.0, owner="alice")[0] is Seen.IN_QUEUE
