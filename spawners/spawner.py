"""JupyterLab as a SLURM batch job of the logged-in user.

``WorkbenchSpawner`` keeps batchspawner's ``SlurmSpawner`` as its base, so a site's
``c.SlurmSpawner.req_*`` settings mean what batchspawner documents; every other inherited
setting is refused when the hub starts (:data:`REFUSED_SETTINGS` says why), none is
accepted and ignored.  What it mends in batchspawner is listed in docs/operators/batchspawner.md.

Every SLURM command goes through the hub's one :class:`aifactory_workbench.slurm.client.Slurm`, and every
spawner reads the hub's one :class:`aifactory_workbench.spawners.services.Services`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import ipaddress
import os
import pwd
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from batchspawner import SlurmSpawner
from jupyterhub.spawner import SpawnException
from jupyterhub.utils import make_ssl_context
from traitlets import Any as AnyTrait
from traitlets import Float, Integer, List, TraitError, Unicode, default
from traitlets.config import Config, Configurable

from aifactory_workbench.job import EXAMPLES_COMMAND, JOB_ENVIRONMENT, LAUNCHER
from aifactory_workbench.slurm.job_fields import JOB_FIELDS, JobSettings, problems
from aifactory_workbench.slurm.parsers import RUNNING_STATES, JobInfo, JobRecord, SlurmError, SlurmUnavailable
from aifactory_workbench.slurm.values import JOB_NAME
from aifactory_workbench.spawners import session
from aifactory_workbench.spawners.form import PRESET_KEYS
from aifactory_workbench.spawners.gallery import HOME_FOLDER, copy_command
from aifactory_workbench.spawners.job_state import JobState
from aifactory_workbench.spawners.jobscript import (
    CERT_FILES,
    JobRequest,
    OptionError,
    SessionTimes,
    render,
    worker_job_name,
)
from aifactory_workbench.spawners.jupyterhub_compat import add_route_for, check_pending
from aifactory_workbench.spawners.messages import (
    describe_end,
    explain_pending,
    options_refused,
    scheduler_unavailable,
    spawn_exception,
)
from aifactory_workbench.spawners.options import UserOptionsMixin
from aifactory_workbench.spawners.seats import Workshop
from aifactory_workbench.spawners.services import Services
from aifactory_workbench.spawners.watcher import Seen

#: Each job setting and the spawner setting that holds its default.
JOB_SETTING_TRAITS = {f.name: f.trait for f in JOB_FIELDS}

_FIXED_COMMANDS = "SLURM commands are fixed argument lists run through sudo (config/sudoers.in)"
#: Settings inherited from batchspawner (and JupyterHub's Spawner) that this spawner cannot honour.
REFUSED_SETTINGS = {
    "batch_script": "the batch script is job/jupyterlab.sbatch.j2, rendered from checked values only; "
    "set the job's resources with req_* or the site file's slurm section",
    "batch_submit_cmd": _FIXED_COMMANDS,
    "batch_query_cmd": _FIXED_COMMANDS + "; one squeue for every server reads the jobs",
    "batch_cancel_cmd": _FIXED_COMMANDS,
    "exec_prefix": _FIXED_COMMANDS,
    "batchspawner_singleuser_cmd": "the job runs aifactory-singleuser, which reports its port to the hub",
    "req_srun": "JupyterLab is the batch step's own process (no srun), so SLURM's signals reach it",
    "req_prologue": "no free shell text goes into the batch script",
    "req_epilogue": "no free shell text goes into the batch script",
    "req_options": "no free #SBATCH text goes into the batch script; use the req_* settings",
    "req_queue": "SLURM has partitions: use req_partition",
    "req_host": "the hub reaches the node that SLURM reports for the job",
    "req_cluster": "the hub submits to the cluster its SLURM commands reach",
    "req_gres": "GPUs are a count: use req_ngpus",
    "req_keepvars_extra": "the job's environment is JupyterHub's (Spawner.environment, env_keep)",
    "state_pending_re": "job states come from squeue's state field, not from patterns",
    "state_running_re": "job states come from squeue's state field, not from patterns",
    "state_unknown_re": "job states come from squeue's state field, not from patterns",
    "state_exechost_re": "the node comes from squeue's node field, not from patterns",
    "state_exechost_exp": "the node comes from squeue's node field, not from patterns",
    "ip": "JupyterLab listens on its node; the hub reaches it at the address SLURM gives the node",
    "cmd": "the job runs jupyterhub-singleuser from singleuser_venv",
    "mem_limit": "memory is a SLURM request: use req_memory (site file: slurm.memory)",
    "cpu_limit": "cores are a SLURM request: use req_nprocs (site file: slurm.cpus)",
    "mem_guarantee": "memory is a SLURM request: use req_memory (site file: slurm.memory)",
    "cpu_guarantee": "cores are a SLURM request: use req_nprocs (site file: slurm.cpus)",
}

#: Set in the environment of hub-spawned servers only (elsewhere the variable is missing):
#: the Dask dashboard opens through the hub, at the user's own URL (jupyter-server-proxy).
DASHBOARD_LINK_ENV = {"DASK_DISTRIBUTED__DASHBOARD__LINK": "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"}


class Count(Integer):
    """A whole number that may also be written as a string of digits, as batchspawner's
    ``req_nprocs = "4"`` is."""

    def validate(self, obj: Any, value: Any) -> int:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        return super().validate(obj, value)


async def reply_to_request(host: str, port: int, timeout: float) -> bytes | None:
    """The first byte a server at host:port answers a plain request with; b"" if it closed the
    connection; None if nothing accepted the connection or nothing answered within ``timeout``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return None
    try:
        writer.write(b"HEAD / HTTP/1.0\r\n\r\n")
        return await asyncio.wait_for(reader.read(1), timeout)
    except TimeoutError:
        return None
    except OSError:
        return b""
    finally:
        writer.close()


async def serving(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a server handles connections at host:port.  The launcher listens before
    JupyterLab runs, so a connection alone only means it waits in the queue; a closed
    connection means a server that refused plain text (TLS) if the port still accepts
    connections, or one that has just died if it does not."""
    reply = await reply_to_request(host, port, timeout)
    if reply is None:
        return False
    if reply:
        return True
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


async def server_identity(host: str, port: int, context: ssl.SSLContext, timeout: float = 1.0) -> str | None:
    """internal_ssl: the common name on the certificate of the server at host:port (each user's
    is ``user-<name>``, signed by the hub's CA); None if no TLS handshake completed in time."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
    except (TimeoutError, OSError):
        return None
    try:
        subject = dict(pair[0] for pair in writer.get_extra_info("peercert")["subject"])
    finally:
        writer.close()
    return subject.get("commonName", "")


def alt_name(host: str) -> str:
    """A certificate's subject alternative name for a host name or an IP address."""
    try:
        return f"IP:{ipaddress.ip_address(host)}"
    except ValueError:
        return f"DNS:{host}"


#: The spawner's setting for each job setting (batchspawner's ``req_*`` where it has one, ours
#: where it has none), typed and explained by the table's row.
JobFieldSettings = type(
    "JobFieldSettings",
    (Configurable,),
    {
        f.trait: (Count if f.kind is int else Unicode)(help=f"{f.help} Site file: slurm.{f.name}.").tag(config=True)
        for f in JOB_FIELDS
    },
)


class WorkbenchSpawner(UserOptionsMixin, JobFieldSettings, SlurmSpawner):
    """Starts each user's JupyterLab with ``sbatch`` as that user and follows the job."""

    job_name = Unicode(
        help="SLURM job name of JupyterLab jobs, so that users and admins recognise them in squeue.",
    ).tag(config=True)

    singleuser_venv = Unicode(
        help="Python environment, readable by every user, whose jupyterhub-singleuser the job runs.",
    ).tag(config=True)

    warn_minutes = List(
        Integer(),
        default_value=list(SessionTimes().warn_minutes),
        help="Minutes before the walltime ends at which JupyterLab warns the user (a status-bar "
        "countdown shows the time left throughout).",
    ).tag(config=True)

    save_before_end = Integer(
        SessionTimes().save_before_end,
        help="Seconds before the walltime ends at which SLURM signals the job (sbatch --signal) and "
        "JupyterLab saves every open notebook; 0 for no signal.",
    ).tag(config=True)

    running_timeout = Float(
        help="Seconds JupyterLab may take to answer once its job runs. Time waiting in the queue does not "
        "count: JupyterHub's start_timeout is set to cover the queue, so a pending job is never cancelled "
        "just for waiting.",
    ).tag(config=True)

    services = AnyTrait(
        help="The hub's spawners.services.Services (SLURM client, job watcher, discovery, audit log), "
        "built once by hub.configure and shared by every spawner.",
    ).tag(config=True)

    @default("services")
    def _no_services(self) -> Services:
        raise RuntimeError("WorkbenchSpawner needs the hub's services: the hub is configured by hub.configure")

    @default("req_homedir")
    def _default_homedir(self) -> str:
        return pwd.getpwnam(self.user.name).pw_dir

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.progress_message = ""
        self.last_end = ""  # shown on the user's home page once a running server's job has ended
        self.last_log = ""  # and where that job's log is
        self.stop_note = ""  # who stopped it, and why, when not its owner (the operator page)
        self.log_path = ""
        self.submitted_at = 0.0
        self.request: JobRequest | None = None  # set from user_options once they passed every check
        self.queue_status: dict[str, Any] = {}  # the job as the progress page shows it
        self.started = False  # JupyterLab answered (kept across hub restarts)
        self.cert_pems: dict[str, str] = {}  # internal_ssl: PEM text for the job script
        self._ending: asyncio.Future[int] | None = None  # the one clean-up of a job that has ended
        self.token_sha256 = ""  # the job's API token, hashed: after a restart the hub has no plain copy
        self._waiting_for_port = False
        self.accepted_options: dict[str, Any] = {}  # the last options that passed every check

    @property
    def slurm(self):
        return self.services.slurm

    @property
    def watcher(self):
        return self.services.watcher

    @property
    def discovery(self):
        return self.services.discovery

    # -- settings, checked when the hub starts -------------------------------------
    @classmethod
    def config_problems(cls, config: Config) -> list[str]:
        """What is wrong with this spawner's settings in ``config``: a refused setting, or a
        job default or name that breaks its rule.  Empty: the hub may start."""
        found = []
        sections = [k.__name__ for k in cls.__mro__ if isinstance(k, type) and issubclass(k, Configurable)]
        for section in sections:
            for key in config.get(section, ()):
                if key in REFUSED_SETTINGS:
                    found.append(f"c.{section}.{key} cannot be honoured: {REFUSED_SETTINGS[key]}")
        try:
            probe = cls(config=config)
        except TraitError as e:
            return [*found, f"the spawner's settings have a value of the wrong type: {e}"]
        defaults = {name: getattr(probe, trait) for name, trait in JOB_SETTING_TRAITS.items()}
        for name, value, accepted in problems(defaults):
            found.append(f"c.{cls.__name__}.{JOB_SETTING_TRAITS[name]}: value {value!r} is not accepted; {accepted}")
        if not JOB_NAME.check(probe.job_name):
            found.append(f"c.{cls.__name__}.job_name: value {probe.job_name!r} is not accepted; {JOB_NAME.accepted}")
        for name in [*probe.environment, *probe.env_keep]:
            if not any(fnmatch.fnmatchcase(name, kept) for kept in JOB_ENVIRONMENT):
                found.append(
                    f"c.{cls.__name__}.environment / env_keep: {name!r} cannot reach the job; sudo passes only "
                    f"{', '.join(JOB_ENVIRONMENT)} (job/__init__.py)"
                )
        if not probe.singleuser_venv.startswith("/"):
            found.append(f"c.{cls.__name__}.singleuser_venv: value {probe.singleuser_venv!r} is not an absolute path")
        return found

    def job_defaults(self) -> JobSettings:
        """The site's job defaults, typed (checked when the hub started: config_problems); a
        workshop seat's are its workshop's preset, which names the reservation and account."""
        site = JobSettings(**{name: getattr(self, trait) for name, trait in JOB_SETTING_TRAITS.items()})
        seat = self.workshop()
        return replace(site, **{k: v for k, v in seat.preset.items() if k in PRESET_KEYS}) if seat else site

    def workshop(self) -> Workshop | None:
        """The workshop whose seat this user is (``aifactory-workshop create``), if any."""
        registry = self.services.workshops
        return registry.seat_of(self.user.name) if registry is not None else None

    def own_presets(self) -> list[dict[str, Any]]:
        seat = self.workshop()
        return [seat.preset] if seat else []

    def steps_before_jupyterlab(self) -> list[list[str]]:
        """What the job does before JupyterLab starts: on a first start the site's example
        notebooks are copied into ~/examples (job/examples.py); a seat pulls its workshop's materials
        into ~/<workshop> (nbgitpuller merges: what the student changed is never overwritten);
        a launch from the gallery copies the entry's notebook into ~/gallery."""
        steps = [[os.path.join(self.singleuser_venv, "bin", EXAMPLES_COMMAND), self.examples_dir]]
        seat = self.workshop()
        if seat is not None and seat.materials is not None:
            m = seat.materials
            folder = os.path.join(self.req_homedir, m.folder)
            steps.append([os.path.join(self.singleuser_venv, "bin", "gitpuller"), m.repo, m.branch, folder])
        if self.gallery_entry is not None and self.services.gallery is not None:
            steps.append(copy_command(self.services.gallery, self.gallery_entry, self.req_homedir))
        return steps

    # -- what the job is -------------------------------------------------------------
    def job_request(self) -> JobRequest:
        """The checked request (apply_user_options ran), or the defaults with the options applied."""
        if self.request is not None:
            return self.request
        try:
            return self.request_for(self.user_options or {})
        except OptionError as e:
            raise options_refused(e) from e

    def request_for(self, options: dict[str, Any]) -> JobRequest:
        """The site's defaults with a user's options applied (their types and rules checked)."""
        return JobRequest.build(self.user.name, self.req_homedir, self.job_name, self.job_defaults(), options)

    @property
    def examples_dir(self) -> str:
        """The site's example notebooks, installed with the users' environment (make install)."""
        return os.path.join(self.singleuser_venv, "share", "aifactory", "examples")

    def job_command(self) -> list[str]:
        bindir = os.path.join(self.singleuser_venv, "bin")
        return [os.path.join(bindir, LAUNCHER), os.path.join(bindir, "jupyterhub-singleuser"), *self.get_args()]

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.setdefault("LANG", "C.UTF-8")
        env.update(DASHBOARD_LINK_ENV)
        env["PATH"] = os.pathsep.join([os.path.join(self.singleuser_venv, "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def batch_script_for(self, request: JobRequest, env: dict[str, str]) -> str:
        times = SessionTimes(tuple(self.warn_minutes), self.save_before_end)
        return render(
            request,
            self.job_command(),
            export=env.keys(),
            certs=self.cert_pems,
            before=self.steps_before_jupyterlab(),
            times=times,
        )

    # -- internal_ssl: certificates travel inside the batch script -------------------
    async def create_certs(self) -> dict[str, str]:
        """The server's certificate names the nodes of the job's partition, since SLURM picks
        the node later (a server on gpp cannot pass for one on an acc node), and, with per-user
        origins, the user's own host name: the proxy checks it on every request, so it forwards
        alice.hub.example.eu to no server but alice's."""
        partition = self.job_request().settings.partition
        names = [alt_name(n) for n in await self.discovery.node_names(partition)]
        if getattr(self.user, "settings", {}).get("subdomain_host"):
            names.append(f"DNS:{self.user.domain}")
        self.ssl_alt_names = names
        return await super().create_certs()

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """internal_ssl: the hub's own client certificate, trusting only the hub's CAs; the
        name is checked by the certificate's subject (the hub reaches nodes by address)."""
        settings = getattr(self.user, "settings", {})
        if not self.internal_ssl or not settings.get("internal_ssl_cert"):
            return None
        context = make_ssl_context(
            settings["internal_ssl_key"], settings["internal_ssl_cert"], cafile=settings["internal_ssl_ca"]
        )
        context.check_hostname = False
        return context

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Read the PEMs for the job script; the hub keeps no copy of the server's key."""
        self.cert_pems = {name: Path(paths[name]).read_text() for name in CERT_FILES}
        Path(paths["keyfile"]).unlink(missing_ok=True)
        # Where the job writes them (the script exports the real paths; these are for the record).
        return {name: f"$AIFW_PRIVATE/certs/{name}.pem" for name in CERT_FILES}

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        """Submit the job, then follow it until JupyterLab answers; a refusal or an end of the
        job before that is a SpawnException whose message names the reason."""
        self.port = 0
        self.last_end = self.stop_note = ""
        self.ip = "0.0.0.0"  # JupyterLab listens on the node's interfaces; the hub learns the node
        request = self.job_request()
        self.log_path = request.log_path
        if self.gallery_entry is not None:  # JupyterLab opens the launched notebook's copy
            self.default_url = f"/lab/tree/{HOME_FOLDER}/{self.gallery_entry.copy_name}"
        env = self.get_env()
        script = self.batch_script_for(request, env)
        self.progress_message = f"Submitting JupyterLab to partition {request.settings.partition}"
        # A job may start, and report its port, before sbatch has even exited on a busy hub.
        self._waiting_for_port = True
        try:
            self.job_id = await self.slurm.submit(script, user=self.user.name, env=env)
        except SlurmUnavailable as e:
            self._waiting_for_port = False
            raise scheduler_unavailable(e) from e
        except SlurmError as e:
            self._waiting_for_port = False
            raise spawn_exception(f"SLURM refused the JupyterLab job: {e}", reason="slurm_refused") from e
        self.submitted_at = time.time()
        self.token_sha256 = hashlib.sha256((self.api_token or "").encode()).hexdigest()
        self.save_state()
        s = request.settings
        self.audit_event(
            "spawn",
            actor=self.requested_by(),
            job_id=self.job_id,
            partition=s.partition,
            account=s.account or "(default)",
            qos=s.qos,
            cpus=s.cpus,
            memory=s.memory,
            walltime=s.walltime,
        )
        self.watcher.watch(self.job_id, self, closely=True)
        self.log.info("JupyterLab for %s submitted as SLURM job %s", self.user.name, self.job_id)
        info = await self.follow_until_ready()
        self.progress_message = f"JupyterLab (job {self.job_id}) is starting on {info.node}"
        return self.ip, self.port

    async def follow_until_ready(self) -> JobInfo:
        """Follow the job closely until JupyterLab answers; then the server is started
        (saved, so that a hub restart keeps it).  Shared by start() and resume_start()."""
        self.watcher.follow_closely(self.job_id)
        try:
            info = await self.wait_until_answering()
        finally:
            self.watcher.follow_closely(self.job_id, False)
        self.ip = await self.slurm.node_address(info.node)
        self.started = True
        self.save_state()
        return info

    def job_state(self) -> JobState:
        """What the hub keeps of this server across its restarts (one versioned record)."""
        return JobState(
            job_id=self.job_id,
            job_status=self.job_status,
            submitted_at=self.submitted_at,
            started=self.started,
            token_sha256=self.token_sha256,
            port=self.port,
            ip=self.ip,
            log_path=self.log_path,
            last_end=self.last_end,
            last_log=self.last_log,
            accepted_options=self.accepted_options,
        )

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), **self.job_state().as_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        """After a hub restart: follow the jobs that the database remembers (any state version)."""
        super().load_state(state)
        record = JobState.from_state(state)
        self.submitted_at, self.started, self.token_sha256 = record.submitted_at, record.started, record.token_sha256
        self.log_path, self.last_end, self.last_log = record.log_path, record.last_end, record.last_log
        self.port = record.port or self.port
        self.ip = record.ip or self.ip
        self.accepted_options = dict(record.accepted_options)
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

    def audit_event(self, event: str, **fields: Any) -> None:
        """Append ``event`` about this server to the hub's audit log."""
        if self.services.audit is not None:
            self.services.audit.record(event, user=self.user.name, server=self.name or "(default)", **fields)

    def requested_by(self) -> str:
        """Who asked for this start: the user, an admin or a service (JupyterHub passes the request)."""
        actor = getattr(getattr(self, "handler", None), "current_user", None)
        return getattr(actor, "name", "") or self.user.name

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
        self.watcher.refresh_soon()
        return True

    async def wait_until_answering(self) -> JobInfo:
        """Follow the job until it runs and JupyterLab answers; fail as soon as it ends, or if it
        runs but JupyterLab does not answer within ``running_timeout`` (queue time is free)."""
        self._waiting_for_port = True
        running_since = 0.0
        try:
            while True:
                snapshot = await self.watcher.next_snapshot(timeout=2 * self.startup_poll_interval)
                if snapshot.error:
                    # Says nothing about the job: keep waiting, as the job does.
                    self.progress_message = f"The scheduler is not answering ({snapshot.error}); job kept"
                    continue
                seen, info = snapshot.seen(self.job_id, self.submitted_at, self.user.name)
                if seen is Seen.GONE:
                    raise spawn_exception(
                        f"JupyterLab job {self.job_id} ended before JupyterLab started: "
                        f"{await self.why_job_ended()}. Its log is {self.job_log()}.",
                        reason="job_ended",
                    )
                if info is None:
                    continue
                if info.is_running:
                    running_since = running_since or time.monotonic()
                    if await self.jupyterlab_answers(info):
                        return info
                    self.check_running_timeout(info, running_since)
                self.update_queue_status(info, snapshot.positions.get(info.job_id, ""))
                self.progress_message = self.progress_text(info)
        finally:
            self._waiting_for_port = False

    def job_log(self) -> str:
        return self.log_path.replace("%j", self.job_id)

    async def jupyterlab_answers(self, info: JobInfo) -> bool:
        """Whether JupyterLab answers on the reported port; with internal_ssl, only if its
        certificate is this user's (a server of anyone else there is refused, never routed)."""
        if not self.port:
            return False
        host = await self.slurm.node_address(info.node)
        context = self.server_ssl_context()
        if context is None:
            return await serving(host, self.port)
        identity = await server_identity(host, self.port, context)
        if identity is None:
            return False
        if identity != f"user-{self.user.name}":
            self.audit_event("impostor", job_id=self.job_id, node=info.node, port=self.port, certificate=identity)
            raise spawn_exception(
                f"The server answering on port {self.port} of {info.node} is not yours (its certificate is "
                f"{identity!r}); the hub did not connect you to it, and job {self.job_id} was cancelled.",
                reason="not_yours",
            )
        return True

    def check_running_timeout(self, info: JobInfo, running_since: float) -> None:
        if time.monotonic() - running_since > self.running_timeout:
            raise spawn_exception(
                f"JupyterLab did not answer within {self.running_timeout:.0f}s of job {self.job_id} starting "
                f"on {info.node}; it was cancelled. Its log is {self.job_log()}.",
                reason="start_timeout",
            )

    def update_queue_status(self, info: JobInfo, position: str) -> None:
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

    def progress_text(self, info: JobInfo) -> str:
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
            return f"Job {info.job_id} is running on {info.node}; JupyterLab is starting"
        return f"Job {info.job_id} is running on {info.node}; starting JupyterLab"

    # -- the end of a job: why, then forget it -----------------------------------------
    async def why_job_ended(self) -> str:
        """How the job ended, in words, from accounting."""
        record = await self.ended_record(self.job_id)
        return describe_end(record) if record is not None else "it left the queue"

    async def ended_record(self, job_id: str) -> JobRecord | None:
        """Accounting's record of an ended job (accounting may lag the controller a moment)."""
        for _ in range(10):
            try:
                record = await self.slurm.accounting(job_id)
            except SlurmError as e:
                self.log.warning("sacct for job %s failed: %s", job_id, e)
                record = None
            if record is not None and record.ended:
                return record
            await asyncio.sleep(0.5)
        return None

    async def forget_ended_job(self, reason: str | None = None) -> int:
        """The job has ended (walltime, scancel, out of memory, node failure, preemption): say why
        on the user's next page, audit it, end its shares, cancel its Dask workers and forget it.
        Returns poll()'s "not running" status."""
        reason = reason or await self.why_job_ended()
        self.log.info("Job %s of %s has ended: %s", self.job_id, self.user.name, reason)
        self.last_end = f"Your JupyterLab job {self.job_id} has ended: {reason}."
        self.last_log = self.job_log()
        self.audit_event("job_end", job_id=self.job_id, reason=reason)
        self.end_shares()  # the next session is not shared, whoever ended this one
        await self.cancel_workers(self.job_id)
        self.clear_state()
        return 1

    async def poll(self) -> int | None:
        """Read the shared snapshot: no scheduler call of its own."""
        if not self.job_id:
            return 0
        if check_pending(self) and not self.started:
            return await self.resume_start()
        snapshot = await self.watcher.current(max_age=self.poll_interval)
        seen, _ = snapshot.seen(self.job_id, self.submitted_at, self.user.name)
        if seen is not Seen.GONE:
            # In the queue, or not known yet; an unreachable scheduler says nothing about the job.
            return None
        # The watcher's notice and JupyterHub's own poll may both get here: end the job once.
        if self._ending is None:
            self._ending = asyncio.ensure_future(self.forget_ended_job())
        return await asyncio.shield(self._ending)

    async def resume_start(self) -> int | None:
        """The hub restarted while this job was queued or starting: follow it again.

        JupyterHub checks every server at start-up and stops those whose ``poll()`` says
        "not running" or that do not answer at once; either would cancel a queued job.  So
        this check waits until JupyterLab answers (``init_spawners_timeout`` lets the hub
        serve meanwhile), then the server goes on as if the hub had never stopped.
        """
        self.log.info("Job %s of %s was starting when the hub stopped: following it again", self.job_id, self.user.name)
        try:
            await self.follow_until_ready()
        except SpawnException as e:
            # JupyterLab never answered (or the job ended): a job the hub forgets keeps no allocation.
            await self.cancel_forgotten(self.job_id)
            return await self.forget_ended_job(e.message.rstrip("."))
        asyncio.ensure_future(self.route_when_checked())
        return None

    async def get_url(self) -> str:
        """Where JupyterLab is, for JupyterHub's check after a restart (the database may hold port 0)."""
        if self.started and self.ip and self.port and self.server is not None:
            return f"http://{self.ip}:{self.port}{self.server.base_url}"
        return await super().get_url()

    async def route_when_checked(self) -> None:
        """A server resumed after a restart joins the proxy once JupyterHub's check has passed."""
        while check_pending(self):
            await asyncio.sleep(0.5)
        if self.ready:
            await add_route_for(self)

    async def cancel_forgotten(self, job_id: str) -> None:
        """A job the hub forgets while it may still run must not keep its allocation (scancel of
        an ended job is fine; a job of that id but another user is not cancelled: sudo refuses)."""
        try:
            await self.slurm.cancel(job_id, user=self.user.name)
        except SlurmError as e:
            self.log.warning("Could not cancel job %s of %s: %s", job_id, self.user.name, e)

    async def cancel_workers(self, job_id: str) -> None:
        """Dask worker jobs that this server started do not outlive it."""
        try:
            await self.slurm.cancel_named(worker_job_name(job_id), user=self.user.name)
        except SlurmError as e:
            self.log.warning("Could not cancel Dask workers of job %s: %s", job_id, e)

    async def stop(self, now: bool = False) -> None:
        self.end_shares()
        if not self.job_id:
            return
        self.log.info("Cancelling job %s of %s and its Dask workers", self.job_id, self.user.name)
        self.audit_event("stop", job_id=self.job_id, by=self.requested_by())
        await self.slurm.cancel(self.job_id, user=self.user.name)
        await self.cancel_workers(self.job_id)
        if now:
            return
        job_id = self.job_id
        self.watcher.follow_closely(job_id)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                snapshot = await self.watcher.next_snapshot(timeout=2 * self.startup_poll_interval)
                if snapshot.seen(job_id, self.submitted_at, self.user.name)[0] is Seen.GONE:
                    # The user's next page says what happened to the job and what it cost.
                    stopped = session.stopped_text(job_id, await self.ended_record(job_id))
                    self.last_end = f"{stopped} {self.stop_note}" if self.stop_note else stopped
                    self.last_log = self.job_log()
                    return
            self.log.warning("Job %s of %s still in the queue 30s after scancel", job_id, self.user.name)
        finally:
            self.watcher.follow_closely(job_id, False)

    def end_shares(self) -> int:
        """Shares end with the server: whoever it was shared with (by name or by a share code)
        loses access as it stops, and a later server is shared anew.  Returns how many ended."""
        orm = getattr(self, "orm_spawner", None)
        if orm is None or self.db is None:
            return 0
        shares = [*orm.shares, *orm.share_codes]
        for share in shares:
            self.db.delete(share)
        if shares:
            self.db.commit()
            self.audit_event("shares_ended", count=len(shares))
        return len(shares)

    def progress_percent(self) -> int:
        """How far the start has come: submitted, queued, running, JupyterLab starting, answering
        (JupyterHub adds 100 when it routes the browser to JupyterLab)."""
        state = self.queue_status.get("state", "")
        if not self.job_id:
            return 5
        if self.started:
            return 95
        if self.port:
            return 75
        if state in RUNNING_STATES:
            return 50
        return 25 if state else 10

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        shown = ("", 0)
        while True:
            now = (self.progress_message, self.progress_percent())
            if self.progress_message and now != shown:
                shown = now
                yield {"message": now[0], "progress": now[1], "job": dict(self.queue_status)}
            await asyncio.sleep(0.5)

    # -- the home page -----------------------------------------------------------------
    def last_log_shown(self) -> str:
        """The last ended job's log, ``~``-relative, for the home page."""
        return session.home_relative(self.last_log, self.req_homedir)

    def session_card(self) -> dict[str, Any] | None:
        """This server's job as the home page shows it (None when there is none), from the
        watcher's last query: no scheduler call."""
        if not self.job_id:
            return None
        snapshot = self.watcher.snapshot
        _, info = snapshot.seen(self.job_id, self.submitted_at, self.user.name)
        return session.card(
            info,
            job_id=self.job_id,
            position=snapshot.positions.get(self.job_id, ""),
            ready=bool(self.ready),
            stopping=self.pending == "stop",
            taken_at=snapshot.taken_at,
            now=time.time(),
            log=self.job_log(),
            home=self.req_homedir,
        )
