"""aifactory_workbench.lab.activity without a server: what counts as use, and no cost without a culler."""

import asyncio
from types import SimpleNamespace

from aifactory_workbench.lab.activity import KEY, _load_jupyter_server_extension, mark_use
from aifactory_workbench.slurm.client import squeue_argv

from .fakes import RUNNING
from .recorded_slurm import FakeSlurm


def serverapp(*states: str):
    kernels = [{"id": str(i), "execution_state": s} for i, s in enumerate(states)]
    return SimpleNamespace(
        kernel_manager=SimpleNamespace(list_kernels=lambda: kernels),
        web_app=SimpleNamespace(settings={}),
        log=SimpleNamespace(info=print),
    )


def test_a_busy_kernel_counts_as_use_without_asking_slurm(monkeypatch):
    app, slurm = serverapp("idle", "busy"), FakeSlurm()
    assert asyncio.run(mark_use(app, slurm)) and KEY in app.web_app.settings["last_activity_times"]
    assert slurm.commands() == []


def test_running_worker_jobs_count_as_use_and_idle_is_idle(monkeypatch):
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("DASK_JOBQUEUE__SLURM__NAME", "aifw-dask-42")
    app = serverapp("idle")
    assert asyncio.run(mark_use(app, FakeSlurm().hold(RUNNING, name="aifw-dask-42")))
    idle_app, slurm = serverapp("idle"), FakeSlurm()
    assert not asyncio.run(mark_use(idle_app, slurm)) and "last_activity_times" not in idle_app.web_app.settings
    assert slurm.commands() == [squeue_argv("-u", "alice", "--name", "aifw-dask-42", "-t", "RUNNING")]


def test_without_a_culler_the_extension_does_nothing(monkeypatch):
    started = []

    class Periodic:
        def __init__(self, callback, ms):
            started.append(ms)

        def start(self):
            pass

    monkeypatch.setattr("aifactory_workbench.lab.activity.PeriodicCallback", Periodic)
    monkeypatch.delenv("JUPYTERHUB_ACTIVITY_INTERVAL", raising=False)
    _load_jupyter_server_extension(serverapp("busy"))
    assert started == []
    monkeypatch.setenv("JUPYTERHUB_ACTIVITY_INTERVAL", "10")
    _load_jupyter_server_extension(serverapp("busy"))
    assert started == [5000]
