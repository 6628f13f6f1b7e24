"""A kernel in a SLURM job of its own (lab/slurm_kernel.py): the kernelspec's settings checked
by name and by rule, the job's script, and the node's address the kernel binds to. The kernel's
whole life on the mini cluster, and bob against it, is tests/integration/test_kernel_anywhere.py."""

import asyncio
import json
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyter_client.connect import port_names
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

from aifactory_workbench.lab import kernel_node, slurm_kernel
from aifactory_workbench.lab.kernel_node import node_address
from aifactory_workbench.lab.slurm_kernel import KernelJobsSeen, SlurmKernelProvisioner, kernel_script, refused_settings
from aifactory_workbench.slurm.client import squeue_argv
from aifactory_workbench.slurm.parsers import JobInfo, JobRecord

from .recorded_slurm import RECORDED_QUEUE, FakeSlurm

SPEC = KernelSpec(display_name="Python on acc", language="python", argv=["python", "-m", "ipykernel_launcher"])


def provisioner(**config) -> SlurmKernelProvisioner:
    return SlurmKernelProvisioner(kernel_id="k1", kernel_spec=SPEC, **config)


def test_a_misspelt_setting_is_refused_by_name_with_the_one_meant():
    assert refused_settings(["partiton", "gpus", "colour"]) == [
        "'partiton' is not a setting (did you mean 'partition'?)",
        "'colour' is not a setting",
    ]
    with pytest.raises(ValueError, match="did you mean 'memory'"):
        provisioner(partition="acc", memroy="8G")


def test_the_job_takes_the_sessions_account_and_no_more_time_than_the_session_has():
    found = provisioner(partition="acc", gpus=1, walltime="02:00:00").settings(3600, {"SLURM_JOB_ACCOUNT": "ehpc01"})
    assert found["account"] == "ehpc01" and found["gpus"] == 1
    assert found["walltime"] < "01:00:00", found["walltime"]
    named = provisioner(partition="acc", account="ehpc02").settings(None, {"SLURM_JOB_ACCOUNT": "ehpc01"})
    assert named["account"] == "ehpc02" and named["walltime"] == "01:00:00"


@pytest.mark.parametrize(
    "config, said",
    [({}, "names no partition"), ({"partition": "acc", "memory": "lots"}, "memory: 'lots' is not accepted")],
)
def test_a_kernelspec_asking_what_the_rules_refuse_is_told_before_anything_is_submitted(config, said):
    with pytest.raises(ValueError, match=said):
        provisioner(**config).settings(None, {})


def test_the_job_script_ends_the_kernel_with_its_session_and_starts_it_on_its_node(tmp_path):
    script = kernel_script(
        "/opt/venv/bin/python",
        "123",
        ["/opt/venv/bin/python", "-m", "ipykernel_launcher", "-f", "c f"],
        tmp_path / "c f",
        {"partition": "acc", "account": "ehpc01"},
    )
    assert "squeue -h -j 123 -o %T" in script and 'scancel "$SLURM_JOB_ID"' in script
    assert f"-m aifactory_workbench.lab.kernel_node on-node '{tmp_path / 'c f'}' -- /opt/venv/bin/python" in script
    assert 'export TMPDIR="$AIFW_PRIVATE"' in script, "the kernel's own private folder, not the session's"
    assert "DASK_JOBQUEUE__SLURM__QUEUE=acc\n" in script and "DASK_JOBQUEUE__SLURM__ACCOUNT=ehpc01\n" in script
    (on_exit,) = [line for line in script.splitlines() if line.endswith("' EXIT")]
    assert f" {tmp_path}'" in on_exit, "the kernel's folder (its keys) is removed however the job ends"
    (tmp_path / "job.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "job.sh")], check=False).returncode == 0


def test_the_kernel_binds_where_slurm_reaches_its_node(tmp_path, monkeypatch):
    said = SimpleNamespace(stdout="NodeName=mn5-a01 Arch=x86_64 NodeAddr=127.0.0.9 NodeHostName=mn5-a01\n")
    slurm = SimpleNamespace(run_blocking=lambda argv: said)
    assert node_address(slurm, "mn5-a01") == "127.0.0.9"
    connection = tmp_path / "connection.json"
    connection.write_text(json.dumps({"ip": "", "shell_port": 0, "key": "k"}))
    monkeypatch.setattr(kernel_node, "Slurm", lambda: slurm)
    monkeypatch.setenv("SLURMD_NODENAME", "mn5-a01")
    run: list[list[str]] = []
    monkeypatch.setattr(kernel_node.os, "execvp", lambda path, argv: run.append(argv))
    assert kernel_node.main(["on-node", str(connection), "--", "python", "-m", "ipykernel_launcher"]) == 1
    assert json.loads(connection.read_text()) == {"ip": "127.0.0.9", "shell_port": 0, "key": "k"}
    assert connection.stat().st_mode & 0o777 == 0o600 and run == [["python", "-m", "ipykernel_launcher"]]


def test_the_kernels_folder_is_its_owners_alone(tmp_path):
    folder = slurm_kernel.kernel_folder(tmp_path)
    assert folder.parent == tmp_path / ".aifactory" / "kernels"
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.parent.stat().st_mode & 0o777 == 0o700
    assert Path(folder).name.startswith("kernel-")


class QueueFake:
    """SLURM as the kernel's provisioner asks it: its job submitted as 123, then queued (or gone)."""

    def __init__(self, queued: bool = True) -> None:
        self.queued, self.cancelled = queued, []

    async def run(self, argv, stdin=None, env=None):
        assert argv[:2] == ["sbatch", "--parsable"] and "--partition=acc" in argv
        return SimpleNamespace(stdout="123\n")

    async def job(self, job_id):
        return (
            JobInfo(job_id, "PENDING", "alice", "acc", "", "Resources", "2030-01-01T10:00:00") if self.queued else None
        )

    async def accounting(self, job_id):
        return JobRecord(job_id, "FAILED", "1:0", "NonZeroExitCode")

    async def cancel(self, job_id, *, user):
        self.cancelled.append(job_id)


def waiting_provisioner(tmp_path, monkeypatch, slurm: QueueFake, timeout: float) -> SlurmKernelProvisioner:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(slurm_kernel.Path, "home", lambda: tmp_path)
    p = provisioner(partition="acc", start_timeout=timeout)
    p.slurm = slurm
    p.folder = slurm_kernel.kernel_folder(tmp_path)
    (p.folder / "connection.json").write_text(json.dumps({"ip": "", "shell_port": 0}))
    return p


def test_a_kernel_job_that_waits_too_long_is_cancelled_and_the_notebook_told_why(tmp_path, monkeypatch):
    slurm = QueueFake()
    p = waiting_provisioner(tmp_path, monkeypatch, slurm, timeout=0.1)
    with pytest.raises(slurm_kernel.KernelJobError, match="waited more than 0 s for acc and was cancelled: waiting"):
        asyncio.run(p.launch_kernel(["python"], env={}))
    assert slurm.cancelled == ["123"] and p.job_id == ""


def test_a_kernel_job_that_ends_before_its_kernel_listens_is_named_with_slurms_words(tmp_path, monkeypatch):
    p = waiting_provisioner(tmp_path, monkeypatch, QueueFake(queued=False), timeout=60)
    with pytest.raises(slurm_kernel.KernelJobError, match="job 123 ended before its kernel started: FAILED"):
        asyncio.run(p.launch_kernel(["python"], env={}))


def test_a_server_stopped_while_the_kernel_job_waits_leaves_no_job(tmp_path, monkeypatch):
    slurm = QueueFake()
    p = waiting_provisioner(tmp_path, monkeypatch, slurm, timeout=60)

    async def stopped() -> None:
        start = asyncio.ensure_future(p.launch_kernel(["python"], env={}))
        await asyncio.sleep(0.3)
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start

    asyncio.run(stopped())
    assert slurm.cancelled == ["123"]


class KernelManagerFake:
    """jupyter_server's kernel manager as kernel_jobs reads it: its kernels' ids, each kernel's
    manager with its provisioner."""

    def __init__(self, provisioners: dict) -> None:
        self.provisioners = provisioners

    def list_kernel_ids(self) -> list[str]:
        return list(self.provisioners)

    def get_kernel(self, kernel_id: str):
        return SimpleNamespace(provisioner=self.provisioners[kernel_id])


def in_job(job_id: str, partition: str = "acc", **config) -> SlurmKernelProvisioner:
    p = provisioner(partition=partition, gpus=1, **config)
    p.job_id = job_id
    return p


def kernels_in_jobs() -> KernelManagerFake:
    """Three kernels in jobs of their own (running, queued, ended), a local one and one whose job
    is not submitted yet."""
    return KernelManagerFake(
        {
            "k-run": in_job("124"),
            "k-local": SimpleNamespace(job_id="9"),  # another provisioner: not a SLURM kernel
            "k-wait": in_job("125"),
            "k-new": in_job(""),
            "k-gone": in_job("126", partition="gpp"),
        }
    )


def test_the_status_bar_reads_each_kernels_job_from_one_squeue_call():
    slurm = FakeSlurm()
    slurm.hold(replace(RECORDED_QUEUE["RUNNING"], job_id="124", time_left="1:30:00"), "aifw-kernel-7")
    slurm.hold(replace(RECORDED_QUEUE["PENDING"], job_id="125"), "aifw-kernel-7")
    run, wait, gone = asyncio.run(slurm_kernel.kernel_jobs(kernels_in_jobs(), slurm))
    assert slurm.commands() == [squeue_argv("-j", "124,125,126")]
    assert run == {
        "kernel_id": "k-run",
        "job_id": "124",
        "partition": "acc",
        "node": "mn5-a01",
        "state": "running",
        "time_left_text": "1 h 30 min",
        "detail": "",
        "notice": "",
        "cancel": "",
    }
    assert (wait["kernel_id"], wait["state"], wait["node"], wait["time_left_text"]) == ("k-wait", "queued", "", "")
    assert wait["detail"].startswith("waiting for free"), wait["detail"]
    assert (gone["job_id"], gone["partition"], gone["state"], gone["detail"]) == (
        "126",
        "gpp",
        "ended",
        slurm_kernel.NOT_HELD,
    )


def test_when_slurm_does_not_answer_each_kernels_entry_says_so_and_nothing_raises():
    slurm = FakeSlurm(down=True)
    entries = asyncio.run(slurm_kernel.kernel_jobs(kernels_in_jobs(), slurm))
    assert [(e["kernel_id"], e["job_id"], e["partition"]) for e in entries] == [
        ("k-run", "124", "acc"),
        ("k-wait", "125", "acc"),
        ("k-gone", "126", "gpp"),
    ]
    assert {(e["state"], e["detail"], e["node"], e["time_left_text"]) for e in entries} == {
        ("unknown", slurm_kernel.UNANSWERED, "", "")
    }
    assert len(slurm.commands()) == 1


def test_a_server_without_kernels_in_jobs_asks_squeue_nothing():
    slurm = FakeSlurm(down=True)
    manager = KernelManagerFake({"k-local": SimpleNamespace(job_id="9"), "k-new": in_job("")})
    assert asyncio.run(slurm_kernel.kernel_jobs(manager, slurm)) == []
    assert slurm.commands() == []


class IdleKernelsFake(KernelManagerFake):
    """The kernel manager as the idle culler reads it: each kernel's state, how long it has been
    idle and how many pages are connected to it (kernel id -> provisioner, state, seconds, pages)."""

    def __init__(self, **kernels: tuple) -> None:
        super().__init__({kernel_id: said[0] for kernel_id, said in kernels.items()})
        self.said, self.now, self.shut = kernels, datetime.now(UTC), []

    def get_kernel(self, kernel_id: str) -> SimpleNamespace:
        provisioner, state, idle, _ = self.said[kernel_id]
        return SimpleNamespace(
            provisioner=provisioner, execution_state=state, last_activity=self.now - timedelta(seconds=idle)
        )

    def kernel_model(self, kernel_id: str) -> dict:
        return {"id": kernel_id, "connections": self.said[kernel_id][3]}

    async def shutdown_kernel(self, kernel_id: str) -> None:
        self.shut.append(kernel_id)


def test_a_kernel_left_idle_with_no_notebook_connected_is_shut_down_and_no_other():
    kernels = IdleKernelsFake(
        left=(in_job("77", idle_timeout=600), "idle", 601, 0),
        open_page=(in_job("78"), "idle", 3600, 1),  # its notebook is still open: kept
        busy=(in_job("79"), "busy", 3600, 0),  # still computing, page closed: kept
        recent=(in_job("80"), "idle", 599, 0),
        never=(in_job("81", idle_timeout=0), "idle", 86400, 0),
        session_local=(None, "idle", 86400, 0),  # the session's own kernels are not the culler's
    )
    log = SimpleNamespace(warning=lambda *args: None)
    assert asyncio.run(slurm_kernel.cull_idle_kernels(kernels, log)) == ["left"] and kernels.shut == ["left"]


def test_pages_polling_the_session_share_one_squeue_call_until_the_kernels_change():
    slurm = FakeSlurm()
    slurm.hold(replace(RECORDED_QUEUE["RUNNING"], job_id="124"), "aifw-kernel-7")
    kernels, seen = KernelManagerFake({"k-run": in_job("124")}), KernelJobsSeen(slurm)
    first = asyncio.run(seen(kernels))
    assert [asyncio.run(seen(kernels)) for _ in range(5)] == [first] * 5 and len(slurm.commands()) == 1
    kernels.provisioners["k-new"] = in_job("125")  # a notebook starts another: asked at once
    assert [k["job_id"] for k in asyncio.run(seen(kernels))] == ["124", "125"] and len(slurm.commands()) == 2


def test_a_connection_file_being_rewritten_by_the_kernel_is_read_again_not_an_error(tmp_path):
    """The kernel removes its connection file, then writes it anew: a start that read it in
    between answered 500 (seen in the suite)."""
    path = tmp_path / "connection.json"
    assert slurm_kernel.read_connection_file(path) == {}  # removed
    path.write_text('{"ip": "10.0.0.1", "shell_po')  # half written
    assert slurm_kernel.read_connection_file(path) == {}
    path.write_text('{"ip": "10.0.0.1", "shell_port": 5}')
    assert slurm_kernel.read_connection_file(path) == {"ip": "10.0.0.1", "shell_port": 5}


def test_a_kernel_whose_job_slurm_ends_is_restarted_once_and_its_notebook_is_told_how():
    """Its walltime, its node or an operator ends the kernel's job: one automatic restart (a new
    job), not five, and the session answer says how the job ended, in accounting's words, even
    once jupyter_server has forgotten the kernel."""
    slurm = FakeSlurm()
    slurm.hold(replace(RECORDED_QUEUE["RUNNING"], job_id="124"), "aifw-kernel-7")
    kernel = in_job("124")
    kernel.kernel_id, kernel.slurm = "k-walltime", slurm
    assert asyncio.run(kernel.poll()) is None
    slurm.end_job("124", "TIMEOUT")
    kernel._seen = (0.0, None)  # its next poll asks squeue
    assert asyncio.run(kernel.poll()) == 0
    (told,) = asyncio.run(slurm_kernel.kernel_jobs(KernelManagerFake({}), slurm))  # the dead kernel, forgotten
    assert (told["kernel_id"], told["job_id"], told["state"]) == ("k-walltime", "124", "ended")
    assert (
        told["detail"]
        == told["notice"]
        == (
            "The kernel's job 124 on acc ended: it reached its walltime limit."
            " Its variables are gone; a restart runs in a new job."
        )
    )
    assert slurm_kernel.JobKernelRestarter().restart_limit == 1  # once, in a new job; not five jobs
    slurm_kernel.SlurmKernelProvisioner.ended.clear()


def test_a_kernel_shut_down_is_not_told_as_ended_by_slurm():
    slurm = FakeSlurm()
    kernel = in_job("124")
    kernel.kernel_id, kernel.slurm, kernel.parent = "k-shut", slurm, AsyncKernelManager()
    kernel.parent.shutting_down = True
    assert asyncio.run(kernel.poll()) == 0  # its job is gone: the shutdown cancelled it
    assert asyncio.run(slurm_kernel.kernel_jobs(KernelManagerFake({}), slurm)) == []


def test_a_kernel_restarted_in_a_new_job_is_alive_not_its_ended_jobs_last_answer(tmp_path, monkeypatch):
    """The restarter asked within seconds of the restart; the ended job's cached answer (0) said
    the new kernel was dead, and the restart failed (seen walking it in Chromium)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    slurm = FakeSlurm()
    kernel = provisioner(partition="acc")
    kernel.slurm, kernel.parent, kernel.folder = slurm, AsyncKernelManager(), tmp_path
    kernel._seen = (time.monotonic(), 0)  # its ended job's answer, a second ago
    ports = {name: 5000 + i for i, name in enumerate(port_names)}
    (tmp_path / "connection.json").write_text(json.dumps({"ip": "10.0.0.9", "key": "k", **ports}))
    asyncio.run(kernel.launch_kernel(["python", "-m", "ipykernel_launcher"]))
    assert kernel.job_id and asyncio.run(kernel.poll()) is None
