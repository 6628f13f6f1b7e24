"""JupyterLab as a SLURM batch job of the logged-in user.

Builds on batchspawner's SlurmSpawner (its traits, state keys and UserEnvMixin) and mends
what it gets wrong with JupyterHub 6:

* JupyterHub 5.2 removed PATH, LANG & co from ``env_keep``: the job runs absolute
  commands from the site's venv and the launcher rebuilds PATH on the node;
* a job that dies before JupyterLab reports its port hung the spawn until
  ``start_timeout``: we watch the job while waiting and fail at once with SLURM's reason;
* ``user_options`` were merged raw into the script: only validated options reach it;
* any squeue hiccup read as "job gone": an unavailable scheduler keeps the server;
* the job id was saved only after ``start()`` returned: it is saved on submission.

Every SLURM command goes through :class:`aifactory.slurm.Slurm`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import pwd
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from batchspawner import SlurmSpawner
from traitlets import Any as AnyTrait
from traitlets import Float, Unicode, default

from aifactory.dask_config import DASHBOARD_LINK_ENV, worker_job_name
from aifactory.site_config import SlurmSettings
from aifactory.slurm import JobInfo, Slurm, SlurmError, SlurmUnavailable, describe_end, explain_pending
from spawners.jobscript import CERT_FILES, JobRequest, OptionError, render
from spawners.user_options import UserOptionsMixin
from spawners.watcher import JobWatcher, Seen

#: One Slurm for the hub: it caches node addresses and counts every command.
SHARED_SLURM = Slurm()


async def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at host:port (JupyterLab has bound it)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


class SpawnFailed(RuntimeError):
    """A start that cannot succeed; the message is what the user reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.jupyterhub_message = message


class WorkbenchSpawner(UserOptionsMixin, SlurmSpawner):
    """Starts each user's JupyterLab with ``sbatch`` as that user and follows the job."""

    job_name = Unicode(
        "aifw-jupyterlab",
        help="SLURM job name of JupyterLab jobs, so that users and admins recognise them in squeue.",
    ).tag(config=True)

    singleuser_venv = Unicode(
        "/opt/aifactory/venv",
        help="Python environment, readable by every user, whose jupyterhub-singleuser the job runs.",
    ).tag(config=True)

    running_timeout = Float(
        300,
        help="Seconds JupyterLab may take to answer once its job runs. Time waiting in the queue does not "
        "count: JupyterHub's start_timeout is set to cover the queue, so a pending job is never cancelled "
        "just for waiting.",
    ).tag(config=True)

    audit = AnyTrait(
        None, allow_none=True, help="The aifactory.audit.AuditLog that spawns and stops are recorded in."
    ).tag(config=True)

    slurm = AnyTrait(help="The aifactory.slurm.Slurm instance through which every SLURM command runs.")

    @default("slurm")
    def _default_slurm(self) -> Slurm:
        return SHARED_SLURM

    watcher = AnyTrait(help="The JobWatcher whose one squeue per interval serves every server's poll.")

    @default("watcher")
    def _default_watcher(self) -> JobWatcher:
        return JobWatcher.shared(self.slurm, self.job_name, self.poll_interval, self.startup_poll_interval)

    @default("req_homedir")
    def _default_homedir(self) -> str:
        return pwd.getpwnam(self.user.name).pw_dir

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.progress_message = ""
        self.last_end = ""  # shown on the user's home page once a running server's job has ended
        self.log_path = ""
        self.submitted_at = 0.0
        self.request: JobRequest | None = None  # set from user_options once they passed every check
        self.queue_status: dict[str, Any] = {}  # the job as the progress page shows it
        self.started = False  # start() returned: JupyterLab answered (kept across hub restarts)
        self.cert_pems: dict[str, str] = {}  # internal_ssl: PEM text for the job script
        self._ending: asyncio.Future[int] | None = None  # the one clean-up of a job that has ended
        self.token_sha256 = ""  # the job's API token, hashed: after a restart the hub has no plain copy
        self._waiting_for_port = False

    # -- what the job is -------------------------------------------------------------
    def site_defaults(self) -> SlurmSettings:
        return SlurmSettings(
            partition=self.req_partition,
            account=self.req_account,
            qos=self.req_qos,
            reservation=self.req_reservation,
            cpus=int(self.req_nprocs or 1),
            memory=self.req_memory,
            gpus=int(self.req_ngpus or 0),
            walltime=self.req_runtime,
            job_name=self.job_name,
            startup_poll_interval=self.startup_poll_interval,
        )

    def job_request(self) -> JobRequest:
        """The checked request (apply_user_options ran), or the site's defaults checked statically."""
        if self.request is not None:
            return self.request
        try:
            return JobRequest.build(self.user.name, self.req_homedir, self.site_defaults(), self.user_options or {})
        except OptionError as e:
            raise SpawnFailed(f"The requested job settings were refused: {e}") from e

    def job_command(self) -> list[str]:
        bindir = os.path.join(self.singleuser_venv, "bin")
        return [
            os.path.join(bindir, "aifactory-singleuser"),
            os.path.join(bindir, "jupyterhub-singleuser"),
            *self.get_args(),
        ]

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.setdefault("LANG", "C.UTF-8")
        env.update(DASHBOARD_LINK_ENV)
        env["PATH"] = os.pathsep.join([os.path.join(self.singleuser_venv, "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def batch_script_for(self, request: JobRequest, env: dict[str, str]) -> str:
        return render(request, self.job_command(), export=env.keys(), certs=self.cert_pems)

    # -- internal_ssl: certificates travel inside the batch script -------------------
    async def create_certs(self) -> dict[str, str]:
        """The server's certificate names every compute node, since SLURM picks the node later."""
        self.ssl_alt_names = [
            f"IP:{name}" if name.replace(".", "").isdigit() else f"DNS:{name}"
            for name in await self.discovery.node_names()
        ]
        return await super().create_certs()

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Read the PEMs for the job script; the hub keeps no copy of the server's key."""
        self.cert_pems = {name: Path(paths[name]).read_text() for name in CERT_FILES}
        Path(paths["keyfile"]).unlink(missing_ok=True)
        # Where the job writes them (the script exports the real paths; these are for the record).
        return {name: f"$TMPDIR/aifw-certs-JOBID/{name}.pem" for name in CERT_FILES}

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        self.port = 0
        self.last_end = ""
        self.ip = "0.0.0.0"  # JupyterLab listens on the node's interfaces; the hub learns the node
        request = self.job_request()
        self.log_path = request.log_path
        env = self.get_env()
        script = self.batch_script_for(request, env)
        self.progress_message = f"Submitting JupyterLab to partition {request.slurm.partition}"
        # A job may start, and report its port, before sbatch has even exited on a busy hub.
        self._waiting_for_port = True
        try:
            self.job_id = await self.slurm.submit(script, user=self.user.name, env=env)
        except SlurmUnavailable as e:
            self._waiting_for_port = False
            raise SpawnFailed(
                f"The scheduler is unavailable right now ({e}). Please try again in a few minutes."
            ) from e
        except SlurmError as e:
            self._waiting_for_port = False
            raise SpawnFailed(f"SLURM refused the JupyterLab job: {e}") from e
        self.submitted_at = time.time()
        self.token_sha256 = hashlib.sha256((self.api_token or "").encode()).hexdigest()
        self.save_state()
        s = request.slurm
        self.record("spawn", job_id=self.job_id, partition=s.partition, account=s.account or "(default)",
                    qos=s.qos, cpus=s.cpus, memory=s.memory, walltime=s.walltime)  # fmt: skip
        self.watcher.watch(self.job_id, self, hurry=True)
        self.log.info("JupyterLab for %s submitted as SLURM job %s", self.user.name, self.job_id)
        try:
            info = await self.wait_until_reported()
        finally:
            self.watcher.hurry(self.job_id, False)
        self.ip = await self.slurm.node_address(info.node)
        self.progress_message = f"JupyterLab (job {self.job_id}) is starting on {info.node}"
        self.started = True
        self.save_state()
        return self.ip, self.port

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.job_id:
            state["submitted_at"] = self.submitted_at
            state["started"] = self.started
            state["token_sha256"] = self.token_sha256
            state["port"] = self.port
            state["log_path"] = self.log_path
        if self.last_end:  # kept after the job's end, for the user's next page
            state["last_end"] = self.last_end
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """After a hub restart: follow the jobs that the database remembers."""
        super().load_state(state)
        self.submitted_at = float(state.get("submitted_at", 0.0))
        self.started = bool(state.get("started", True))  # state from before this key: it had started
        self.token_sha256 = state.get("token_sha256", "")
        self.log_path = state.get("log_path", "")
        self.port = int(state.get("port", self.port) or 0)
        self.last_end = state.get("last_end", "")
        if self.job_id:
            self.watcher.watch(self.job_id, self)

    def clear_state(self) -> None:
        if self.job_id:
            self.watcher.unwatch(self.job_id)
        super().clear_state()
        self._ending = None
        self.submitted_at = 0.0
        self.started = False
        self.token_sha256 = ""

    def record(self, event: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.record(event, user=self.user.name, server=self.name or "(default)", **fields)

    def save_state(self) -> None:
        """Persist the job id now, so that a hub restart finds the job (not only after start)."""
        orm = getattr(self, "orm_spawner", None)
        if orm is not None and self.db is not None:
            orm.state = self.get_state()
            self.db.commit()

    def owns_token(self, token: str) -> bool:
        """Whether ``token`` is this server's (after a restart, only its hash is known)."""
        if self.api_token:
            return hmac.compare_digest(self.api_token, token)
        digest = hashlib.sha256(token.encode()).hexdigest()
        return bool(self.token_sha256) and hmac.compare_digest(self.token_sha256, digest)

    def accept_reported_port(self, port: int) -> bool:
        """Called by the job channel; only a server waiting for its port takes one."""
        if not self._waiting_for_port or self.port:
            return False
        self.port = port
        self.watcher.poke()
        return True

    async def wait_until_reported(self) -> JobInfo:
        """Follow the job until it runs and answers; fail as soon as it ends, or if it runs
        but JupyterLab does not answer within ``running_timeout`` (queue time is free)."""
        self._waiting_for_port = True
        running_since = 0.0
        try:
            while True:
                snapshot = await self.watcher.next_snapshot(timeout=2 * self.startup_poll_interval)
                if snapshot.error:
                    # Says nothing about the job: keep waiting, as the job does.
                    self.progress_message = f"The scheduler is not answering ({snapshot.error}); job kept"
                    continue
                seen, info = snapshot.seen(self.job_id, self.submitted_at)
                if seen is Seen.GONE:
                    raise SpawnFailed(await self.ended_message())
                if info is None:
                    continue
                if info.is_running:
                    running_since = running_since or time.monotonic()
                    if await self.answers(info):
                        return info
                    self.check_running_timeout(info, running_since)
                self.show_queue_status(info, snapshot.positions.get(info.job_id, ""))
                self.progress_message = self.describe(info)
        finally:
            self._waiting_for_port = False

    async def answers(self, info: JobInfo) -> bool:
        return bool(self.port) and await port_open(await self.slurm.node_address(info.node), self.port)

    def check_running_timeout(self, info: JobInfo, running_since: float) -> None:
        if time.monotonic() - running_since > self.running_timeout:
            log = self.log_path.replace("%j", self.job_id)
            raise SpawnFailed(
                f"JupyterLab did not answer within {self.running_timeout:.0f}s of job {self.job_id} starting "
                f"on {info.node}; it was cancelled. Its log is {log}."
            )

    def show_queue_status(self, info: JobInfo, position: str) -> None:
        """The job as the progress page shows it (position: from the watcher's one query for all)."""
        start = info.start_time if info.is_pending and info.start_time[:1].isdigit() else ""
        self.queue_status = {
            "id": info.job_id,
            "state": info.state,
            "reason": info.reason if info.is_pending else "",
            "explanation": explain_pending(info.reason) if info.is_pending else "",
            "estimated_start": start,
            "position": position if info.is_pending else "",
        }

    def describe(self, info: JobInfo) -> str:
        if info.is_pending:
            status = self.queue_status
            where = f" (position {status['position']})" if status.get("position") else ""
            start = (
                f"; estimated start {status['estimated_start'].replace('T', ' ')}"
                if status.get("estimated_start")
                else ""
            )
            return f"Job {info.job_id} is queued in {info.partition}{where}: {explain_pending(info.reason)}{start}"
        if self.port:
            return f"Job {info.job_id} is running on {info.node}; JupyterLab is starting on port {self.port}"
        return f"Job {info.job_id} is running on {info.node}; starting JupyterLab"

    async def how_it_ended(self) -> str:
        """How the job ended, from accounting, which may lag the controller a moment."""
        record = None
        for _ in range(10):
            try:
                record = await self.slurm.record(self.job_id)
            except SlurmError as e:
                self.log.warning("sacct for job %s failed: %s", self.job_id, e)
            if record is not None and record.ended:
                return describe_end(record)
            await asyncio.sleep(0.5)
        return "it left the queue"

    async def ended_message(self) -> str:
        """Why the job ended before JupyterLab started, and where its log is."""
        how = await self.how_it_ended()
        log = self.log_path.replace("%j", self.job_id)
        return f"JupyterLab job {self.job_id} ended before JupyterLab started: {how}. Its log is {log}."

    async def poll(self) -> int | None:
        """Read the shared snapshot: no scheduler call of its own."""
        if not self.job_id:
            return 0
        if self._check_pending and not self.started:
            return await self.resume_start()
        snapshot = await self.watcher.current(max_age=self.poll_interval)
        seen, _ = snapshot.seen(self.job_id, self.submitted_at)
        if seen is not Seen.GONE:
            # Queued, or not known yet; an unreachable scheduler says nothing about the job.
            return None
        # The watcher's notice and JupyterHub's own poll may both get here: end the job once.
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end_job())
        return await asyncio.shield(self._ending)

    async def _end_job(self) -> int:
        return await self.job_has_ended(await self.how_it_ended())

    async def job_has_ended(self, reason: str) -> int:
        """Forget the job: say why on the user's next page, and cancel its Dask workers."""
        self.log.info("Job %s of %s has ended: %s", self.job_id, self.user.name, reason)
        self.last_end = f"Your JupyterLab job {self.job_id} has ended: {reason}."
        self.record("job_end", job_id=self.job_id, reason=reason)
        await self.cancel_workers(self.job_id)
        self.clear_state()
        return 1

    async def resume_start(self) -> int | None:
        """The hub restarted while this job was queued or starting: wait for it again.

        JupyterHub checks every server at start-up and stops those whose ``poll()`` says
        "not running" or that do not answer at once; either would cancel a queued job.  So
        this check waits until JupyterLab answers (``init_spawners_timeout`` lets the hub
        serve meanwhile), then the server goes on as if the hub had never stopped.
        """
        self.log.info("Job %s of %s was starting when the hub stopped: following it again", self.job_id, self.user.name)
        self.watcher.hurry(self.job_id)
        try:
            info = await self.wait_until_reported()
        except SpawnFailed as e:
            return await self.job_has_ended(str(e).rstrip("."))
        finally:
            self.watcher.hurry(self.job_id, False)
        self.ip = await self.slurm.node_address(info.node)
        self.started = True
        self.save_state()
        asyncio.ensure_future(self.route_when_checked())
        return None

    async def get_url(self) -> str:
        """Where JupyterLab is, for JupyterHub's check after a restart (the database may hold port 0)."""
        if self.started and self.ip and self.port and self.server is not None:
            return f"http://{self.ip}:{self.port}{self.server.base_url}"
        return await super().get_url()

    async def route_when_checked(self) -> None:
        """A server resumed after a restart joins the proxy once JupyterHub's check has passed."""
        while self._check_pending:
            await asyncio.sleep(0.5)
        if self.ready:
            from jupyterhub.app import JupyterHub

            await JupyterHub.instance().proxy.add_user(self.user, self.name)

    async def cancel_workers(self, job_id: str) -> None:
        """Dask worker jobs that this server started do not outlive it."""
        try:
            await self.slurm.cancel_named(worker_job_name(job_id), user=self.user.name)
        except SlurmError as e:
            self.log.warning("Could not cancel Dask workers of job %s: %s", job_id, e)

    async def stop(self, now: bool = False) -> None:
        if not self.job_id:
            return
        self.log.info("Cancelling job %s of %s and its Dask workers", self.job_id, self.user.name)
        self.record("stop", job_id=self.job_id)
        await self.slurm.cancel(self.job_id, user=self.user.name)
        await self.cancel_workers(self.job_id)
        if now:
            return
        self.watcher.hurry(self.job_id)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                snapshot = await self.watcher.next_snapshot(timeout=2 * self.startup_poll_interval)
                if snapshot.seen(self.job_id, self.submitted_at)[0] is Seen.GONE:
                    return
            self.log.warning("Job %s of %s still in the queue 30s after scancel", self.job_id, self.user.name)
        finally:
            self.watcher.hurry(self.job_id, False)

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        shown = ""
        while True:
            if self.progress_message and self.progress_message != shown:
                shown = self.progress_message
                yield {"message": shown, "job": dict(self.queue_status)}
            await asyncio.sleep(0.5)
