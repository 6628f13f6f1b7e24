"""The spawner on its own (no scheduler): each batchspawner 1.3.0 mend docs/operators/batchspawner.md lists, and
its settings as a site sets them: honoured as batchspawner documents, or refused by name.

The failing-job and cancelled-job mends need a real SLURM: tests/integration/test_spawn.py."""

import asyncio
import hashlib
from pathlib import Path

import pytest
from jupyterhub.spawner import SpawnException
from traitlets.config import Config

from aifactory_workbench.hub.audit import AuditLog
from aifactory_workbench.hub.configure import update_spawner
from aifactory_workbench.hub.site import SiteConfigError
from aifactory_workbench.spawners.job_engine import StartFailed
from aifactory_workbench.spawners.services import Services
from aifactory_workbench.spawners.spawner import REFUSED_SETTINGS, WorkbenchSpawner

from .defaults import DEFAULTS
from .fakes import VENV, new_spawner
from .recorded_slurm import FakeSlurm


@pytest.fixture
def spawner():
    return new_spawner()


def test_job_finds_its_python_without_the_hubs_env_keep(spawner):
    """JupyterHub 5.2 dropped PATH & co from env_keep: commands are absolute, PATH is ours."""
    env = spawner.get_env()
    assert env["PATH"].split(":")[0] == f"{VENV}/bin"
    assert "/root" not in env["PATH"]
    assert env["LANG"] == "C.UTF-8"
    assert all(part.startswith(f"{VENV}/bin/") for part in spawner.job_command()[:2])
    script = spawner.batch_script_for(spawner.job_request(), env)
    assert f"{VENV}/bin/aifactory-singleuser {VENV}/bin/jupyterhub-singleuser" in script
    assert "PATH" in script.split("--export=")[1].splitlines()[0].split(",")


def test_user_options_are_validated_not_merged_into_the_script(spawner):
    """batchspawner merged raw user_options into the template's variables."""
    spawner.user_options = {"prologue": "touch /tmp/owned", "memory": "4G"}
    with pytest.raises(SpawnException, match="prologue") as refused:
        spawner.job_request()
    assert refused.value.reason == "options" and refused.value.status_code == 400
    spawner.user_options = {"memory": "4G\n#SBATCH --uid=0"}
    with pytest.raises(SpawnException, match="memory"):
        spawner.job_request()
    spawner.user_options = {"memory": "4G"}
    assert "#SBATCH --mem=4G" in spawner.batch_script_for(spawner.job_request(), spawner.get_env())


def test_failures_reach_the_user_as_written_with_a_reason_for_the_metrics():
    from aifactory_workbench.spawners.messages import scheduler_unavailable

    error = scheduler_unavailable("Unable to contact slurm controller (100% busy)")
    assert isinstance(error, SpawnException) and error.reason == "scheduler_unavailable" and error.status_code == 503
    assert error.jupyterhub_message == error.message and "100% busy" in error.message
    assert "scheduler is unavailable" in error.message
    str(error)  # a "%" in the message breaks nothing when it is logged


def test_after_a_restart_the_job_token_is_recognised_by_its_hash_only(spawner):
    spawner.api_token = ""
    spawner.token_sha256 = hashlib.sha256(b"t" * 32).hexdigest()
    assert spawner.owns_token("t" * 32)
    assert not spawner.owns_token("u" * 32)
    spawner.token_sha256 = ""
    assert not spawner.owns_token("")


def test_an_ended_job_is_cleaned_up_once_when_two_polls_notice_it(tmp_path):
    """The watcher's notice and JupyterHub's periodic poll can run poll() at the same time; the
    hub then forgets the job and its token (the engine's own tests: test_job_engine.py)."""
    slurm = FakeSlurm()
    spawner = new_spawner(slurm=slurm, audit=AuditLog(tmp_path / "a"))
    spawner.job_id = job_id = asyncio.run(slurm.submit("#SBATCH --job-name=aifw-jupyterlab\n", user="alice", env={}))
    slurm.end_job(job_id, "CANCELLED")

    async def both():
        return await asyncio.gather(spawner.poll(), spawner.poll())

    assert asyncio.run(both()) == [1, 1]
    assert [argv for _, argv in slurm.asked if argv[0] == "scancel"] == [["scancel", "--name", f"aifw-dask-{job_id}"]]
    assert [e["event"] for e in spawner.services.audit.tail(10)] == ["job_end"]
    assert spawner.last_end == f"Your JupyterLab job {job_id} has ended: it was cancelled." and not spawner.job_id
    assert not spawner.api_token and not spawner.owns_token("t" * 32)
    assert spawner.get_state() == {"version": 2, "last_end": spawner.last_end}  # no log path: none was set


# -- settings: honoured as batchspawner documents them, or refused by name -----------------
def configured(c: Config, tmp_path) -> WorkbenchSpawner:
    """What a spawner of a hub configured with ``c`` (and the default site file) gets."""
    update_spawner(c, DEFAULTS, AuditLog(tmp_path / "audit.log"))
    return WorkbenchSpawner(config=c)


def test_the_site_files_job_defaults_reach_the_spawner_typed(tmp_path):
    spawner = configured(Config(), tmp_path)
    job = spawner.job_defaults()
    slurm = DEFAULTS.slurm
    assert (job.partition, job.qos, job.cpus, job.memory, job.gpus, job.walltime) == (
        slurm.partition,
        slurm.qos,
        slurm.cpus,
        slurm.memory,
        slurm.gpus,
        slurm.walltime,
    )
    assert type(job.cpus) is int and spawner.job_name == slurm.job_name
    assert spawner.services.watcher.interval == DEFAULTS.hub.poll_interval


def test_every_spawner_of_a_hub_shares_one_set_of_services(tmp_path):
    """One SLURM client, one squeue loop, one discovery cache for all servers (not a copy each)."""
    c = Config()
    built = update_spawner(c, DEFAULTS, AuditLog(tmp_path / "audit.log"))
    alice, bob = WorkbenchSpawner(config=c), WorkbenchSpawner(config=c)
    assert alice.services is built and bob.services is built
    assert alice.watcher is bob.watcher and alice.discovery is bob.discovery and alice.slurm is bob.slurm
    # one memory of SLURM's expected starts, kept as long as the cluster's answers
    assert alice.services.starts is bob.services.starts and built.starts.ttl == DEFAULTS.form.discovery_cache
    assert alice.alternatives_after == DEFAULTS.form.alternatives_after == 300


def test_a_stock_batchspawner_config_keeps_its_req_settings(tmp_path):
    c = Config()
    c.SlurmSpawner.req_partition = "acc"
    c.SlurmSpawner.req_runtime = "00:30:00"
    c.SlurmSpawner.req_memory = "4G"
    c.SlurmSpawner.req_nprocs = "2"  # batchspawner's settings are strings
    c.BatchSpawnerBase.req_ngpus = "1"
    c.SlurmSpawner.req_qos = "normal"
    c.SlurmSpawner.req_account = "ehpc02"
    c.SlurmSpawner.req_reservation = "ws1"
    c.Spawner.poll_interval = 7
    spawner = configured(c, tmp_path)
    job = spawner.job_defaults()
    assert (job.partition, job.walltime, job.memory, job.cpus, job.gpus) == ("acc", "00:30:00", "4G", 2, 1)
    assert (job.qos, job.account, job.reservation) == ("normal", "ehpc02", "ws1")
    assert spawner.poll_interval == 7 and spawner.services.watcher.interval == 7


@pytest.mark.parametrize("setting", sorted(REFUSED_SETTINGS))
def test_a_setting_that_cannot_be_honoured_stops_the_hub_with_its_name(setting, tmp_path):
    c = Config()
    c.SlurmSpawner[setting] = {"cmd": ["x"], "mem_limit": "1G", "mem_guarantee": "1G"}.get(setting, "x")
    if setting in ("cpu_limit", "cpu_guarantee"):
        c.SlurmSpawner[setting] = 1.0
    with pytest.raises(SiteConfigError, match=f"c.SlurmSpawner.{setting} cannot be honoured: "):
        configured(c, tmp_path)


def test_every_inherited_setting_is_honoured_or_refused():
    """No batchspawner setting may be accepted and ignored."""
    from batchspawner import SlurmSpawner
    from jupyterhub.spawner import Spawner

    honoured = {
        "req_partition",
        "req_account",
        "req_qos",
        "req_reservation",
        "req_nprocs",
        "req_memory",
        "req_ngpus",
        "req_runtime",
        "startup_poll_interval",
        "start_timeout",
    }
    inherited = set(SlurmSpawner.class_trait_names(config=True)) - set(Spawner.class_trait_names(config=True))
    assert inherited - honoured <= set(REFUSED_SETTINGS), inherited - honoured - set(REFUSED_SETTINGS)


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("req_memory", "lots", "c.WorkbenchSpawner.req_memory: value 'lots' is not accepted"),
        ("req_partition", "gpp\n#SBATCH --uid=0", "c.WorkbenchSpawner.req_partition"),
        ("req_runtime", "2h", "c.WorkbenchSpawner.req_runtime"),
        ("job_name", "my job", "c.WorkbenchSpawner.job_name"),
    ],
)
def test_a_wrong_job_default_stops_the_hub_with_its_name(setting, value, named, tmp_path):
    c = Config()
    c.SlurmSpawner[setting] = value
    with pytest.raises(SiteConfigError, match=named.replace(".", r"\.")):
        configured(c, tmp_path)


def test_a_variable_that_sudo_would_drop_stops_the_hub_with_its_name(tmp_path):
    c = Config()
    c.Spawner.environment = {"JUPYTERHUB_SINGLEUSER_EXTENSION": "1", "LD_LIBRARY_PATH": "/x"}
    with pytest.raises(SiteConfigError, match="'LD_LIBRARY_PATH' cannot reach the job; sudo passes only JUPYTERHUB_"):
        configured(c, tmp_path)


def test_jupyterlab_counts_as_answering_only_once_it_handles_connections():
    """The launcher listens before JupyterLab runs: a queued connection is not an answer, a
    server that closes on plain text (TLS) is, and a port nobody listens on any more is not."""
    import socket
    import threading

    from aifactory_workbench.job.launcher import listening_socket
    from aifactory_workbench.spawners.spawner import serving

    queued = listening_socket()  # listening, nobody accepting yet
    port = queued.getsockname()[1]
    assert not asyncio.run(serving("127.0.0.1", port, timeout=0.3))

    def accept_and_close():
        queued.setblocking(True)
        for _ in range(3):
            conn, _ = queued.accept()
            conn.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    assert asyncio.run(serving("127.0.0.1", port, timeout=1.0))  # closes on plain text: it runs
    queued.close()
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        closed_port = gone.getsockname()[1]
    assert not asyncio.run(serving("127.0.0.1", closed_port, timeout=0.3))


def test_with_internal_ssl_only_a_server_with_the_users_own_certificate_counts_as_answering(spawner, tmp_path):
    """Issue 11, hole 3: a server of bob's on the port alice's job reported (bob's certificate,
    signed by the same CA as every server's) is refused, audited and never routed; alice's own
    counts.  Certificates are made by certipy, as the hub makes them."""
    import ssl

    from certipy import Certipy
    from jupyterhub.utils import make_ssl_context

    certs = Certipy(store_dir=str(tmp_path / "certs"))
    certs.create_ca("notebooks-ca")
    certs.create_ca("hub-ca")
    files = {
        name: certs.create_signed_pair(name, ca, alt_names=["IP:127.0.0.1"])["files"]
        for name, ca in [("user-alice", "notebooks-ca"), ("user-bob", "notebooks-ca"), ("hub-internal", "hub-ca")]
    }
    trust = tmp_path / "trust.crt"  # what each side trusts: both CAs, as the hub's trust bundles do
    trust.write_text(
        "".join(Path(certs.store.get_record(ca)["files"]["cert"]).read_text() for ca in ("notebooks-ca", "hub-ca"))
    )
    hub = files["hub-internal"]
    spawner.internal_ssl = True
    spawner.user.settings = {
        "internal_ssl_key": hub["key"],
        "internal_ssl_cert": hub["cert"],
        "internal_ssl_ca": str(trust),
    }
    audit = AuditLog(tmp_path / "audit.log")
    spawner.services = Services(slurm=None, watcher=None, discovery=None, starts=None, audit=audit)

    async def answers_with(user: str) -> bool:
        context = make_ssl_context(
            files[user]["key"], files[user]["cert"], cafile=str(trust), purpose=ssl.Purpose.CLIENT_AUTH
        )
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            return await spawner.answers("mn5-n01", "127.0.0.1", port)
        finally:
            server.close()

    with pytest.raises(StartFailed, match="is not yours \\(its certificate is 'user-bob'\\)") as refused:
        asyncio.run(answers_with("user-bob"))
    assert refused.value.reason == "not_yours"
    (event,) = audit.tail(10)
    assert (event["event"], event["user"], event["certificate"]) == ("impostor", "alice", "user-bob")
    assert asyncio.run(answers_with("user-alice"))


@pytest.mark.parametrize("after", ["nothing", "jupyterhub_stopped_it", "a_new_start"])
def test_a_server_whose_start_was_cancelled_is_never_left_held_by_the_hub(monkeypatch, after):
    """JupyterHub's stop during a pending spawn answers 500 and stops nothing when the spawn is
    still pending a second after its cancellation; the server it had begun would stay "ready" at
    the hub's own name. The spawner stops it through the hub once the spawn has ended."""
    from aifactory_workbench.spawners import spawner as module

    stopped = []

    async def stop_through_hub(s):
        stopped.append(s)

    monkeypatch.setattr(module, "stop_through_hub", stop_through_hub)
    monkeypatch.setattr(module, "CANCELLED_START_GRACE", 0.1)
    s = new_spawner()
    s.server = object()  # what JupyterHub's spawn built before start() (its default address)

    async def scenario():
        settling = asyncio.ensure_future(s.settle_cancelled_start(s.engine.starts))
        if after == "jupyterhub_stopped_it":
            s.server = None
        elif after == "a_new_start":
            s.engine.begin(log_path="x-%j.log")
        await settling

    asyncio.run(scenario())
    assert stopped == ([s] if after == "nothing" else [])
