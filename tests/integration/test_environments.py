"""Issue 26 on the real cluster: alice builds her own environment in a job of hers, with a
package the site kernel lacks (a wheel the test writes, no index); her kernel imports it,
SLURMCluster() workers run her environment's Python, a notebook job in her kernel gives the
expected output, and a broken requirement is named and leaves no kernel behind.

Not yet run on the cluster when written (the cluster was another engineer's then)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.wheels import PROBE, PROBE_VERSION, write_wheel

from .conftest import VENV, sh, wait_for

USER = "alice"
HOME = Path(f"/home/{USER}")
FOLDER = HOME / "aifw-test-environments"
ENV = "aifw-test-probe"

WORKERS = f"""
import sys
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=180)
def probe():
    import sys, {PROBE}
    return sys.executable, {PROBE}.__version__
print("KERNEL", sys.executable)
for worker, (python, version) in sorted(client.run(probe).items()):
    print("WORKER", python, version)
client.close(); cluster.close()
"""


def as_alice_in_a_job(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``argv`` as alice, in a SLURM job of hers (where aifactory-env runs: never the login node)."""
    job = ["srun", "--job-name=aifw-test-env", "--partition=gpp", "--time=00:20:00", "--mem=2G", f"--chdir={FOLDER}"]
    return subprocess.run(["sudo", "-u", USER, *job, *argv], capture_output=True, text=True, timeout=timeout)


def aifactory_env(*args: str) -> subprocess.CompletedProcess:
    return as_alice_in_a_job(f"{VENV}/bin/aifactory-env", *args)


@pytest.fixture
def folder() -> Iterator[Path]:
    FOLDER.mkdir(exist_ok=True)
    write_wheel(FOLDER / "wheels", PROBE, PROBE_VERSION)
    (FOLDER / "requirements.txt").write_text(f"{PROBE}=={PROBE_VERSION}\n")
    sh("chown", "-R", f"{USER}:{USER}", str(FOLDER))
    yield FOLDER
    aifactory_env("remove", ENV)
    shutil.rmtree(FOLDER, ignore_errors=True)


@pytest.mark.slow
def test_alices_environment_is_followed_by_her_kernel_her_dask_workers_and_her_notebook_jobs(folder: Path):
    started = time.monotonic()
    made = aifactory_env(
        "create", ENV, "--file", "requirements.txt", "--no-index", "--find-links", str(folder / "wheels")
    )
    built = time.monotonic() - started
    assert made.returncode == 0, made.stderr
    print(f"FIGURE build of the test environment, in a job (srun included): {built:.1f} s")
    python = HOME / ".aifactory" / "envs" / ENV / "bin" / "python"
    spec = json.loads((HOME / ".local/share/jupyter/kernels" / ENV / "kernel.json").read_text())
    assert spec["argv"][0] == str(python)
    lock = (python.parents[1] / "share" / "aifactory" / "kernel.lock").read_text()
    assert f"{PROBE.replace('_', '-')}=={PROBE_VERSION}" in lock.splitlines()

    # SLURMCluster() in her environment's Python: two workers, both on her Python, both import it.
    (folder / "workers.py").write_text(WORKERS)
    sh("chown", f"{USER}:{USER}", str(folder / "workers.py"))
    ran = as_alice_in_a_job(str(python), "workers.py")
    assert ran.returncode == 0, ran.stderr[-3000:]
    lines = ran.stdout.splitlines()
    assert f"KERNEL {python}" in lines
    assert [line for line in lines if line.startswith("WORKER")] == [f"WORKER {python} {PROBE_VERSION}"] * 2

    # A notebook job in her kernel, named by the notebook alone.
    nb = nbformat.v4.new_notebook()
    cell = f"import sys, {PROBE}\nprint('PROBE', {PROBE}.__version__, sys.executable)"
    nb.cells.append(nbformat.v4.new_code_cell(cell))
    nb.metadata["kernelspec"] = {"name": ENV, "display_name": ENV, "language": "python"}
    nbformat.write(nb, folder / "probe.ipynb")
    sh("chown", f"{USER}:{USER}", str(folder / "probe.ipynb"))
    said = subprocess.run(
        ["sudo", "-u", USER, f"{VENV}/bin/aifactory-run-notebook", "run", "probe.ipynb", "--walltime", "00:05:00"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
    )
    assert said.returncode == 0, said.stderr
    job_id = said.stdout.split()[1].rstrip(":")
    executed = folder / f"probe-job{job_id}.ipynb"
    # The cell's source names PROBE too: wait for the job to end, then read its output.
    wait_for(
        lambda: job_id not in sh("squeue", "-h", "-j", job_id, "-o", "%i", check=False),
        300,
        f"notebook job {job_id} to end",
    )
    (output,) = nbformat.read(executed, as_version=4).cells[0].outputs
    assert output.get("text", "").strip() == f"PROBE {PROBE_VERSION} {python}", output


@pytest.mark.slow
def test_a_broken_requirement_is_named_and_leaves_no_kernel(folder: Path):
    (folder / "broken.txt").write_text(f"{PROBE}=={PROBE_VERSION}\naifw-missing==1.0\n")
    sh("chown", f"{USER}:{USER}", str(folder / "broken.txt"))
    made = aifactory_env(
        "create", "aifw-test-broken", "--file", "broken.txt", "--no-index", "--find-links", str(folder / "wheels")
    )
    assert made.returncode != 0 and "'aifw-missing==1.0' failed" in made.stderr
    assert not (HOME / ".local/share/jupyter/kernels/aifw-test-broken").exists()
    assert not [p for p in (HOME / ".aifactory" / "envs").glob("*aifw-test-broken*")]


def test_an_unknown_kernel_is_refused_before_submitting(folder: Path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "nobodys-env", "display_name": "x", "language": "python"}
    nbformat.write(nb, folder / "unknown.ipynb")
    sh("chown", f"{USER}:{USER}", str(folder / "unknown.ipynb"))
    before = sh("squeue", "-h", "-u", USER, "-o", "%i").split()
    said = subprocess.run(
        ["sudo", "-u", USER, f"{VENV}/bin/aifactory-run-notebook", "run", "unknown.ipynb"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
    )
    assert said.returncode != 0 and "kernel 'nobodys-env' is not installed" in said.stderr
    assert not set(sh("squeue", "-h", "-u", USER, "-o", "%i").split()) - set(before), "a job was submitted"
