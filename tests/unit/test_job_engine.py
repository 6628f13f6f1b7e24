"""The job engine without JupyterHub and without a cluster: start, poll, stop and resume of
alice's JupyterLab job against the in-memory SLURM (recorded_slurm.FakeSlurm), with the
hub's real watcher at a fast pace.  Each test plays the scheduler's moves itself."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aifactory_workbench.spawners.job_engine import JobEngine, StartFailed, Timing
from aifactory_workbench.spawners.job_state import JobState
from aifactory_workbench.spawners.messages import explain_pending
from aifactory_workbench.spawners.watcher import JobWatcher

from .recorded_slurm import FakeSlurm

JOB_NAME = "aifw-jupyterlab"
SCRIPT = f"#!/bin/bash\n#SBATCH --job-name={JOB_NAME}\n#SBATCH --partition=gpp\nexec jupyterhub-singleuser\n"
PORT = 41367


class Server:
    """What the engine asks of JupyterHub's side, noted; JupyterLab answers where ``listening`` says."""

    def __init__(self) -> None:
        self.saved: list[JobState] = []
        self.events: list[dict[str, Any]] = []
        self.shares_ended = 0
        self.cleared = 0
        self.gone = asyncio.Event()
        self.listening: set[tuple[str, int]] = set()
        self.engine: JobEngine | None = None

    def save_state(self) -> None:
        self.saved.append(self.engine.record)

    def audit_event(self, event: str, **fields: Any) -> None:
        self.events.append({"event": event, **fields})

    def end_shares(self) -> int:
        self.shares_ended += 1
        return 0

    def clear_state(self) -> None:
        self.cleared += 1
        self.engine.forget_job()

    async def answers(self, node: str, host: str, port: int) -> bool:
        return (host, port) in self.listening

    async def notify_gone(self) -> None:
        self.gone.set()


def engine_on(slurm: FakeSlurm, running_timeout: float = 5.0) -> tuple[JobEngine, Server]:
    watcher = JobWatcher(slurm, JOB_NAME, interval=0.05, fast_interval=0.01)
    server = Server()
    timing = Timing(poll_interval=0.0, startup_poll_interval=0.01, running_timeout=running_timeout, stop_wait=2.0)
    server.engine = JobEngine(slurm, watcher, server, owner="alice", timing=timing)
    return server.engine, server


async def until(check, timeout: float = 5.0) -> None:
    """Let the engine run until ``check()`` holds (the test then plays the scheduler's next move)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {check}"
        await asyncio.sleep(0.005)


async def start(engine: JobEngine) -> str:
    engine.begin(log_path="/home/alice/.aifactory/logs/jupyterlab-%j.log")
    await engine.submit(SCRIPT, {"PATH": "/usr/bin"}, token="t" * 32, partition="gpp")
    info = await engine.follow_until_ready()
    return info.node


async def scheduler_runs_it(slurm: FakeSlurm, engine: JobEngine, server: Server, *, port: bool = True) -> str:
    """SLURM starts the job; JupyterLab reports its port and answers on it."""
    await until(lambda: engine.job_id and slurm.queue_now)
    job_id = engine.job_id
    await until(lambda: engine.queue_status.get("state") == "PENDING")
    slurm.run_job(job_id)
    if port:
        await until(lambda: engine.queue_status.get("state") == "RUNNING")
        assert engine.accept_port(PORT)
        server.listening.add(("127.0.0.1", PORT))
    return job_id


async def started_engine(slurm: FakeSlurm) -> tuple[JobEngine, Server, str]:
    engine, server = engine_on(slurm)
    _, job_id = await asyncio.gather(start(engine), scheduler_runs_it(slurm, engine, server))
    return engine, server, job_id


def test_a_start_submits_as_the_user_follows_the_queue_and_ends_when_jupyterlab_answers():
    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm)
        node, job_id = await asyncio.gather(start(engine), scheduler_runs_it(slurm, engine, server))
        return slurm, engine, server, node, job_id

    slurm, engine, server, node, job_id = asyncio.run(scenario())
    assert node == "mn5-n01" and slurm.scripts[job_id] == SCRIPT
    assert ("alice", ["sbatch", "--parsable"]) in slurm.asked
    record = engine.record
    assert (record.job_id, record.port, record.ip, record.started) == (job_id, PORT, "127.0.0.1", True)
    assert engine.log_file() == f"/home/alice/.aifactory/logs/jupyterlab-{job_id}.log"
    # Saved at submission (a restart finds a queued job) and once JupyterLab answered.
    assert [s.started for s in server.saved] == [False, True] and server.saved[0].job_id == job_id
    assert server.events == [{"event": "spawn", "job_id": job_id, "partition": "gpp"}]
    assert engine.progress_percent() == 95
    # The queue was read by the watcher's one query for all (squeue --name), never per job.
    assert not [argv for _, argv in slurm.asked if argv[0] == "squeue" and "-j" in argv]


def test_the_progress_page_follows_the_queue_position_and_slurms_reason():
    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm)
        task = asyncio.ensure_future(start(engine))
        await until(lambda: engine.queue_status.get("state") == "PENDING")
        seen = (dict(engine.queue_status), engine.progress_message, engine.progress_percent())
        task.cancel()
        return seen

    status, message, percent = asyncio.run(scenario())
    assert status["reason"] == "Resources" and status["position"] == "1 of 1" and status["estimated_start"]
    assert "is queued in gpp (position 1 of 1): waiting for free CPUs, memory or GPUs" in message
    assert percent == 25


def test_a_refusal_submits_nothing_and_says_slurms_words():
    async def scenario():
        slurm = FakeSlurm()
        slurm.refusal = "Invalid account or account/partition combination specified"
        engine, _ = engine_on(slurm)
        with pytest.raises(StartFailed) as refused:
            await start(engine)
        return slurm, engine, refused.value

    slurm, engine, error = asyncio.run(scenario())
    assert error.reason == "slurm_refused" and error.status_code == 400
    assert (
        error.message == "SLURM refused the JupyterLab job: Invalid account or account/partition combination specified"
    )
    assert not engine.job_id and not slurm.queue_now and not engine.watcher._watched


def test_a_scheduler_that_does_not_answer_at_submission_is_a_503_with_nothing_submitted():
    async def scenario():
        slurm = FakeSlurm()
        slurm.down = True
        engine, _ = engine_on(slurm)
        with pytest.raises(StartFailed) as refused:
            await start(engine)
        return engine, refused.value

    engine, error = asyncio.run(scenario())
    assert error.reason == "scheduler_unavailable" and error.status_code == 503
    assert "Nothing was submitted" in error.message and not engine.job_id


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("NODE_FAIL", "its compute node failed"),
        ("FAILED", "it failed (exit code 3:0)"),
        ("TIMEOUT", "it reached its walltime limit"),
    ],
)
def test_a_job_that_ends_before_jupyterlab_answers_fails_the_start_with_why_and_its_log(how, words):
    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm)

        async def fails():
            job_id = await scheduler_runs_it(slurm, engine, server, port=False)
            slurm.end_job(job_id, how)
            return job_id

        results = await asyncio.gather(start(engine), fails(), return_exceptions=True)
        return results

    error, job_id = asyncio.run(scenario())
    assert isinstance(error, StartFailed) and error.reason == "job_ended"
    assert error.message == (
        f"JupyterLab job {job_id} ended before JupyterLab started: {words}. "
        f"Its log is /home/alice/.aifactory/logs/jupyterlab-{job_id}.log."
    )


def test_jupyterlab_that_never_answers_on_a_running_job_times_out():
    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm, running_timeout=0.2)
        results = await asyncio.gather(
            start(engine), scheduler_runs_it(slurm, engine, server, port=False), return_exceptions=True
        )
        return results[0]

    error = asyncio.run(scenario())
    assert isinstance(error, StartFailed) and error.reason == "start_timeout"
    assert "did not answer within 0s of job" in error.message and "on mn5-n01" in error.message


def test_a_scheduler_outage_while_queued_keeps_the_job_and_says_so_then_the_start_goes_on():
    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm)
        task = asyncio.ensure_future(start(engine))
        await until(lambda: engine.queue_status.get("state") == "PENDING")
        slurm.down = True
        await until(lambda: "not answering" in engine.progress_message)
        during = (engine.progress_message, await engine.poll())
        await asyncio.sleep(0.1)  # several failed queries: the job is still the server's
        slurm.down = False
        await scheduler_runs_it(slurm, engine, server)
        return during, await task, engine

    (message, polled), node, engine = asyncio.run(scenario())
    assert message.startswith("The scheduler is not answering (Unable to contact slurm controller")
    assert message.endswith("; job kept") and polled is None
    assert node == "mn5-n01" and engine.record.started


def test_poll_says_running_while_queued_and_cleans_up_a_preempted_job_once():
    """The watcher's notice and JupyterHub's periodic poll can run poll() at the same time."""

    async def scenario():
        slurm = FakeSlurm()
        engine, server, job_id = await started_engine(slurm)
        running = await engine.poll()
        slurm.end_job(job_id, "PREEMPTED")
        ended = await asyncio.gather(engine.poll(), engine.poll())
        return slurm, engine, server, job_id, running, ended

    slurm, engine, server, job_id, running, ended = asyncio.run(scenario())
    assert running is None and ended == [1, 1]
    assert (
        engine.record.last_end == f"Your JupyterLab job {job_id} has ended: it was preempted by a higher-priority job."
    )
    assert engine.record.last_log.endswith(f"jupyterlab-{job_id}.log")
    assert [e["event"] for e in server.events] == ["spawn", "job_end"]
    assert server.shares_ended == 1 and server.cleared == 1 and not engine.job_id
    # Its Dask workers are cancelled by name, as alice; the job itself is gone: no scancel for it.
    assert [argv for _, argv in slurm.asked if argv[0] == "scancel"] == [["scancel", "--name", f"aifw-dask-{job_id}"]]
    assert ("alice", ["scancel", "--name", f"aifw-dask-{job_id}"]) in slurm.asked
    assert asyncio.run(engine.poll()) == 0  # no job: not running, nothing asked


def test_the_watcher_tells_the_hub_of_an_end_without_waiting_for_a_poll():
    async def scenario():
        slurm = FakeSlurm()
        engine, server, job_id = await started_engine(slurm)
        slurm.end_job(job_id, "TIMEOUT")
        await asyncio.wait_for(server.gone.wait(), 5)
        return engine, job_id

    engine, job_id = asyncio.run(scenario())
    assert job_id not in engine.watcher._watched


def test_stop_cancels_as_the_owner_waits_for_the_end_and_says_what_it_cost():
    async def scenario():
        slurm = FakeSlurm()
        engine, server, job_id = await started_engine(slurm)
        slurm.queue_now[f"{int(job_id) + 50}"] = slurm.queue_now[job_id]  # another job of alice's: kept
        engine.stop_note = "ops, an operator, stopped it: maintenance"
        await engine.stop(by="ops")
        return slurm, engine, server, job_id

    slurm, engine, server, job_id = asyncio.run(scenario())
    assert ("alice", ["scancel", job_id]) in slurm.asked and job_id not in slurm.queue_now
    assert len(slurm.queue_now) == 1
    assert server.events[-1] == {"event": "stop", "job_id": job_id, "by": "ops"}
    assert engine.record.last_end == (
        f"Your JupyterLab job {job_id} was cancelled before it started; it used no core-hours. "
        "ops, an operator, stopped it: maintenance"
    )


async def restarted_while_queued(slurm: FakeSlurm, running_timeout: float = 5.0) -> tuple[JobEngine, Server]:
    """alice's job waits in the queue when the hub stops; the restarted hub's engine, from the
    record its database kept."""
    first, server = engine_on(slurm)
    task = asyncio.ensure_future(start(first))
    await until(lambda: first.queue_status.get("state") == "PENDING")
    task.cancel()  # the hub stops; its database keeps the saved record
    saved = server.saved[-1].as_state()
    again, server = engine_on(slurm, running_timeout)
    again.load(JobState.from_state(saved))
    return again, server


def test_after_a_hub_restart_a_queued_job_is_followed_again_until_jupyterlab_answers():
    async def scenario():
        slurm = FakeSlurm()
        again, server = await restarted_while_queued(slurm)
        assert again.job_id in again.watcher._watched
        resumed, _ = await asyncio.gather(again.resume(), scheduler_runs_it(slurm, again, server))
        return again, resumed

    engine, resumed = asyncio.run(scenario())
    assert resumed is None and engine.record.started and engine.record.port == PORT


def test_a_resumed_job_that_never_answers_is_cancelled_and_forgotten():
    async def scenario():
        slurm = FakeSlurm()
        again, server = await restarted_while_queued(slurm, running_timeout=0.2)
        job_id = again.job_id
        resumed, _ = await asyncio.gather(again.resume(), scheduler_runs_it(slurm, again, server, port=False))
        return slurm, again, job_id, resumed

    slurm, engine, job_id, resumed = asyncio.run(scenario())
    assert resumed == 1 and not engine.job_id and job_id not in slurm.queue_now
    assert ("alice", ["scancel", job_id]) in slurm.asked  # it held an allocation: cancelled
    assert engine.record.last_end.startswith(f"Your JupyterLab job {job_id} has ended: JupyterLab did not answer")


def test_a_port_is_taken_only_while_the_engine_waits_for_one():
    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm)
        before = engine.accept_port(40000)
        task = asyncio.ensure_future(start(engine))
        await until(lambda: engine.queue_status.get("state") == "PENDING")
        during = engine.accept_port(PORT), engine.accept_port(40001)  # the first report wins
        task.cancel()
        return before, during, engine

    before, (first, second), engine = asyncio.run(scenario())
    assert (before, first, second) == (False, True, False) and engine.record.port == PORT


def test_a_port_is_taken_only_from_the_engines_own_job():
    async def scenario():
        slurm = FakeSlurm()
        engine, _ = engine_on(slurm)
        task = asyncio.ensure_future(start(engine))
        await until(lambda: engine.queue_status.get("state") == "PENDING")
        taken = engine.accept_port(40001, "999999"), engine.accept_port(PORT, engine.job_id)
        task.cancel()
        return taken, engine

    (other, own), engine = asyncio.run(scenario())
    assert (other, own) == (False, True) and engine.record.port == PORT


def test_the_jobs_token_is_known_by_its_hash_after_a_restart():
    async def scenario():
        slurm = FakeSlurm()
        engine, _, _ = await started_engine(slurm)
        return engine

    engine = asyncio.run(scenario())
    assert engine.owns_token("t" * 32, plain="") and not engine.owns_token("u" * 32, plain="")
    assert engine.owns_token("t" * 32, plain="t" * 32) and not engine.owns_token("t" * 32, plain="v" * 32)
    engine.forget_job()
    assert not engine.owns_token("t" * 32, plain="") and not engine.owns_token("", plain="")


SMALLER = SCRIPT.replace("--partition=gpp", "--partition=acc")


async def a_start_that_waits() -> tuple[FakeSlurm, JobEngine, Server, asyncio.Future, str]:
    """A start in progress whose job waits in the queue (the engine follows it)."""
    slurm = FakeSlurm()
    engine, server = engine_on(slurm)
    starting = asyncio.ensure_future(start(engine))
    await until(lambda: engine.queue_status.get("state") == "PENDING")
    return slurm, engine, server, starting, engine.job_id


def test_a_queued_job_is_replaced_by_submitting_the_new_one_before_cancelling_the_old_and_the_start_follows_it():
    async def scenario():
        slurm, engine, server, starting, old = await a_start_that_waits()
        new = await engine.replace_queued(SMALLER, {"PATH": "/usr/bin"}, partition="acc")
        state_after = (engine.job_id, server.saved[-1].job_id, old in slurm.queue_now)
        await until(lambda: engine.queue_status.get("id") == new)
        slurm.run_job(new)
        await until(lambda: engine.queue_status.get("state") == "RUNNING")
        # The replaced job may report before its cancel lands: its port is not the new job's.
        assert not engine.accept_port(40001, old)
        assert engine.accept_port(PORT, new)
        server.listening.add(("127.0.0.1", PORT))
        await starting
        return slurm, engine, server, old, new, state_after

    slurm, engine, server, old, new, state_after = asyncio.run(scenario())
    assert new != old and state_after == (new, new, False)
    order = [(argv[0], argv[-1]) for argv in slurm.commands() if argv[0] in ("sbatch", "scancel")]
    assert order == [("sbatch", "--parsable"), ("sbatch", "--parsable"), ("scancel", old)]  # no gap
    assert slurm.scripts[new] == SMALLER and ("alice", ["scancel", old]) in slurm.asked
    assert server.events[-1] == {"event": "replace", "job_id": new, "replaced": old, "partition": "acc"}
    assert engine.record.job_id == new and engine.record.started and not server.gone.is_set()  # one server, going on


def test_a_refused_replacement_leaves_the_waiting_job_and_says_why():
    async def scenario():
        slurm, engine, server, starting, old = await a_start_that_waits()
        slurm.refusal = "Requested node configuration is not available"
        with pytest.raises(StartFailed) as refused:
            await engine.replace_queued(SMALLER, {"PATH": "/usr/bin"}, partition="acc")
        slurm.refusal = ""
        kept = (engine.job_id, old in slurm.queue_now, [argv for argv in slurm.commands() if argv[0] == "scancel"])
        slurm.run_job(old)
        await until(lambda: engine.queue_status.get("state") == "RUNNING")
        with pytest.raises(StartFailed) as running:
            await engine.replace_queued(SMALLER, {"PATH": "/usr/bin"}, partition="acc")
        starting.cancel()
        return old, kept, refused.value, running.value, server

    old, kept, refused, running, server = asyncio.run(scenario())
    assert kept == (old, True, [])
    assert refused.reason == "slurm_refused" and f"Job {old} keeps waiting" in refused.message
    assert "Requested node configuration is not available" in refused.message
    assert running.status_code == 409 and "not waiting in the queue" in running.message
    assert not [e for e in server.events if e["event"] == "replace"]


def test_two_presses_at_once_replace_the_waiting_job_once():
    async def scenario():
        slurm, engine, server, starting, old = await a_start_that_waits()
        submit = slurm.submit

        async def slow_submit(*args, **kwargs):  # sbatch takes a moment: the second press comes meanwhile
            await asyncio.sleep(0.02)
            return await submit(*args, **kwargs)

        slurm.submit = slow_submit
        pressed = [engine.replace_queued(SMALLER, {"PATH": "/usr/bin"}, partition="acc") for _ in range(2)]
        results = await asyncio.gather(*pressed, return_exceptions=True)
        starting.cancel()
        return slurm, engine, old, results

    slurm, engine, old, results = asyncio.run(scenario())
    (new,) = [r for r in results if isinstance(r, str)]
    (refused,) = [r for r in results if isinstance(r, StartFailed)]
    assert refused.status_code == 429 and engine.job_id == new
    submitted = [j for j in slurm.queue_now if j != old]
    assert submitted == [new], "a second job was submitted that nobody follows"


def sbatch_waits(slurm: FakeSlurm) -> tuple[asyncio.Event, asyncio.Event]:
    """sbatch has queued the job but not yet exited until the test sets ``release``;
    ``queued`` says the job is in the queue (the test plays its move meanwhile)."""
    submit, queued, release = slurm.submit, asyncio.Event(), asyncio.Event()

    async def slow_submit(*args, **kwargs):
        job_id = await submit(*args, **kwargs)
        queued.set()
        await release.wait()
        return job_id

    slurm.submit = slow_submit
    return queued, release


async def a_replacement_in_its_sbatch():
    """alice's start waits in the queue and "start now instead" is pressed: its sbatch has queued
    the new job and waits for ``release`` to return."""
    slurm, engine, server, starting, old = await a_start_that_waits()
    queued, release = sbatch_waits(slurm)
    replacing = asyncio.ensure_future(engine.replace_queued(SMALLER, {"PATH": "/usr/bin"}, partition="acc"))
    await queued.wait()
    (new,) = [j for j in slurm.queue_now if j != old]
    return slurm, engine, server, starting, old, new, replacing, release


def test_a_stop_during_the_replacements_sbatch_cancels_the_new_job_and_the_server_stays_stopped():
    async def scenario():
        slurm, engine, server, starting, old, new, replacing, release = await a_replacement_in_its_sbatch()
        starting.cancel()  # JupyterHub stops the server: its job is cancelled and its record cleared
        await engine.stop(by="alice")
        server.clear_state()
        release.set()
        with pytest.raises(StartFailed) as refused:
            await replacing
        return slurm, engine, server, old, new, refused.value

    slurm, engine, server, old, new, refused = asyncio.run(scenario())
    assert not slurm.jobs_of("alice"), "a job runs that no server follows"
    assert ("alice", ["scancel", new]) in slurm.asked
    assert not engine.job_id and not engine.watcher._watched and server.saved[-1].job_id == old
    assert refused.status_code == 409 and f"job {new} was cancelled" in refused.message
    assert not [e for e in server.events if e["event"] == "replace"]


def test_a_port_reported_during_the_replacements_sbatch_keeps_the_started_job_and_cancels_the_new_one():
    async def scenario():
        slurm, engine, server, starting, old, new, replacing, release = await a_replacement_in_its_sbatch()
        slurm.run_job(old)  # the waiting job starts after all, and its JupyterLab reports its port
        await until(lambda: engine.queue_status.get("state") == "RUNNING")
        assert engine.accept_port(PORT)
        server.listening.add(("127.0.0.1", PORT))
        release.set()
        with pytest.raises(StartFailed) as refused:
            await replacing
        await starting
        return slurm, engine, server, old, new, refused.value

    slurm, engine, server, old, new, refused = asyncio.run(scenario())
    assert new not in slurm.queue_now and ("alice", ["scancel", new]) in slurm.asked
    assert old in slurm.queue_now and ("alice", ["scancel", old]) not in slurm.asked
    record = engine.record
    assert (record.job_id, record.port, record.started) == (old, PORT, True)  # never the port on the new job
    assert refused.status_code == 409 and f"job {new} was cancelled" in refused.message
    assert not [e for e in server.events if e["event"] == "replace"]


# -- a stop during a pending start: JupyterHub cancels start(), waits 1 s, then stops -----------
class SlowSbatch(FakeSlurm):
    """sbatch answers only once ``release`` is set (a controller busy with a burst of starts)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def run(self, argv, *, user=None, stdin=None, **kwargs):
        if argv[0] == "sbatch":
            await self.release.wait()
        return await super().run(argv, user=user, stdin=stdin, **kwargs)


def engine_start(engine: JobEngine) -> asyncio.Task:
    engine.begin(log_path="/home/alice/.aifactory/logs/jupyterlab-%j.log")
    return asyncio.ensure_future(engine.start(SCRIPT, {"PATH": "/usr/bin"}, token="t" * 32, partition="gpp"))


async def cancelled_within_one_step(task: asyncio.Task) -> None:
    """JupyterHub's DELETE gives the cancelled spawn 1 s; the start must end in one loop step."""
    task.cancel()
    await asyncio.sleep(0)
    assert task.cancelled(), "start() still runs after its cancellation"


def test_a_start_cancelled_while_queued_ends_at_once_and_the_stop_that_follows_cancels_its_job():
    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm)
        starting = engine_start(engine)
        await until(lambda: engine.queue_status.get("state") == "PENDING")
        job_id = engine.job_id
        await cancelled_within_one_step(starting)
        polled = await engine.poll()  # JupyterHub's user.stop: poll() first, stop() if still queued
        await engine.stop(by="alice")
        return slurm, engine, job_id, polled

    slurm, engine, job_id, polled = asyncio.run(scenario())
    assert polled is None, "the cancelled start's job must still be recorded for the stop"
    assert ("alice", ["scancel", job_id]) in slurm.asked and not slurm.jobs_of("alice")
    assert not engine.record.started


def test_a_start_cancelled_during_sbatch_ends_at_once_and_the_job_sbatch_then_submits_is_cancelled():
    async def scenario():
        slurm = SlowSbatch()
        engine, _ = engine_on(slurm)
        starting = engine_start(engine)
        await asyncio.sleep(0.02)  # sbatch runs, and waits for the controller
        await cancelled_within_one_step(starting)
        assert await engine.poll() == 0  # no job recorded: JupyterHub's stop has nothing to cancel
        slurm.release.set()  # sbatch returns: the controller had taken the job
        await until(lambda: any(argv[0] == "scancel" for _, argv in slurm.asked))
        return slurm, engine

    slurm, engine = asyncio.run(scenario())
    (job_id,) = slurm.scripts
    assert ("alice", ["scancel", job_id]) in slurm.asked and not slurm.jobs_of("alice")
    assert not engine.job_id, "a cancelled start recorded its job after the stop"


def test_a_start_whose_cancellation_is_lost_gives_up_at_its_next_step_and_never_marks_its_job_started():
    """Python 3.11's wait_for loses a cancellation that arrives as what it waits for completes."""

    async def scenario():
        slurm = FakeSlurm()
        engine, server = engine_on(slurm)
        asked = asyncio.Event()

        async def swallows_cancellation(node: str, host: str, port: int) -> bool:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                asked.set()
            return False

        server.answers = swallows_cancellation
        starting = engine_start(engine)
        job_id = await scheduler_runs_it(slurm, engine, server)
        await asyncio.sleep(0.02)
        work = [t for t in asyncio.all_tasks() if "JobEngine._start" in repr(t.get_coro())]
        await cancelled_within_one_step(starting)
        await asyncio.wait_for(asyncio.gather(*work, return_exceptions=True), 2)
        return engine, job_id, asked.is_set()

    engine, job_id, swallowed = asyncio.run(scenario())
    assert swallowed, "the test's step did not swallow the cancellation"
    assert engine.job_id == job_id and not engine.record.started


def test_a_job_slurm_has_not_placed_yet_is_not_said_to_be_about_to_start():
    """issue 36: the queued page said "about to start" (SLURM's reason None: not looked at yet),
    then "estimated start 01:48", two hours away."""
    said = explain_pending("None")
    assert "about to start" not in said and "scheduler" in said
