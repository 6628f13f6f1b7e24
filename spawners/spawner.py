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
from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Integer, List, TraitError, Unicode, default, observe
from traitlets.config import Config, Configurable

from aifactory_workbench.job import EXAMPLES_COMMAND, JOB_ENVIRONMENT, LAUNCHER
from aifactory_workbench.slurm.client import EXTEND_HELPER, LIBEXEC, Slurm
from aifactory_workbench.slurm.job_fields import BY_NAME, JOB_FIELDS, JobSettings, problems
from aifactory_workbench.slurm.values import JOB_NAME, SiteHooks
from aifactory_workbench.spawners import session
from aifactory_workbench.spawners.discovery import Discovery
from aifactory_workbench.spawners.form import PRESET_KEYS
from aifactory_workbench.spawners.gallery import HOME_FOLDER, launch_steps
from aifactory_workbench.spawners.job_engine import JobEngine, StartFailed, Timing
from aifactory_workbench.spawners.job_state import JobState
from aifactory_workbench.spawners.jobscript import (
    CERT_FILES,
    JobRequest,
    OptionError,
    SessionTimes,
    package_index_problems,
    render,
)
from aifactory_workbench.spawners.jupyterhub_compat import add_route_for, check_pending, stop_through_hub
from aifactory_workbench.spawners.messages import (
    NOT_QUEUED,
    OTHER_NOTEBOOK,
    OTHER_PARTITION,
    options_refused,
    spawn_exception,
)
from aifactory_workbench.spawners.options import UserOptionsMixin
from aifactory_workbench.spawners.seats import Workshop
from aifactory_workbench.spawners.server_certs import hub_client_context, server_pems
from aifactory_workbench.spawners.services import Services
from aifactory_workbench.spawners.watcher import JobWatcher

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
    "req_prologue": "no free shell text goes into the batch script; the site's commands before JupyterLab "
    "are the site file's singleuser.prologue",
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
    "port": "JupyterLab takes a free port on its node and reports it to the hub; a range for firewalls is "
    "the site file's singleuser.port_range",
    "cmd": "the job runs jupyterhub-singleuser from singleuser_venv",
    "mem_limit": "memory is a SLURM request: use req_memory (site file: slurm.memory)",
    "cpu_limit": "cores are a SLURM request: use req_nprocs (site file: slurm.cpus)",
    "mem_guarantee": "memory is a SLURM request: use req_memory (site file: slurm.memory)",
    "cpu_guarantee": "cores are a SLURM request: use req_nprocs (site file: slurm.cpus)",
}

#: Seconds after a start was cancelled (and its spawn ended) for JupyterHub's own stop to clear
#: the server, before :meth:`WorkbenchSpawner.settle_cancelled_start` does (JupyterHub waits 1 s).
CANCELLED_START_GRACE = 3.0

#: Set in the environment of hub-spawned servers only (elsewhere the variable is missing):
#: the Dask dashboard opens through the hub, at the user's own URL (lab/dashboard_proxy.py; a
#: scheduler's dashboard "port" is its name there, lab/dashboard.py).
DASHBOARD_LINK_ENV = {"DASK_DISTRIBUTED__DASHBOARD__LINK": "{JUPYTERHUB_SERVICE_PREFIX}aifactory/dask/{port}/status"}


def recorded(name: str, help: str) -> property:
    """A field of the job engine's record (spawners.job_state.JobState), under the name that
    JupyterHub, batchspawner and the hub's pages use: one home for each fact."""
    return property(
        lambda self: getattr(self.engine.record, name),
        lambda self, value: self.engine.update(**{name: value}),
        doc=help,
    )


def engine_attribute(name: str, help: str) -> property:
    """One of the job engine's own attributes, seen from the spawner."""
    return property(
        lambda self: getattr(self.engine, name), lambda self, value: setattr(self.engine, name, value), doc=help
    )


class Count(Integer[int, int | str]):
    """A whole number that may also be written as a string of digits, as batchspawner's
    ``req_nprocs = "4"`` is."""

    def validate(self, obj: Any, value: Any) -> int:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        valid: int = super().validate(obj, value)
        return valid


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
        subject: dict[str, str] = dict(pair[0] for pair in writer.get_extra_info("peercert")["subject"])
    finally:
        writer.close()
    return subject.get("commonName", "")


def alt_name(host: str) -> str:
    """A certificate's subject alternative name for a host name or an IP address."""
    try:
        return f"IP:{ipaddress.ip_address(host)}"
    except ValueError:
        return f"DNS:{host}"


def setting_help(name: str) -> str:
    """A job setting's help, from its row of the table."""
    return f"{BY_NAME[name].help} Site file: slurm.{name}."


class JobFieldSettings(Configurable):
    """The spawner's setting for each job setting (batchspawner's ``req_*`` where it has one, ours
    where it has none): a whole number (:class:`Count`) for an int row, text for a str row, and
    explained by the table's row. Written out for the type checker; the table names them
    (``JobField.trait``): ``tests/unit/test_settings_classes.py`` fails when they differ."""

    req_partition = Unicode(help=setting_help("partition")).tag(config=True)
    req_account = Unicode(help=setting_help("account")).tag(config=True)
    req_qos = Unicode(help=setting_help("qos")).tag(config=True)
    req_nprocs = Count(help=setting_help("cpus")).tag(config=True)
    req_memory = Unicode(help=setting_help("memory")).tag(config=True)
    req_ngpus = Count(help=setting_help("gpus")).tag(config=True)
    req_runtime = Unicode(help=setting_help("walltime")).tag(config=True)
    req_reservation = Unicode(help=setting_help("reservation")).tag(config=True)
    req_constraint = Unicode(help=setting_help("constraint")).tag(config=True)


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

    extend_minutes = Integer(
        0,
        help="Minutes JupyterLab's and the home page's Extend button adds to a running session's walltime "
        "(the site file's singleuser.extend step); 0: not offered. The root-owned helper checks every limit.",
    ).tag(config=True)

    extend_helper = Unicode(
        str(LIBEXEC / EXTEND_HELPER),
        help="The root-owned helper that extends a running job, run with sudo (`aifactory-site install` "
        "puts it in PREFIX/libexec, beside the hub's venv, naming the site file it reads).",
    ).tag(config=True)

    prologue = List(
        Unicode(),
        help="The site's commands run before JupyterLab in every job (site file: singleuser.prologue), "
        "each one simple command of plain words (spawners.jobscript.SiteHooks).",
    ).tag(config=True)

    lmod_init = Unicode(
        "",
        help="Lmod's set-up file on the nodes (site file: singleuser.lmod_init): sourced before a module "
        "command of the prologue, and by kernels that load modules; empty: no Lmod.",
    ).tag(config=True)

    port_range = List(
        Integer(),
        help="[LOW, HIGH]: the ports JupyterLab may listen on (site file: singleuser.port_range); empty: any.",
    ).tag(config=True)

    package_index = List(
        Unicode(),
        help="The site's package index as uv's options (site file: environments), such as ['--index-url', "
        "'https://pypi.example.eu/simple'] or ['--no-index', '--find-links', '/srv/aifactory/wheels']: every job "
        "exports them as AIFACTORY_PACKAGE_INDEX, from which aifactory-env create installs; empty: uv's default.",
    ).tag(config=True)

    notebook_job = Dict(
        default_value=None,
        allow_none=True,
        help="The site's notebook-job preset (site file: form.notebook_job), such as {'partition': 'gpp', "
        "'cpus': 1, 'memory': '2G', 'walltime': '00:30:00'}: every job exports it as AIFACTORY_NOTEBOOK_JOB, and "
        "notebook jobs started in the session (aifactory-run-notebook, Run as batch job) ask for it unless told "
        "otherwise; None: the product's.",
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
        self._engine: JobEngine | None = None
        self._settling: asyncio.Future[None] | None = None  # settle_cancelled_start, while it runs
        super().__init__(**kwargs)
        self.request: JobRequest | None = None  # set from user_options once they passed every check
        self.cert_pems: dict[str, str] = {}  # internal_ssl: PEM text for the job script

    # -- the job: its engine, and its record seen as JupyterHub and batchspawner name it ---
    @property
    def engine(self) -> JobEngine:
        """This server's job (built on first use: the hub's services are set by then)."""
        if self._engine is None:
            self._engine = JobEngine(
                self.services.slurm,
                self.services.watcher,
                self,
                owner=self.user.name,
                timing=self.timing(),
                log=self.log,
            )
        return self._engine

    def timing(self) -> Timing:
        return Timing(self.poll_interval, self.startup_poll_interval, self.running_timeout)

    @observe("poll_interval", "startup_poll_interval", "running_timeout")
    def _timing_changed(self, change: Any) -> None:
        if self._engine is not None:
            self._engine.timing = self.timing()

    job_id = recorded("job_id", "The SLURM job id (batchspawner's name).")
    job_status = recorded("job_status", "batchspawner's own key, kept as it was stored.")
    port = recorded("port", "The port JupyterLab reported from its node (0 until then).")
    submitted_at = recorded("submitted_at", "The hub's clock at sbatch.")
    started = recorded("started", "JupyterLab answered (kept across hub restarts).")
    token_sha256 = recorded("token_sha256", "The job's API token, hashed: after a restart the hub has no plain copy.")
    log_path = recorded("log_path", "The job's log (%j: its id).")
    last_end = recorded("last_end", "Shown on the user's home page once a running server's job has ended.")
    last_log = recorded("last_log", "And where that job's log is.")
    accepted_options = recorded("accepted_options", "The last options that passed every check.")
    stop_note = engine_attribute("stop_note", "Who stopped it, and why, when not its owner (the operator page).")
    progress_message = engine_attribute("progress_message", "The start's last step, for the progress page.")
    queue_status = engine_attribute("queue_status", "The job as the progress page shows it.")

    @property
    def ip(self) -> str:
        """The node's address once the job runs; before that JupyterLab listens on every interface."""
        return self.engine.record.ip or "0.0.0.0"

    @ip.setter
    def ip(self, value: str) -> None:
        self.engine.update(ip="" if value == "0.0.0.0" else value)

    @property
    def slurm(self) -> Slurm:
        services: Services = self.services
        return services.slurm

    @property
    def watcher(self) -> JobWatcher:
        services: Services = self.services
        return services.watcher

    @property
    def discovery(self) -> Discovery:
        services: Services = self.services
        return services.discovery

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
        for name, value, accepted in probe.site_hooks().problems() + package_index_problems(probe.package_index):
            found.append(f"c.{cls.__name__}.{name}: value {value!r} is not accepted; accepted: {accepted}")
        if not probe.singleuser_venv.startswith("/"):
            found.append(f"c.{cls.__name__}.singleuser_venv: value {probe.singleuser_venv!r} is not an absolute path")
        return found

    def job_defaults(self) -> JobSettings:
        """The site's job defaults, typed (checked when the hub started: config_problems); a
        workshop seat's are its workshop's preset, which names the reservation and account."""
        site = JobSettings(**{name: getattr(self, trait) for name, trait in JOB_SETTING_TRAITS.items()})
        seat = self.workshop()
        return replace(site, **{k: v for k, v in seat.seat_preset().items() if k in PRESET_KEYS}) if seat else site

    def workshop(self) -> Workshop | None:
        """The workshop whose seat this user is (``aifactory-workshop create``), if any."""
        registry = self.services.workshops
        return registry.seat_of(self.user.name) if registry is not None else None

    def own_presets(self) -> list[dict[str, Any]]:
        seat = self.workshop()
        return [seat.seat_preset()] if seat else []

    def steps_before_jupyterlab(self) -> list[list[str]]:
        """What the job does before JupyterLab starts: on a first start the site's example
        notebooks are copied into ~/examples (job/examples.py); a seat pulls its workshop's materials
        into ~/<workshop> (nbgitpuller merges: what the student changed is never overwritten);
        a launch from the gallery builds the entry's environment once (if it names one) and copies
        the entry's notebook into ~/gallery."""
        steps = [[os.path.join(self.singleuser_venv, "bin", EXAMPLES_COMMAND), self.examples_dir]]
        seat = self.workshop()
        if seat is not None and seat.materials is not None:
            m = seat.materials
            folder = os.path.join(self.req_homedir, m.folder)
            steps.append([os.path.join(self.singleuser_venv, "bin", "gitpuller"), m.repo, m.branch, folder])
        if self.gallery_entry is not None and self.services.gallery is not None:
            steps += launch_steps(self.services.gallery, self.gallery_entry, self.req_homedir, self.singleuser_venv)
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
        env: dict[str, str] = super().get_env()
        env.setdefault("LANG", "C.UTF-8")
        env.update(DASHBOARD_LINK_ENV)
        env["PATH"] = os.pathsep.join([os.path.join(self.singleuser_venv, "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def site_hooks(self) -> SiteHooks:
        """The site's commands, Lmod and ports for every job: the site's settings alone."""
        ports = self.port_range
        return SiteHooks(tuple(self.prologue), self.lmod_init, tuple(ports) if ports else None)

    def batch_script_for(self, request: JobRequest, env: dict[str, str]) -> str:
        times = SessionTimes(tuple(self.warn_minutes), self.save_before_end, self.extend_minutes)
        return render(
            request,
            self.job_command(),
            export=env.keys(),
            certs=self.cert_pems,
            before=self.steps_before_jupyterlab(),
            times=times,
            site=self.site_hooks(),
            package_index=self.package_index,
            gallery_dir=str(self.services.gallery.directory) if self.services.gallery is not None else "",
            notebook_job=self.notebook_job,
        )

    # -- internal_ssl: certificates travel inside the batch script -------------------
    async def create_certs(self) -> dict[str, str]:
        """The server's certificate names the nodes of the job's partition, since SLURM picks
        the node later (a server on gpp cannot pass for one on an acc node), and, with per-user
        origins, the user's own host name: the proxy checks it on every request, so it forwards
        alice.hub.example.eu to no server but alice's. Made in memory, off the event loop
        (spawners/server_certs.py): the PEMs are kept for the job script, no file is written."""
        partition = self.job_request().settings.partition
        names = [alt_name(n) for n in await self.discovery.node_names(partition)]
        if getattr(self.user, "settings", {}).get("subdomain_host"):
            names.append(f"DNS:{self.user.domain}")
        self.ssl_alt_names = names
        if self.ssl_alt_names_include_local:  # JupyterHub's default names, as its own certificates have
            names = ["DNS:localhost", "IP:127.0.0.1", *names]
        ca = "notebooks-ca"
        pems = await server_pems(
            Path(self.internal_certs_location, ca),
            Path(self.internal_trust_bundles[ca]),
            f"user-{self.user.name}",
            names,
        )
        self.cert_pems = pems.as_dict()
        # Where the job writes them (the script exports the real paths; these are for the record).
        return {name: f"$AIFW_PRIVATE/certs/{name}.pem" for name in CERT_FILES}

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """internal_ssl: the hub's own client certificate, trusting only the hub's CAs; the
        name is checked by the certificate's subject (the hub reaches nodes by address)."""
        settings = getattr(self.user, "settings", {})
        if not self.internal_ssl or not settings.get("internal_ssl_cert"):
            return None
        key, cert, cas = (settings[f"internal_ssl_{k}"] for k in ("key", "cert", "ca"))
        return hub_client_context(key, cert, cas)

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Nothing to move: :meth:`create_certs` kept the PEMs for the job script, and the hub
        keeps no copy of the server's key."""
        return paths

    # -- lifecycle: JupyterHub's calls, handed to the job engine -------------------------
    async def start(self) -> tuple[str, int]:
        """Submit the job, then follow it until JupyterLab answers; a refusal or an end of the
        job before that is a SpawnException whose message names the reason."""
        request = self.job_request()
        self.engine.begin(log_path=request.log_path)
        if self.gallery_entry is not None:  # JupyterLab opens the launched notebook's copy
            self.default_url = f"/lab/tree/{HOME_FOLDER}/{self.gallery_entry.copy_name}"
        env = self.get_env()
        script = self.batch_script_for(request, env)
        self.progress_message = f"Submitting JupyterLab to partition {request.settings.partition}"
        try:
            info = await self.engine.start(script, env, token=self.api_token or "", **self.audit_fields(request))
        except StartFailed as e:
            raise spawn_exception(e.message, reason=e.reason, status_code=e.status_code) from e
        except asyncio.CancelledError:  # a stop interrupted the start (JupyterHub cancels its spawn)
            self._settling = asyncio.ensure_future(self.settle_cancelled_start(self.engine.starts))
            raise
        self.progress_message = f"JupyterLab (job {self.job_id}) is starting on {info.node}"
        return self.ip, self.port

    def audit_fields(self, request: JobRequest) -> dict[str, Any]:
        """What the audit log says of a request (a spawn's or a replacement's), and who made it."""
        s = request.settings
        return {
            "actor": self.requested_by(),
            "partition": s.partition,
            "account": s.account or "(default)",
            "qos": s.qos,
            "cpus": s.cpus,
            "memory": s.memory,
            "walltime": s.walltime,
        }

    def is_queued(self) -> bool:
        """A start is in progress and its job waits in the queue."""
        return self.pending == "spawn" and self.engine.queue_status.get("state") == "PENDING"

    async def queued_alternatives(self) -> list[dict[str, Any]]:
        """While the job waits: the estimate's alternatives to its request ([] when none waits)."""
        return list((await self.queued_estimate())["alternatives"])

    async def queued_estimate(self) -> dict[str, Any]:
        """While the job waits: the estimate's ``alternatives`` to its request and ``holds_text``,
        what holds it (``[]`` and ``""`` when no job waits)."""
        if not self.is_queued():
            return {"alternatives": [], "holds_text": ""}
        answer = await self.estimate(self.accepted_options)
        return {"alternatives": list(answer["alternatives"]), "holds_text": str(answer["holds_text"])}

    async def replace_queued(self, user_options: Any) -> str:
        """Start sooner with other options while the job waits: checked as a spawn's, then the
        engine submits the new job before it cancels the waiting one (:meth:`JobEngine.replace_queued`);
        the start in progress follows the new job.  Returns its id."""
        if not self.is_queued():
            raise spawn_exception(NOT_QUEUED, reason="not_queued", status_code=409)
        request, entry = await self.checked_request(user_options)
        if entry is not None and getattr(self.gallery_entry, "id", None) != entry.id:
            raise spawn_exception(OTHER_NOTEBOOK, reason="options")
        if self.internal_ssl and request.settings.partition != self.job_request().settings.partition:
            raise spawn_exception(OTHER_PARTITION, reason="options")
        env = self.get_env()
        try:
            job_id = await self.engine.replace_queued(
                self.batch_script_for(request, env), env, **self.audit_fields(request)
            )
        except StartFailed as e:
            raise spawn_exception(e.message, reason=e.reason, status_code=e.status_code) from e
        self.request, self.accepted_options = request, dict(user_options or {})
        self.remember_options(self.accepted_options)
        return job_id

    async def poll(self) -> int | None:
        """Read the shared snapshot: no scheduler call of its own.

        After a hub restart JupyterHub checks every server and stops those whose ``poll()`` says
        "not running" or that do not answer at once; either would cancel a queued job.  So a
        job that was starting is followed until JupyterLab answers (``init_spawners_timeout``
        lets the hub serve meanwhile), then the server goes on as if the hub had never stopped."""
        if check_pending(self) and self.job_id and not self.started:
            ended = await self.engine.resume()
            if ended is None:
                asyncio.ensure_future(self.route_when_checked())
            return ended
        return await self.engine.poll()

    async def settle_cancelled_start(self, start: int) -> None:
        """After a cancelled start: the hub never keeps a server that did not start.

        JupyterHub's stop during a pending spawn cancels the spawn, waits one second, then stops
        the server; if the spawn is still pending by then (a hub busy with a burst of starts),
        it answers 500 and stops nothing, and once the spawn ends the server it had begun is
        left "ready" at the hub's own name and a port no job reported: the proxy's route check
        routes it, and no later stop or poll clears it.  So, once the spawn has ended and
        JupyterHub's own stop has had its time, a server still held by this spawner (which
        JupyterHub's stop would have cleared: every start builds a new one) is stopped here
        through the hub: route removed, job cancelled (``poll()`` sees it queued), state cleared.
        ``start``: the engine's count of starts when it was cancelled (a later start is not settled)."""
        deadline = time.monotonic() + CANCELLED_START_GRACE
        while self.pending or time.monotonic() < deadline:
            if time.monotonic() > deadline + CANCELLED_START_GRACE * 30:
                return  # something else holds the server (a stop that hangs): not ours to settle
            await asyncio.sleep(0.25)
        if self.server is None or self.engine.starts != start:
            return  # JupyterHub's stop cleared it, or a new start holds it
        self.log.warning(
            "The start of %s was cancelled but the hub still holds its server: stopping it", self.user.name
        )
        try:
            await stop_through_hub(self)
        except Exception:
            self.log.exception("Could not stop the server of %s whose start was cancelled", self.user.name)

    async def stop(self, now: bool = False) -> None:
        self.end_shares()
        await self.engine.stop(by=self.requested_by(), now=now)

    async def get_url(self) -> str:
        """Where JupyterLab is, for JupyterHub's check after a restart (the database may hold port 0)."""
        if self.started and self.engine.record.ip and self.port and self.server is not None:
            return f"http://{self.ip}:{self.port}{self.server.base_url}"
        url: str = await super().get_url()
        return url

    async def route_when_checked(self) -> None:
        """A server resumed after a restart joins the proxy once JupyterHub's check has passed."""
        while check_pending(self):
            await asyncio.sleep(0.5)
        if self.ready:
            await add_route_for(self)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), **self.engine.record.as_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        """After a hub restart: follow the jobs that the database remembers (any state version)."""
        super().load_state(state)
        self.engine.load(JobState.from_state(state))

    def clear_state(self) -> None:
        self.engine.forget_job()
        super().clear_state()

    # -- what the engine asks of its server (job_engine.Server) -------------------------
    def save_state(self) -> None:
        """Persist the job id now, so that a hub restart finds the job (not only after start)."""
        orm = getattr(self, "orm_spawner", None)
        if orm is not None and self.db is not None:
            orm.state = self.get_state()
            self.db.commit()

    def audit_event(self, event: str, **fields: Any) -> None:
        """Append ``event`` about this server to the hub's audit log."""
        if self.services.audit is not None:
            self.services.audit.record(event, user=self.user.name, server=self.name or "(default)", **fields)

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

    async def notify_gone(self) -> None:
        await self.poll_and_notify()

    async def answers(self, node: str, host: str, port: int) -> bool:
        """Whether JupyterLab answers at host:port; with internal_ssl, only if its certificate is
        this user's (a server of anyone else there is refused, never routed)."""
        context = self.server_ssl_context()
        if context is None:
            return await serving(host, port)
        identity = await server_identity(host, port, context)
        if identity is None:
            return False
        if identity != f"user-{self.user.name}":
            self.audit_event("impostor", job_id=self.job_id, node=node, port=port, certificate=identity)
            raise StartFailed(
                f"The server answering on port {port} of {node} is not yours (its certificate is "
                f"{identity!r}); the hub did not connect you to it, and job {self.job_id} was cancelled.",
                reason="not_yours",
            )
        return True

    # -- who asks, and whose token --------------------------------------------------------
    def requested_by(self) -> str:
        """Who asked for this start: the user, an admin or a service (JupyterHub passes the request)."""
        actor = getattr(getattr(self, "handler", None), "current_user", None)
        return getattr(actor, "name", "") or self.user.name

    def owns_token(self, token: str) -> bool:
        """Whether ``token`` is this server's (after a restart, only its hash is known)."""
        return self.engine.owns_token(token, self.api_token or "")

    def accept_reported_port(self, port: int, job_id: str = "") -> bool:
        """Called by the job channel; only a server waiting for its port takes one, from its job."""
        return self.engine.accept_port(port, job_id)

    def job_log(self) -> str:
        return self.engine.log_file()

    def progress_percent(self) -> int:
        return self.engine.progress_percent()

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
