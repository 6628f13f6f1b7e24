"""The life of one user's JupyterLab job, without JupyterHub: submit it, follow it until
JupyterLab answers, follow it again after a hub restart, notice its end (why, then forget it)
and stop it.

The engine reaches SLURM through a :class:`SlurmClient` (the hub's one
:class:`~aifactory_workbench.slurm.client.Slurm`; in the unit tests, an in-memory cluster)
and reads the hub's one :class:`~aifactory_workbench.spawners.watcher.JobWatcher`.  What it
needs of the server it runs for is a :class:`Server` (``WorkbenchSpawner``, the adapter
between JupyterHub and this engine).  A start that fails raises :class:`StartFailed`, whose
message the user reads as written.

What it keeps across hub restarts is one :class:`~aifactory_workbench.spawners.job_state.JobState`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aifactory_workbench.slurm.parsers import RUNNING_STATES, JobInfo, JobRecord, SlurmError, SlurmUnavailable
from aifactory_workbench.spawners.job_state import JobState
from aifactory_workbench.spawners.jobscript import worker_job_name
from aifactory_workbench.spawners.messages import (
    NOT_QUEUED,
    REPLACING,
    describe_end,
    explain_pending,
    replacement_overtaken_text,
    replacement_refused_text,
    scheduler_unavailable_text,
)
from aifactory_workbench.spawners.session import stopped_text
from aifactory_workbench.spawners.watcher import JobWatcher, Seen, Snapshot


class SlurmClient(Protocol):
    """The SLURM commands a job's life needs (:class:`~aifactory_workbench.slurm.client.Slurm` has them)."""

    async def submit(self, script: str, *, user: str, env: Mapping[str, str]) -> str: ...
    async def accounting(self, job_id: str) -> JobRecord | None: ...
    async def cancel(self, job_id: str, *, user: str) -> None: ...
    async def cancel_named(self, name: str, *, user: str) -> None: ...
    async def node_address(self, node: str) -> str: ...


class Server(Protocol):
    """What the engine asks of the server it runs a job for."""

    def save_state(self) -> None:
        """Persist :meth:`JobEngine.state` now (a hub restart must find the job)."""

    def audit_event(self, event: str, **fields: Any) -> None:
        """Append an event about this server to the hub's audit log."""

    def end_shares(self) -> int:
        """End the server's shares (they end with its job)."""

    async def answers(self, node: str, host: str, port: int) -> bool:
        """Whether JupyterLab answers at host:port (may raise StartFailed: not this user's server)."""

    def clear_state(self) -> None:
        """Forget the job: the engine's :meth:`JobEngine.forget_job`, and what the server keeps of it."""

    async def notify_gone(self) -> None:
        """The watcher saw the job leave the queue: tell the hub now (``poll_and_notify``)."""


class StartFailed(Exception):
    """A start that cannot go on; ``message`` is what the user is told, ``reason`` a label
    for the hub's metrics (see :func:`aifactory_workbench.spawners.messages.spawn_exception`)."""

    def __init__(self, message: str, *, reason: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message, self.reason, self.status_code = message, reason, status_code


@dataclass(frozen=True)
class Timing:
    """How often the engine looks, and how long JupyterLab may take once its job runs."""

    poll_interval: float  # JupyterHub's poll of a running server: the snapshot may be this old
    startup_poll_interval: float  # the watcher's pace while a job starts or stops
    running_timeout: float  # JupyterLab's time to answer once its job runs (queue time is free)
    stop_wait: float = 30.0  # how long stop() waits for a cancelled job to leave the queue


class JobEngine:
    """One server's job: its record (:attr:`record`), and every step of its life."""

    def __init__(
        self, slurm: SlurmClient, watcher: JobWatcher, server: Server, *, owner: str, timing: Timing, log: Any = None
    ) -> None:
        self.slurm, self.watcher, self.server = slurm, watcher, server
        self.owner, self.timing = owner, timing
        self.log = log or logging.getLogger(__name__)
        self.record = JobState()
        self.stop_note = ""  # who stopped it, and why, when not its owner (the operator page)
        self.progress_message = ""
        self.queue_status: dict[str, Any] = {}  # the job as the progress page shows it
        self._waiting_for_port = False
        self._ending: asyncio.Future[int] | None = None  # the one clean-up of a job that has ended
        self._replacing = False  # a queued job's replacement is being submitted (replace_queued)
        self._stopping = False  # stop() has begun: no replacement takes the job's place (until begin())
        self._abandoned = False  # start() was cancelled: its work ends at its next step (until begin())
        self.starts = 0  # how many starts began (begin()): a later one makes an earlier one's clean-up moot
        self._cleanups: set[asyncio.Future[Any]] = set()  # jobs of abandoned sbatch runs, being cancelled

    # -- the record ------------------------------------------------------------------
    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def submitted_at(self) -> float:
        return self.record.submitted_at

    def update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)

    def load(self, record: JobState) -> None:
        """After a hub restart: the record from the database; its job is followed again."""
        self.record = record
        if record.job_id:
            self.watcher.watch(record.job_id, self)

    def forget_job(self) -> None:
        """The job is over for the hub: keep only what outlives it (the last end, its log, the options)."""
        if self.job_id:
            self.watcher.unwatch(self.job_id)
        self.record = self.record.without_job()
        self._ending = None

    def log_file(self, job_id: str | None = None) -> str:
        return self.record.log_path.replace("%j", job_id or self.job_id)

    def owns_token(self, token: str, plain: str) -> bool:
        """Whether ``token`` is this job's (``plain``: the hub's copy; after a restart, only its hash is kept)."""
        if plain:
            return hmac.compare_digest(plain, token)
        digest = hashlib.sha256(token.encode()).hexdigest()
        return bool(self.record.token_sha256) and hmac.compare_digest(self.record.token_sha256, digest)

    def accept_port(self, port: int, job_id: str = "") -> bool:
        """The job reported its port (the job channel); only a job waiting for one takes it, and
        only from itself: a replaced job (replace_queued) may still report before its cancel lands.
        A report without a job id (a launcher of an older install) is taken as before."""
        if not self._waiting_for_port or self.record.port or (job_id and job_id != self.record.job_id):
            return False
        self.update(port=port)
        self.watcher.refresh_soon()
        return True

    # -- the watcher's follower ------------------------------------------------------
    def job_gone(self) -> None:
        """Called by the watcher once a query after the submission no longer lists the job."""
        asyncio.ensure_future(self.server.notify_gone())

    # -- submit and follow -----------------------------------------------------------
    def begin(self, *, log_path: str) -> None:
        """A new start: no job, no port, no last end; the last log and the options are kept."""
        self.stop_note = ""
        self.starts += 1
        self._stopping = self._abandoned = False
        self.record = replace(self.record.without_job(), last_end="", log_path=log_path)

    async def submit(self, script: str, env: Mapping[str, str], *, token: str, **audit: Any) -> str:
        """Submit the batch script as the owner (after :meth:`begin`); record, persist, audit and
        watch the job.  ``audit``: what the audit log's spawn event says of the request."""
        # A job may start, and report its port, before sbatch has even exited on a busy hub.
        self._waiting_for_port = True
        self.log.info("Submitting JupyterLab for %s to SLURM", self.owner)
        # sbatch runs on if this start is cancelled (sudo's child is not the hub's to kill, and
        # the controller may already hold the job): its job is cancelled once its id is known.
        sbatch = asyncio.ensure_future(self.slurm.submit(script, user=self.owner, env=env))
        try:
            job_id = await asyncio.shield(sbatch)
        except asyncio.CancelledError:
            self._waiting_for_port = False
            sbatch.add_done_callback(self._cancel_unrecorded)
            raise
        except SlurmUnavailable as e:
            self._waiting_for_port = False
            raise StartFailed(scheduler_unavailable_text(e), reason="scheduler_unavailable", status_code=503) from e
        except SlurmError as e:
            self._waiting_for_port = False
            raise StartFailed(f"SLURM refused the JupyterLab job: {e}", reason="slurm_refused") from e
        self.update(job_id=job_id, submitted_at=time.time(), token_sha256=hashlib.sha256(token.encode()).hexdigest())
        self.server.save_state()
        self.server.audit_event("spawn", job_id=job_id, **audit)
        self.watcher.watch(job_id, self, closely=True)
        self.log.info("JupyterLab for %s submitted as SLURM job %s", self.owner, job_id)
        return job_id

    async def start(self, script: str, env: Mapping[str, str], *, token: str, **audit: Any) -> JobInfo:
        """Submit (after :meth:`begin`) and follow the job until JupyterLab answers.

        Its contract with a stop: JupyterHub cancels a pending spawn when a stop interrupts it,
        gives it one second to end, and then stops the server (or, if it is still pending,
        answers the stop with 500 and keeps a server that never started).  So a cancellation
        ends this call at once, at whatever step the start is: the work runs in its own task,
        which is cancelled and not waited for (a step may hold a cancellation: a subprocess that
        sudo runs, Python 3.11's ``wait_for`` that loses one), and which gives up at its next
        step even if its cancellation was lost.  The job stays recorded, so JupyterHub's
        ``stop()`` (after ``poll()`` says it is in the queue) cancels it; a job whose sbatch was
        still running is cancelled as soon as sbatch gives its id."""
        work = asyncio.ensure_future(self._start(script, env, token=token, **audit))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            self._abandoned = True
            work.cancel()
            work.add_done_callback(_retrieved)
            self.log.info("The start of %s's server was cancelled (job %s)", self.owner, self.job_id or "not submitted")
            raise

    async def _start(self, script: str, env: Mapping[str, str], *, token: str, **audit: Any) -> JobInfo:
        await self.submit(script, env, token=token, **audit)
        return await self.follow_until_ready()

    def _cancel_unrecorded(self, sbatch: asyncio.Future[str]) -> None:
        """The start that ran this sbatch was cancelled before it had the job's id: cancel the job."""
        if sbatch.cancelled() or sbatch.exception() is not None:
            return
        job_id = sbatch.result()
        self.log.warning("Job %s of %s was submitted after its start was cancelled: cancelling it", job_id, self.owner)
        cleanup = asyncio.ensure_future(self.cancel_forgotten(job_id))
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    async def replace_queued(self, script: str, env: Mapping[str, str], **audit: Any) -> str:
        """While the job waits in the queue, submit ``script`` in its place: the new job is
        submitted first, and only once SLURM has given its id is the waiting one cancelled, so
        the user never has neither.  A start in progress (:meth:`wait_until_answering`) follows
        the new job from its next look, with the same token and no port until the new job reports
        one; no second server.  A refused submit changes nothing: the old job keeps waiting, and
        :class:`StartFailed` says why.  If during sbatch the waiting job started or reported its
        port, or the server was stopped, the new job is cancelled and :class:`StartFailed` (409)
        says so: the old state stands.  Returns the new job's id."""
        old = self.job_id
        if not self.waits_in_queue(old):
            raise StartFailed(NOT_QUEUED, reason="not_queued", status_code=409)
        if self._replacing:  # a second press meanwhile would leave one of two new jobs unfollowed
            raise StartFailed(REPLACING, reason="busy", status_code=429)
        self._replacing = True
        try:
            new = await self.slurm.submit(script, user=self.owner, env=env)
        except SlurmUnavailable as e:
            text = replacement_refused_text(scheduler_unavailable_text(e), old)
            raise StartFailed(text, reason="scheduler_unavailable", status_code=503) from e
        except SlurmError as e:
            text = replacement_refused_text(f"SLURM refused the new job: {e}.", old)
            raise StartFailed(text, reason="slurm_refused") from e
        finally:
            self._replacing = False
        if not self.waits_in_queue(old):
            # During sbatch the server was stopped, or the waiting job started or reported its port:
            # the new job would run unfollowed (or take that port), so it goes and the old state stands.
            self.log.warning("Job %s of %s no longer waits: its replacement %s is cancelled", old, self.owner, new)
            await self.cancel_forgotten(new)
            raise StartFailed(replacement_overtaken_text(old, new), reason="not_queued", status_code=409)
        self.watcher.unwatch(old)  # its end is not this server's
        self.update(job_id=new, submitted_at=time.time(), port=0)
        self.queue_status = {}
        self.server.save_state()
        self.watcher.watch(new, self, closely=True)
        self.server.audit_event("replace", job_id=new, replaced=old, **audit)
        self.log.info("Job %s of %s replaced by job %s while queued", old, self.owner, new)
        await self.cancel_forgotten(old)
        return new

    def waits_in_queue(self, job_id: str) -> bool:
        """Whether ``job_id`` is this server's job and still waits in the queue: not started, no
        port reported, no stop begun (what :meth:`replace_queued` checks before and after sbatch)."""
        return (
            bool(job_id)
            and job_id == self.job_id
            and not (self.record.started or self.record.port or self._stopping)
            and self.queue_status.get("state") == "PENDING"
        )

    async def follow_until_ready(self) -> JobInfo:
        """Follow the job closely until JupyterLab answers; then the job has started (saved,
        so that a hub restart keeps it).  Shared by a start and by :meth:`resume`."""
        self.watcher.follow_closely(self.job_id)
        try:
            info = await self.wait_until_answering()
        finally:
            self.watcher.follow_closely(self.job_id, False)
        ip = await self.slurm.node_address(info.node)
        if self._abandoned:  # a cancelled start never marks its job started
            raise asyncio.CancelledError
        self.update(ip=ip, started=True)
        self.server.save_state()
        self.log.info(
            "JupyterLab of %s answers on %s:%d (job %s)", self.owner, info.node, self.record.port, self.job_id
        )
        return info

    async def wait_until_answering(self) -> JobInfo:
        """Follow the job until it runs and JupyterLab answers; fail as soon as it ends, or if it
        runs but JupyterLab does not answer within ``running_timeout`` (queue time is free)."""
        self._waiting_for_port = True
        running_since = 0.0
        try:
            while True:
                snapshot = await self.watcher.next_snapshot(timeout=2 * self.timing.startup_poll_interval)
                if self._abandoned:  # start() was cancelled, and this task's cancellation was lost
                    raise asyncio.CancelledError
                if snapshot.error:
                    # Says nothing about the job: keep waiting, as the job does.
                    self.progress_message = f"The scheduler is not answering ({snapshot.error}); job kept"
                    continue
                seen, info = self.seen(snapshot)
                if seen is Seen.GONE:
                    raise StartFailed(
                        f"JupyterLab job {self.job_id} ended before JupyterLab started: "
                        f"{await self.why_ended()}. Its log is {self.log_file()}.",
                        reason="job_ended",
                    )
                if info is None:
                    continue
                if info.is_running:
                    running_since = running_since or time.monotonic()
                    if await self.jupyterlab_answers(info):
                        return info
                    self.check_running_timeout(info, running_since)
                self.show_progress(info, snapshot.positions.get(info.job_id, ""))
        finally:
            self._waiting_for_port = False

    def seen(self, snapshot: Snapshot) -> tuple[Seen, JobInfo | None]:
        return snapshot.seen(self.job_id, self.submitted_at, self.owner)

    async def jupyterlab_answers(self, info: JobInfo) -> bool:
        if not self.record.port:
            return False
        host = await self.slurm.node_address(info.node)
        return await self.server.answers(info.node, host, self.record.port)

    def check_running_timeout(self, info: JobInfo, running_since: float) -> None:
        if time.monotonic() - running_since > self.timing.running_timeout:
            raise StartFailed(
                f"JupyterLab did not answer within {self.timing.running_timeout:.0f}s of job {self.job_id} "
                f"starting on {info.node}; it was cancelled. Its log is {self.log_file()}.",
                reason="start_timeout",
            )

    # -- what the progress page shows ------------------------------------------------
    def show_progress(self, info: JobInfo, position: str) -> None:
        """The job as the progress page shows it (position: from the watcher's one query for all)."""
        pending = info.is_pending
        start = info.start_time if pending and info.start_time[:1].isdigit() else ""
        self.queue_status = {
            "id": info.job_id,
            "state": info.state,
            "reason": info.reason if pending else "",
            "explanation": explain_pending(info.reason) if pending else "",
            "estimated_start": start,
            "position": position if pending else "",
        }
        self.progress_message = self.progress_text(info)

    def progress_text(self, info: JobInfo) -> str:
        if info.is_pending:
            status = self.queue_status
            where = f" (position {status['position']})" if status.get("position") else ""
            start = status.get("estimated_start", "")
            when = f"; estimated start {start.replace('T', ' ')}" if start else ""
            return f"Job {info.job_id} is queued in {info.partition}{where}: {explain_pending(info.reason)}{when}"
        if self.record.port:
            return f"Job {info.job_id} is running on {info.node}; JupyterLab is starting"
        return f"Job {info.job_id} is running on {info.node}; starting JupyterLab"

    def progress_percent(self) -> int:
        """How far the start has come: submitted, queued, running, JupyterLab starting, answering
        (JupyterHub adds 100 when it routes the browser to JupyterLab)."""
        if not self.job_id:
            return 5
        if self.record.started:
            return 95
        if self.record.port:
            return 75
        state = self.queue_status.get("state", "")
        if state in RUNNING_STATES:
            return 50
        return 25 if state else 10

    # -- the end of a job: why, then forget it -----------------------------------------
    async def why_ended(self) -> str:
        """How the job ended, in words, from accounting."""
        record = await self.ended_record(self.job_id)
        return describe_end(record) if record is not None else "it left the queue"

    async def ended_record(self, job_id: str, tries: int = 10) -> JobRecord | None:
        """Accounting's record of an ended job (accounting may lag the controller a moment)."""
        for attempt in range(tries):
            try:
                record = await self.slurm.accounting(job_id)
            except SlurmError as e:
                self.log.warning("sacct for job %s failed: %s", job_id, e)
                record = None
            if record is not None and record.ended:
                return record
            if attempt < tries - 1:
                await asyncio.sleep(0.5)
        return None

    async def forget_ended(self, reason: str | None = None) -> int:
        """The job has ended (walltime, scancel, out of memory, node failure, preemption): say why
        on the user's next page, audit it, end its shares, cancel its Dask workers and forget it.
        Returns poll()'s "not running" status."""
        job_id = self.job_id
        reason = reason or await self.why_ended()
        self.log.info("Job %s of %s has ended: %s", job_id, self.owner, reason)
        self.update(last_end=f"Your JupyterLab job {job_id} has ended: {reason}.", last_log=self.log_file())
        self.server.audit_event("job_end", job_id=job_id, reason=reason)
        self.server.end_shares()  # the next session is not shared, whoever ended this one
        await self.cancel_workers(job_id)
        self.server.clear_state()
        return 1

    async def poll(self) -> int | None:
        """None while the job is in the queue (or the scheduler cannot say); 1 once it has ended
        (cleaned up once, however many polls notice); 0 with no job.  Reads the shared snapshot."""
        if not self.job_id:
            return 0
        snapshot = await self.watcher.current(max_age=self.timing.poll_interval)
        if self.seen(snapshot)[0] is not Seen.GONE:
            return None
        # The watcher's notice and JupyterHub's own poll may both get here: end the job once.
        if self._ending is None:
            self._ending = asyncio.ensure_future(self.forget_ended())
        return await asyncio.shield(self._ending)

    async def resume(self) -> int | None:
        """The hub restarted while this job was queued or starting: follow it until JupyterLab
        answers (None), or, if it never does, cancel it and forget it (1)."""
        self.log.info("Job %s of %s was starting when the hub stopped: following it again", self.job_id, self.owner)
        try:
            await self.follow_until_ready()
        except StartFailed as e:
            # JupyterLab never answered (or the job ended): a job the hub forgets keeps no allocation.
            await self.cancel_forgotten(self.job_id)
            return await self.forget_ended(e.message.rstrip("."))
        return None

    async def cancel_forgotten(self, job_id: str) -> None:
        """A job the hub forgets while it may still run must not keep its allocation (scancel of
        an ended job is fine; a job of that id but another user is not cancelled: sudo refuses)."""
        try:
            await self.slurm.cancel(job_id, user=self.owner)
        except SlurmError as e:
            self.log.warning("Could not cancel job %s of %s: %s", job_id, self.owner, e)

    async def cancel_workers(self, job_id: str) -> None:
        """Dask worker jobs that this server started do not outlive it."""
        try:
            await self.slurm.cancel_named(worker_job_name(job_id), user=self.owner)
        except SlurmError as e:
            self.log.warning("Could not cancel Dask workers of job %s: %s", job_id, e)

    async def stop(self, *, by: str, now: bool = False) -> None:
        """Cancel the job and its Dask workers; unless ``now``, wait until it has left the queue
        and say on the user's next page what it cost (:func:`stopped_text`)."""
        job_id = self.job_id
        if not job_id:
            return
        self._stopping = True
        self.log.info("Cancelling job %s of %s and its Dask workers", job_id, self.owner)
        self.server.audit_event("stop", job_id=job_id, by=by)
        await self.slurm.cancel(job_id, user=self.owner)
        await self.cancel_workers(job_id)
        if now:
            return
        self.watcher.follow_closely(job_id)
        try:
            deadline = time.monotonic() + self.timing.stop_wait
            while time.monotonic() < deadline:
                snapshot = await self.watcher.next_snapshot(timeout=2 * self.timing.startup_poll_interval)
                if snapshot.seen(job_id, self.submitted_at, self.owner)[0] is Seen.GONE:
                    # The user's next page says what happened to the job and what it cost.
                    stopped = stopped_text(job_id, await self.ended_record(job_id))
                    self.update(
                        last_end=f"{stopped} {self.stop_note}" if self.stop_note else stopped,
                        last_log=self.log_file(job_id),
                    )
                    return
            self.log.warning(
                "Job %s of %s still in the queue %.0fs after scancel", job_id, self.owner, self.timing.stop_wait
            )
        finally:
            self.watcher.follow_closely(job_id, False)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """An abandoned start's outcome is nobody's: read it, so that asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()
