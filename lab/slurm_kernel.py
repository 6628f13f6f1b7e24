"""A kernel on any partition, from the same JupyterLab: the kernel runs in a SLURM job of its own,
in the user's account, on the partition its kernelspec names (issue 39).

A site offers one with a kernelspec whose provisioner is ``aifactory-slurm`` (pyproject.toml's
entry point), its job's resources in the provisioner's config, each a job field
(slurm/job_fields.py)::

    "metadata": {"kernel_provisioner": {"provisioner_name": "aifactory-slurm",
                 "config": {"partition": "acc", "gpus": 1, "cpus": 4, "memory": "8G", "walltime": "01:00:00"}}}

What a notebook with such a kernel costs and keeps:

* **Its own job.** Starting the kernel submits it (``sbatch``, as the user, from the session),
  its walltime cut to what the session has left and its account the session's unless the
  kernelspec names one. The job runs the kernelspec's own command (the same Python and modules
  as a site kernel) with the session's home; Dask clusters started in it name their workers
  after it and go with it (lab/batch.py's prelude, as a notebook job's).
* **Channels no other tenant reaches.** The kernel listens on TCP ports of its node, which every
  tenant reaches, so every socket speaks CurveZMQ (Jupyter's transport encryption) with a key
  pair made for this kernel: a peer that does not hold the connection file cannot complete the
  handshake, let alone read an output. The connection file lives in a new folder of the user's
  alone (``~/.aifactory/kernels``, mode 0700; the home is what the session's node and the
  kernel's share), removed with the kernel.
* **Its job and time left in sight.** JupyterLab's status bar shows, beside the session's, the
  job of the current notebook's kernel and its time left (:func:`kernel_jobs`, in the session
  answer of lab/session.py).
* **Its life follows the notebook's.** Shutting the kernel down cancels the job, and so does
  leaving it: a kernel idle with no notebook connected for longer than its ``idle_timeout`` is
  shut down (:func:`cull_idle_kernels`, every :data:`CULL_SECONDS` in the session's server);
  the job also cancels itself within :data:`SESSION_CHECK_SECONDS` of the session's end,
  however that ends. A job that SLURM ends (walltime, node failure) is a kernel that died:
  JupyterLab is told how, and it restarts the kernel once, in a new job. A job that waits longer
  than ``start_timeout`` is cancelled, and the notebook is told SLURM's reason; while it waits,
  the status bar shows it (:func:`starting_kernels`) with a Cancel (lab/session.py's route).
  Every refusal reaches the notebook in words (:class:`KernelJobError`).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import zmq
from jupyter_client.connect import KernelConnectionInfo, port_names
from jupyter_client.ioloop.restarter import AsyncIOLoopKernelRestarter
from jupyter_client.provisioning import KernelProvisionerBase
from tornado import web
from traitlets import Float, Integer, Unicode, default

from aifactory_workbench.job import KERNEL_JOB_PREFIX
from aifactory_workbench.lab.batch import job_prelude
from aifactory_workbench.lab.kernel_node import write_private
from aifactory_workbench.lab.notebook import capped_walltime
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.job_fields import problems, sbatch_options
from aifactory_workbench.slurm.parsers import JobInfo, SlurmError, parse_sbatch_parsable
from aifactory_workbench.slurm.pending import describe_end, queued_text, state_text
from aifactory_workbench.slurm.values import parse_duration

#: The provisioner's name in kernelspecs (pyproject.toml's ``jupyter_client.kernel_provisioners``).
PROVISIONER_NAME = "aifactory-slurm"
#: Where a kernel's connection file is made: in the home, which its node and the session's share.
KERNELS_FOLDER = Path(".aifactory") / "kernels"
#: The job fields a kernelspec may set, with the provisioner's own settings.
JOB_SETTINGS = ("partition", "account", "qos", "cpus", "memory", "gpus", "walltime", "reservation", "constraint")
OWN_SETTINGS = ("start_timeout", "idle_timeout")
#: squeue is asked about a running kernel's job at most this often (JupyterLab polls every 3 s).
POLL_SECONDS = 10.0
#: While a kernel starts, its connection file is read this often, and SLURM asked about its job this often.
READ_SECONDS = 0.05
ASK_SECONDS = 2.0
#: How long a kernel whose job SLURM ended stays in the session answer, with how it ended.
ENDED_SECONDS = 3600.0
#: How often the session's server looks for kernels left idle with no notebook connected.
CULL_SECONDS = 15.0
#: How often a kernel's job checks that its session still runs.
SESSION_CHECK_SECONDS = 30
#: Job states in which a kernel's job has not ended.
LIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "RESIZING", "REQUEUED"})
#: Environment variables of the session that a kernel's job must not inherit (its own SLURM sets
#: its own; sbatch reads SBATCH_ ones as options) or need not carry (the session's hub token).
#: (SLURM_CONF, where a site names its config, is kept.)
NOT_INHERITED = ("SLURM_", "SBATCH_", "SALLOC_", "JUPYTERHUB_", "JPY_", "TMPDIR", "AIFACTORY_DASHBOARDS")


def inherited(name: str) -> bool:
    """Whether the session's environment variable ``name`` reaches the kernel's job."""
    return name == "SLURM_CONF" or not name.startswith(NOT_INHERITED)


def read_connection_file(path: Path) -> dict[str, Any]:
    """A kernel's connection file as it stands, {} while it is being rewritten: the kernel
    (Jupyter's write_connection_file) removes it, then writes it anew."""
    try:
        info = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


class KernelJobError(web.HTTPError):
    """A kernel's job could not be submitted or started; the message says why, in SLURM's words.
    An HTTPError, so that JupyterLab shows it: jupyter_server answers a failed start with an
    HTTPError's message, and with "Unhandled error" for any other exception."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(status, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class KernelSettingsError(KernelJobError, ValueError):
    """A kernelspec's provisioner settings that its rules refuse, each named."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400)


def refused_settings(names: list[str]) -> list[str]:
    """What is wrong with a kernelspec's provisioner settings: each unknown name, with the
    accepted name it is closest to."""
    accepted = [*JOB_SETTINGS, *OWN_SETTINGS]
    found = []
    for name in names:
        if name not in accepted:
            close = difflib.get_close_matches(name, accepted, n=1)
            found.append(f"{name!r} is not a setting" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return found


def kernel_folder(home: Path) -> Path:
    """A new folder of the user's alone for one kernel's connection file (mode 0700)."""
    parent = home / KERNELS_FOLDER
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="kernel-", dir=parent))


def kernel_script(python: str, session_job: str, cmd: list[str], connection_file: Path, where: dict[str, str]) -> str:
    """The kernel's batch script: a notebook job's prelude (its own private folder, Dask names
    and credentials), a check that ends it with its session, then the kernel, whose connection
    file gets this node's address first (lab/kernel_node.py). Dask clusters started in
    the kernel put their workers beside it (``where``: its partition and account), unless told
    otherwise."""
    run = shlex.join([python, "-m", "aifactory_workbench.lab.kernel_node", "on-node", str(connection_file), "--", *cmd])
    session = shlex.quote(session_job)
    watch = (
        f"""\
aifw_session_ended() {{
  local said
  said=$(squeue -h -j {session} -o %T 2>&1) || {{ case "$said" in *"Invalid job id"*) return 0 ;; esac; return 1; }}
  [ -z "$said" ] || [ "$said" = COMPLETING ]
}}
( while kill -0 $$ 2>/dev/null; do
    if aifw_session_ended; then scancel "$SLURM_JOB_ID"; break; fi
    sleep {SESSION_CHECK_SECONDS}
  done ) &
"""
        if session_job
        else ""
    )
    dask = f"export DASK_JOBQUEUE__SLURM__QUEUE={shlex.quote(where['partition'])}\n"
    if where.get("account"):
        dask += f"export DASK_JOBQUEUE__SLURM__ACCOUNT={shlex.quote(where['account'])}\n"
    announce = 'echo "AI Factory Workbench: kernel job $SLURM_JOB_ID on $(hostname)"'
    # Its folder (connection file, keys) goes with the job however it ends: a session stopped
    # abruptly never runs the provisioner's cleanup.
    prelude = job_prelude(python, forget=(connection_file.parent,))
    return f"#!/bin/bash\n{prelude}{dask}{watch}{announce}\n{run}\n"


class JobKernelRestarter(AsyncIOLoopKernelRestarter):  # type: ignore[misc]
    """A kernel whose job SLURM ended is restarted once, in a new job, as JupyterLab's "it will
    restart automatically" says; a restart that does not come alive is not tried again (each try
    is a job: Jülich's provisioner advises no automatic restart at all for that reason), and the
    kernel is dead. The session answer says how the job ended either way."""

    @default("restart_limit")
    def _one_automatic_restart(self) -> int:
        return 1


class SlurmKernelProvisioner(KernelProvisionerBase):  # type: ignore[misc]
    """Starts a kernel as a SLURM job of the user's (see the module's rules)."""

    #: This server's kernels whose job SLURM ended on its own: kernel id -> (when, its entry).
    ended: ClassVar[dict[str, tuple[float, dict[str, str]]]] = {}
    #: This server's kernels whose job is submitted and not listening yet: kernel id -> provisioner.
    starting: ClassVar[dict[str, SlurmKernelProvisioner]] = {}

    partition = Unicode("", config=True, help="The partition the kernel's job runs on (required).")
    account = Unicode("", config=True, help="The account it is charged to; the session's when empty.")
    qos = Unicode("", config=True, help="Its QoS; the association's default when empty.")
    cpus = Integer(1, config=True, help="Cores of the kernel's job.")
    memory = Unicode("2G", config=True, help="Memory of the kernel's job (SLURM's words: 500M, 8G).")
    gpus = Integer(0, config=True, help="GPUs of the kernel's job.")
    walltime = Unicode("01:00:00", config=True, help="Its walltime, cut to what the session has left.")
    reservation = Unicode("", config=True, help="A reservation it runs in, if any.")
    constraint = Unicode("", config=True, help="Node features it needs, if any.")
    start_timeout = Float(
        300.0,
        config=True,
        help="Seconds the job may wait in the queue; then it is cancelled, and the notebook told why.",
    )
    idle_timeout = Integer(
        600,
        config=True,
        help="Seconds the kernel may stay idle with no notebook connected (closed, or its page gone)"
        " before it is shut down and its job cancelled, freeing what it holds; 0: never.",
    )

    def __init__(self, **kwargs: Any) -> None:
        given = [k for k in kwargs if k not in ("kernel_id", "kernel_spec", "parent", "config", "log")]
        wrong = refused_settings(given)
        if wrong:
            raise KernelSettingsError(f"kernelspec {PROVISIONER_NAME} settings: " + "; ".join(wrong))
        super().__init__(**kwargs)
        self.slurm = Slurm()
        self.job_id = ""
        self.folder: Path | None = None
        self._seen: tuple[float, int | None] = (0.0, None)
        self.withdrawn = False

    @property
    def has_process(self) -> bool:
        return bool(self.job_id)

    def settings(self, time_left: int | None, env: dict[str, str]) -> dict[str, Any]:
        """The job's fields: the kernelspec's, the session's account where it names none, the
        walltime cut to what the session has left; ValueError names every value its rule refuses."""
        values: dict[str, Any] = {name: getattr(self, name) for name in JOB_SETTINGS}
        values["account"] = values["account"] or env.get("SLURM_JOB_ACCOUNT", "")
        values["walltime"] = capped_walltime(values["walltime"], time_left)
        if not values["partition"]:
            name = self.kernel_spec.display_name
            raise KernelSettingsError(f"{name!r}: its {PROVISIONER_NAME} config names no partition")
        wrong = problems(values)
        if wrong:
            raise KernelSettingsError(
                "; ".join(f"{name}: {value!r} is not accepted; allowed: {rule}" for name, value, rule in wrong)
            )
        return values

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """The connection file (key, CurveZMQ key pair, no address or port yet) in a new private
        folder, and the kernelspec's command naming it."""
        km = self.parent
        kwargs = await super().pre_launch(**kwargs)
        self.folder = kernel_folder(Path.home())
        public, secret = zmq.curve_keypair()
        request = {
            "transport": "tcp",
            "ip": "",
            **{name: 0 for name in port_names},
            "key": km.session.key.decode(),
            "signature_scheme": km.session.signature_scheme,
            "kernel_name": km.kernel_name,
            "curve_publickey": public.decode(),
            "curve_secretkey": secret.decode(),
        }
        connection_file = self.folder / "connection.json"
        write_private(connection_file, json.dumps(request))
        km.transport = "tcp"
        km.connection_file = str(connection_file)
        if hasattr(km, "restarter_class"):  # a job SLURM ended is resubmitted once, not five times
            km.restarter_class = JobKernelRestarter
        kwargs["cmd"] = km.format_kernel_cmd(extra_arguments=kwargs.pop("extra_arguments", []))
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Submit the kernel's job, wait until the kernel listens (or the job ends, or it waits
        longer than ``start_timeout``: then it is cancelled), and return where it listens. A
        start that fails (refused, timed out, withdrawn, or the server stopped) leaves no job and
        no folder: a job that never ran never ran its exit trap."""
        try:
            return await self._launch(cmd, **kwargs)
        except BaseException:
            await asyncio.shield(self._cancel())
            self._forget_folder()
            raise

    async def _launch(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        env = {
            k: v
            for k, v in kwargs.get("env", os.environ).items()
            if k == "SLURM_CONF" or not k.startswith(NOT_INHERITED)
        }
        session_job = os.environ.get("SLURM_JOB_ID", "")
        time_left = await asyncio.to_thread(self.slurm.time_left, session_job) if session_job else None
        values = self.settings(time_left, dict(os.environ))
        assert self.folder is not None
        options = [
            f"--job-name={KERNEL_JOB_PREFIX}{session_job or 'lab'}",
            f"--output={Path.home() / '.aifactory' / 'logs'}/kernel-%j.log",
            f"--chdir={kwargs.get('cwd') or Path.home()}",
            "--nodes=1",
            "--ntasks=1",
            "--no-requeue",
            *sbatch_options(values),
        ]
        (Path.home() / ".aifactory" / "logs").mkdir(mode=0o700, parents=True, exist_ok=True)
        script = kernel_script(sys.executable, session_job, cmd, self.folder / "connection.json", values)
        try:
            result = await self.slurm.run(["sbatch", "--parsable", *options], stdin=script, env=env)
        except SlurmError as e:
            raise KernelJobError(f"SLURM refused the kernel's job on {values['partition']}: {e}") from e
        self.job_id = parse_sbatch_parsable(result.stdout)
        self.log.info("aifactory-slurm: kernel %s is job %s on %s", self.kernel_id, self.job_id, values["partition"])
        self.withdrawn = False
        self.starting[self.kernel_id] = self
        try:
            info = await self.listening(values["partition"])
        finally:
            self.starting.pop(self.kernel_id, None)
        self._seen = (time.monotonic(), None)  # it listens: alive (not the ended job's answer, on a restart)
        km = self.parent
        for name in port_names:
            setattr(km, name, 0)
        km.load_connection_info(info)
        self.connection_info = info
        return info

    async def listening(self, partition: str) -> KernelConnectionInfo:
        """The connection file once the kernel has written its ports into it: the file is read
        every :data:`READ_SECONDS` (a kernel answers within a second of its job's start), SLURM
        asked about the job every :data:`ASK_SECONDS`."""
        assert self.folder is not None
        connection_file, deadline, asked = self.folder / "connection.json", time.monotonic() + self.start_timeout, 0.0
        while True:
            if self.withdrawn:
                raise KernelJobError(f"You cancelled the kernel's job {self.job_id} on {partition}: nothing is left.")
            info = read_connection_file(connection_file)
            if info.get("ip") and all(info.get(name) for name in port_names):
                info["key"] = info["key"].encode()
                return info
            if time.monotonic() - asked >= ASK_SECONDS:
                asked = time.monotonic()
                job = await self.slurm.job(self.job_id)
                if job is None or job.state not in LIVE_STATES:
                    raise KernelJobError(await self.ended_text())
                if asked > deadline:
                    raise KernelJobError(self.waited_text(job, partition))
            await asyncio.sleep(READ_SECONDS)

    def waited_text(self, job: JobInfo, partition: str) -> str:
        waited = f"The kernel's job waited more than {self.start_timeout:.0f} s for {partition} and was cancelled"
        return f"{waited}: {queued_text(job.reason, job.start_time)}" if job.state == "PENDING" else waited + "."

    async def ended_text(self) -> str:
        record = await self.slurm.accounting(self.job_id)
        state = f"{record.state} ({record.reason})" if record and record.reason else (record.state if record else "")
        log = Path.home() / ".aifactory" / "logs" / f"kernel-{self.job_id}.log"
        return f"The kernel's job {self.job_id} ended before its kernel started: {state or 'no record'}; its log: {log}"

    async def poll(self) -> int | None:
        """None while the job runs (squeue asked at most every :data:`POLL_SECONDS`), else 0."""
        if not self.job_id:
            return 0
        asked, said = self._seen
        if time.monotonic() - asked < POLL_SECONDS:
            return said
        return await self._ask()

    async def _ask(self) -> int | None:
        try:
            job = await self.slurm.job(self.job_id)
        except SlurmError as e:  # no answer is no news: the kernel's own heartbeat still tells
            self.log.debug("aifactory-slurm: squeue did not answer for job %s: %s", self.job_id, e)
            return None
        said = None if job is not None and job.state in LIVE_STATES and job.state != "COMPLETING" else 0
        self._seen = (time.monotonic(), said)
        if said == 0 and not getattr(self.parent, "shutting_down", False):
            await self._ended_on_its_own()
        return said

    async def _ended_on_its_own(self) -> None:
        """SLURM ended the kernel's job (its walltime, its node, an operator, memory): the
        notebook is told how, in accounting's words, through the session answer (:func:`kernel_jobs`)."""
        job = self.job_id
        if self.ended.get(self.kernel_id, (0.0, {}))[1].get("job_id") == job:
            return
        try:
            record = await self.slurm.accounting(job)
        except SlurmError:
            record = None
        how = describe_end(record) if record is not None and record.ended else NOT_HELD
        detail = f"The kernel's job {job} on {self.partition} ended: {how}. {RESTART_TEXT}"
        self.log.warning("aifactory-slurm: kernel %s: %s", self.kernel_id, detail)
        self.ended[self.kernel_id] = (
            time.monotonic(),
            {**kernel_job(self.kernel_id, self, None), "detail": detail, "notice": detail},
        )

    async def wait(self) -> int | None:
        while self.job_id and await self._ask() is None:
            await asyncio.sleep(1.0)
        return 0

    async def withdraw(self) -> None:
        """The user cancels the kernel's job while it waits to start: the start ends with a
        message that says so (within :data:`ASK_SECONDS`)."""
        self.withdrawn = True
        await self.slurm.cancel(self.job_id, user="")

    async def send_signal(self, signum: int) -> None:
        if self.job_id and signum:
            await self.slurm.run(
                ["scancel", f"--signal={signal.Signals(signum).name.removeprefix('SIG')}", self.job_id]
            )

    async def kill(self, restart: bool = False) -> None:
        await self._cancel()

    async def terminate(self, restart: bool = False) -> None:
        await self._cancel()

    async def _cancel(self) -> None:
        if self.job_id:
            await self.slurm.cancel(self.job_id, user="")
            self.job_id = ""

    async def cleanup(self, restart: bool = False) -> None:
        """The kernel's folder (its connection file and keys) goes with it."""
        self._forget_folder()
        self.job_id = ""

    def _forget_folder(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)  # the job's end may have removed it first
            self.folder = None

    async def get_provisioner_info(self) -> dict[str, Any]:
        return {**(await super().get_provisioner_info()), "job_id": self.job_id}

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.job_id = str(provisioner_info.get("job_id", ""))


#: What a kernel's entry says when squeue did not answer (the next answer asks again).
UNANSWERED = "SLURM did not answer; asked again at the next look."
#: The session server's route (under its base URL) that cancels a kernel's job while it waits to start.
CANCEL_ROUTE = "aifactory/session/kernel-jobs"
#: What the notebook is told after how a kernel's job ended (JupyterLab restarts it once).
RESTART_TEXT = "Its variables are gone; a restart runs in a new job."
#: What it says of a job that squeue no longer holds (it ended; JupyterLab is told the kernel died).
NOT_HELD = "squeue no longer lists it."


def slurm_kernels(kernel_manager: Any) -> list[tuple[str, SlurmKernelProvisioner]]:
    """This server's running kernels (jupyter_server's kernel manager) that run in a job of
    their own, with their provisioners, in the kernel manager's order."""
    found = []
    for kernel_id in kernel_manager.list_kernel_ids():
        provisioner = getattr(kernel_manager.get_kernel(kernel_id), "provisioner", None)
        if isinstance(provisioner, SlurmKernelProvisioner) and provisioner.job_id:
            found.append((kernel_id, provisioner))
    return found


def left_idle(kernel_manager: Any, now: datetime) -> list[tuple[str, SlurmKernelProvisioner]]:
    """The kernels in jobs of their own that no notebook is connected to, idle for longer than
    their provisioner's ``idle_timeout`` (a busy kernel is never among them)."""
    found = []
    for kernel_id, provisioner in slurm_kernels(kernel_manager):
        kernel = kernel_manager.get_kernel(kernel_id)
        if (
            provisioner.idle_timeout > 0
            and kernel.execution_state == "idle"
            and not kernel_manager.kernel_model(kernel_id).get("connections")
            and (now - kernel.last_activity).total_seconds() > provisioner.idle_timeout
        ):
            found.append((kernel_id, provisioner))
    return found


async def cull_idle_kernels(kernel_manager: Any, log: Any) -> list[str]:
    """Shut down the kernels :func:`left_idle` finds (their jobs are cancelled); their ids."""
    culled = []
    for kernel_id, provisioner in left_idle(kernel_manager, datetime.now(UTC)):
        log.warning(
            "aifactory-slurm: kernel %s (job %s) idle for over %d s with no notebook connected: shut down",
            kernel_id,
            provisioner.job_id,
            provisioner.idle_timeout,
        )
        await kernel_manager.shutdown_kernel(kernel_id)
        culled.append(kernel_id)
    return culled


def kernel_job(kernel_id: str, provisioner: SlurmKernelProvisioner, info: JobInfo | None) -> dict[str, str]:
    """One kernel's job as the status bar shows it, from squeue's line (None: not held any more):
    its state as the home page words it ("queued", else SLURM's in lower case, as
    spawners/workbench_jobs.py's kernel_jobs), its time left and, while it waits, SLURM's reason
    and expected start (``detail``), in the words every page uses. ``notice``: what JupyterLab
    tells once as a notification (a job SLURM ended: how; "" otherwise). ``cancel``: while the
    kernel waits to start, the route (under the server's base URL) that cancels its job."""
    entry = {
        "kernel_id": kernel_id,
        "job_id": provisioner.job_id,
        "partition": provisioner.partition,
        "node": "",
        "state": "ended",
        "time_left_text": "",
        "detail": NOT_HELD,
        "notice": "",
        "cancel": f"{CANCEL_ROUTE}/{provisioner.job_id}" if kernel_id in SlurmKernelProvisioner.starting else "",
    }
    if info is None:
        return entry
    queued = info.state == "PENDING"
    left = parse_duration(info.time_left) if info.is_running else None
    return {
        **entry,
        "partition": info.partition or provisioner.partition,
        "node": info.node if info.is_running else "",
        "state": state_text(info.state),
        "time_left_text": duration_text(left) if left is not None else "",
        "detail": queued_text(info.reason, info.start_time) if queued else "",
    }


async def kernel_jobs(kernel_manager: Any, slurm: Slurm) -> list[dict[str, str]]:
    """Each of this server's kernels in a job of its own, as :func:`kernel_job` words it: one
    squeue call for all of them (none when there are none). When SLURM does not answer, each
    entry says so (state "unknown"): never an error."""
    kernels = slurm_kernels(kernel_manager) + starting_kernels()
    ended = ended_kernels()
    if not kernels:
        return ended
    try:
        queue = await slurm.jobs_by_id([provisioner.job_id for _, provisioner in kernels])
    except SlurmError:
        return [
            {**kernel_job(kernel_id, provisioner, None), "state": "unknown", "detail": UNANSWERED}
            for kernel_id, provisioner in kernels
        ] + ended
    live = [kernel_job(kernel_id, provisioner, queue.get(provisioner.job_id)) for kernel_id, provisioner in kernels]
    return live + ended


def starting_kernels() -> list[tuple[str, SlurmKernelProvisioner]]:
    """The kernels whose job is submitted and that do not listen yet (jupyter_server lists a
    kernel only once it has started): the status bar shows their wait, and offers Cancel."""
    return [(kernel_id, p) for kernel_id, p in SlurmKernelProvisioner.starting.items() if p.job_id]


def ended_kernels() -> list[dict[str, str]]:
    """The kernels whose job SLURM ended within :data:`ENDED_SECONDS`, each with how it ended
    (after the live ones in the session answer: a kernel restarted in a new job is shown by it)."""
    now = time.monotonic()
    kept = SlurmKernelProvisioner.ended
    for kernel_id in [k for k, (at, _) in kept.items() if now - at > ENDED_SECONDS]:
        del kept[kernel_id]
    return [entry for _, entry in kept.values()]


class KernelJobsSeen:
    """:func:`kernel_jobs` for every page that polls the session answer: squeue asked at most
    every :data:`POLL_SECONDS` whatever the number of pages open, and at once when this server's
    kernels in jobs change (one starts, one goes)."""

    def __init__(self, slurm: Slurm) -> None:
        self.slurm = slurm
        self._said: tuple[float, tuple[tuple[str, str], ...], list[dict[str, str]]] = (0.0, (), [])

    async def __call__(self, kernel_manager: Any) -> list[dict[str, str]]:
        kernels = (
            *((kernel_id, provisioner.job_id) for kernel_id, provisioner in slurm_kernels(kernel_manager)),
            *((kernel_id, "starting") for kernel_id, _ in starting_kernels()),
            *((kernel_id, "ended") for kernel_id in SlurmKernelProvisioner.ended),
        )
        at, seen, said = self._said
        if kernels != seen or time.monotonic() - at >= POLL_SECONDS:
            said = await kernel_jobs(kernel_manager, self.slurm)
            self._said = (time.monotonic(), kernels, said)
        return said
