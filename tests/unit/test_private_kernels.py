"""A kernel's channels reachable by its owner alone (lab/private_kernels.py): Unix sockets in a
folder of mode 0700, never TCP ports that another tenant on the node could subscribe to. The
attack itself (bob reading alice's outputs from her node) is played by
tests/integration/test_kernel_ports.py."""

import asyncio
import os
import shutil
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyter_client.multikernelmanager import AsyncMultiKernelManager

from aifactory_workbench.lab import private_kernels
from aifactory_workbench.lab.private_kernels import PrivateKernelManager, keep_kernels_private, private_folder


@pytest.fixture
def job_folder(monkeypatch):
    """A job's private folder with a path as short as the job script's (pytest's own are too
    long for a Unix socket's path)."""
    folder = Path(tempfile.mkdtemp(prefix="aifw-job-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_every_kernel_of_the_session_listens_on_private_unix_sockets(job_folder):
    """The server's kernel managers are made with the ipc transport, their connection files and
    sockets in a new folder of mode 0700 in the job's private folder; the kernel answers."""

    async def walk() -> tuple[str, dict, str]:
        kernels = AsyncMultiKernelManager(kernel_manager_class="jupyter_client.ioloop.AsyncIOLoopKernelManager")
        folder = keep_kernels_private(SimpleNamespace(kernel_manager=kernels))
        kernel_id = await kernels.start_kernel(kernel_name="python3")
        km = kernels.get_kernel(kernel_id)
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive("print(6 * 7)", timeout=60, output_hook=outputs.append)
            assert reply["content"]["status"] == "ok"
            return folder, km.get_connection_info(), " ".join(sorted(os.listdir(folder)))
        finally:
            client.stop_channels()
            await kernels.shutdown_all(now=True)

    outputs: list[dict] = []
    folder, info, listed = asyncio.run(walk())
    assert Path(folder).parent == job_folder and stat.S_IMODE(os.stat(folder).st_mode) & 0o777 == 0o700
    assert info["transport"] == "ipc" and Path(info["ip"]).parent == Path(folder), info
    assert listed.count("-ipc-") == 5, listed
    assert any(o["content"].get("text") == "42\n" for o in outputs if o["msg_type"] == "stream")


def test_a_private_folder_leaves_room_for_the_sockets_names(monkeypatch):
    monkeypatch.setenv("TMPDIR", "/tmp/" + "x" * 80)
    folder = private_folder()
    try:
        assert Path(folder).parent == Path("/tmp")
        assert len(folder) + private_kernels.SOCKET_NAME_LENGTH <= private_kernels.MAX_SOCKET_PATH
    finally:
        os.rmdir(folder)


@pytest.mark.slow
def test_a_notebook_jobs_kernel_answers_on_private_sockets_that_go_with_it(job_folder):

    async def walk() -> tuple[dict, Path, str]:
        km = PrivateKernelManager(kernel_name="python3")
        await km.start_kernel()
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive("print(6 * 7)", timeout=60, output_hook=outputs.append)
            assert reply["content"]["status"] == "ok"
            info = km.get_connection_info()
            folder = Path(info["ip"]).parent
            sockets = sorted(p.name for p in folder.iterdir() if stat.S_ISSOCK(p.lstat().st_mode))
            return info, folder, " ".join(sockets)
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)

    outputs: list[dict] = []
    info, folder, sockets = asyncio.run(walk())
    assert info["transport"] == "ipc" and folder.parent == job_folder, info
    assert sockets == "kernel-1 kernel-2 kernel-3 kernel-4 kernel-5", sockets
    assert any(o["content"].get("text") == "42\n" for o in outputs if o["msg_type"] == "stream")
    assert not folder.exists(), "the kernel's folder outlived it"


@pytest.mark.slow
def test_papermills_aifactory_engine_runs_the_notebook_in_a_kernel_on_private_sockets(job_folder):
    import nbformat
    import papermill

    code = "import json; from ipykernel.connect import get_connection_file\n"
    code += "info = json.load(open(get_connection_file())); print(info['transport'], info['ip'])"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    source, executed = job_folder / "in.ipynb", job_folder / "out.ipynb"
    nbformat.write(notebook, source)
    papermill.execute_notebook(
        str(source), str(executed), kernel_name="python3", engine_name="aifactory", progress_bar=False
    )
    transport, ip = nbformat.read(executed, 4).cells[0].outputs[0]["text"].split()
    assert transport == "ipc" and Path(ip).parent.parent == job_folder, ip
    assert not Path(ip).parent.exists(), "the kernel's folder outlived the notebook"
