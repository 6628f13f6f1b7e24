"""One test per thing batchspawner 1.3.0 gets wrong with JupyterHub 6 (see slurm_spawner.py).

The failing-job and cancelled-job fixes need a real SLURM: tests/integration/test_spawn.py."""

from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub

from spawners.singleuser import with_port
from spawners.slurm_spawner import SpawnFailed, WorkbenchSpawner

VENV = "/opt/aifactory/venv"


@pytest.fixture
def spawner():
    user = SimpleNamespace(name="alice", url="/user/alice/", escaped_name="alice", server=None, spawners={})
    s = WorkbenchSpawner(
        user=user,
        hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"),
        req_partition="gpp",
        req_qos="interactive",
        req_nprocs="1",
        req_memory="2G",
        req_runtime="01:00:00",
        singleuser_venv=VENV,
        req_homedir="/home/alice",
    )
    s.api_token = "t" * 32
    return s


def test_job_finds_its_python_without_the_hubs_env_keep(spawner):
    """JupyterHub 5.2 dropped PATH & co from env_keep: commands are absolute, PATH is ours."""
    env = spawner.get_env()
    assert env["PATH"].split(":")[0] == f"{VENV}/bin"
    assert "/root" not in env["PATH"]
    assert env["LANG"] == "C.UTF-8"
    assert all(part.startswith(f"{VENV}/bin/") for part in spawner.job_command()[:2])
    script = spawner.batch_script_for(spawner.job_request(), env)
    assert f"exec {VENV}/bin/aifactory-singleuser {VENV}/bin/jupyterhub-singleuser" in script
    assert "PATH" in script.split("--export=")[1].splitlines()[0].split(",")


def test_user_options_are_validated_not_merged_into_the_script(spawner):
    """batchspawner merged raw user_options into the template's variables."""
    spawner.user_options = {"prologue": "touch /tmp/owned", "memory": "4G"}
    with pytest.raises(SpawnFailed, match="prologue"):
        spawner.job_request()
    spawner.user_options = {"memory": "4G\n#SBATCH --uid=0"}
    with pytest.raises(SpawnFailed, match="memory"):
        spawner.job_request()
    spawner.user_options = {"memory": "4G"}
    assert "#SBATCH --mem=4G" in spawner.batch_script_for(spawner.job_request(), spawner.get_env())


def test_a_port_is_taken_only_while_the_server_waits_for_one(spawner):
    """batchspawner's channel set any attribute at any time."""
    assert not spawner.accept_reported_port(40000)
    spawner._waiting_for_port = True
    assert spawner.accept_reported_port(40000) and spawner.port == 40000
    assert not spawner.accept_reported_port(40001) and spawner.port == 40000


def test_failures_carry_a_message_for_the_user():
    error = SpawnFailed("SLURM refused the JupyterLab job: Memory specification can not be satisfied")
    assert error.jupyterhub_message == str(error)


def test_launcher_moves_the_service_url_to_the_chosen_port():
    assert with_port("http://0.0.0.0:0/user/alice/", 45161) == "http://0.0.0.0:45161/user/alice/"


def test_after_a_restart_the_job_token_is_recognised_by_its_hash_only(spawner):
    import hashlib

    spawner.api_token = ""
    spawner.token_sha256 = hashlib.sha256(b"t" * 32).hexdigest()
    assert spawner.owns_token("t" * 32)
    assert not spawner.owns_token("u" * 32)
    spawner.token_sha256 = ""
    assert not spawner.owns_token("")


class FakeSlurm:
    """Accounting says the job was cancelled; counts what the spawner asks."""

    def __init__(self):
        self.cancelled = []

    async def record(self, job_id):
        from aifactory.slurm import JobRecord

        return JobRecord(job_id, "CANCELLED", "0:0", "None", "mn5-n01", "00:01:00")

    async def cancel_named(self, name, user):
        self.cancelled.append(name)


class GoneWatcher:
    async def current(self, max_age):
        import time

        from spawners.watcher import Snapshot

        return Snapshot(jobs={}, taken_at=time.time() + 1)

    def unwatch(self, job_id):
        pass


def test_an_ended_job_is_cleaned_up_once_when_two_polls_notice_it(spawner):
    """The watcher's notice and JupyterHub's periodic poll can run poll() at the same time."""
    import asyncio

    slurm, records = FakeSlurm(), []
    spawner.slurm, spawner.watcher, spawner.job_id = slurm, GoneWatcher(), "42"
    spawner.record = lambda event, **fields: records.append(event)

    async def both():
        return await asyncio.gather(spawner.poll(), spawner.poll())

    assert asyncio.run(both()) == [1, 1]
    assert slurm.cancelled == ["aifw-dask-42"] and records == ["job_end"]
    assert spawner.last_end == "Your JupyterLab job 42 has ended: it was cancelled." and not spawner.job_id
