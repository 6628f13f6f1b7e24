"""A notebook run headless as its user's own SLURM job (``aifactory-run-notebook``, papermill):
parameters reach it, the executed notebook lands next to the original under the job's id, and
a failing notebook names its failing cell."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from .conftest import VENV, HubProcess, chromium_page, partition_nodes, serious_violations, sh, shot, sign_in, wait_for

USER = "alice"
FOLDER = Path(f"/home/{USER}/aifw-test-notebook-jobs")


def notebook(path: Path, *cells: str, parameters: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    if parameters:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "aifactory", "display_name": "Python 3 (AI Factory)", "language": "python"}
    nbformat.write(nb, path)
    shutil.chown(path, USER, USER)
    return path


def run_notebook(*args: str) -> str:
    argv = ["sudo", "-u", USER, f"{VENV}/bin/aifactory-run-notebook", *args]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=FOLDER, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def finished(job_id: str, timeout: float = 240) -> list[str]:
    """The status lines of the job once it is done or failed."""

    def status_lines() -> list[str] | None:
        lines = run_notebook("status").splitlines()
        for i, line in enumerate(lines):
            if line.split()[:1] == [job_id] and line.split()[1] in ("done", "failed"):
                return lines[i : i + 3]
        return None

    lines = wait_for(status_lines, timeout, f"notebook job {job_id} finished", every=2, fail=False)
    if not lines:
        raise AssertionError(f"notebook job {job_id} did not finish in {timeout}s:\n{run_notebook('status')}")
    return lines


@pytest.fixture
def folder() -> Iterator[Path]:
    FOLDER.mkdir(exist_ok=True)
    shutil.chown(FOLDER, USER, USER)
    yield FOLDER
    shutil.rmtree(FOLDER, ignore_errors=True)


@pytest.mark.slow
def test_a_notebook_runs_as_its_users_job_with_its_parameters(folder: Path):
    source = notebook(folder / "params.ipynb", "result = n * 6\nprint('result', result)", parameters="n = 1")
    said = run_notebook(
        "run",
        str(source),
        "-p",
        "n",
        "7",
        "--memory",
        "500M",
        "--walltime",
        "00:05:00",
        "--partition",
        "gpp",
        "--constraint",
        "highmem",
    )
    job_id = said.split()[1].rstrip(":")
    assert f"result {folder}/params-job{job_id}.ipynb" in said
    lines = finished(job_id)
    assert lines[0].split()[1] == "done", lines
    executed = folder / f"params-job{job_id}.ipynb"
    assert executed.owner() == USER and (folder / f"params-job{job_id}.log").exists()
    outputs = [o for c in json.loads(executed.read_text())["cells"] for o in c.get("outputs", [])]
    assert any("result 42" in "".join(o.get("text", "")) for o in outputs), outputs
    user, name, node = sh("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "User,JobName,NodeList").strip().split("|")
    assert (user, name) == (USER, "aifw-nb-params")
    assert node in [n.name for n in partition_nodes("gpp") if "highmem" in n.features], "its --constraint"


@pytest.mark.slow
def test_a_failing_notebook_names_its_failing_cell(folder: Path):
    """Its name holds "|", as a file's may: ``status`` read sacct's "|"-separated lines, and one
    such job made it fail for a week (now sacct's fields are separated by the unit separator)."""
    source = notebook(folder / "bro|ken.ipynb", "x = 1", "raise ValueError('boom')", "print('never')")
    said = run_notebook("run", str(source), "--memory", "500M", "--walltime", "00:05:00")
    job_id = said.split()[1].rstrip(":")
    lines = finished(job_id)
    assert lines[0].split()[1] == "failed", lines
    assert "why: cell 2 (\"raise ValueError('boom')\"): ValueError: boom" in "\n".join(lines), lines


@pytest.mark.slow
def test_a_notebook_job_gets_a_temporary_folder_of_its_own(folder: Path):
    """Issue 21, hole 14: a notebook job started from a JupyterLab session used to inherit the
    session's private TMPDIR, which is removed when the session ends while the queued job
    still names it. Played with a TMPDIR that is gone by the time the job runs."""
    session_tmp = Path(sh("sudo", "-u", USER, "mktemp", "-d", "/tmp/aifw-job-0.XXXXXXXXXX").strip())
    # (Jupyter may add the sticky bit to the folder its connection files are in.)
    cell = (
        "import os\nt = os.environ.get('TMPDIR', '')\n"
        "m = os.stat(t).st_mode & 0o777 if os.path.isdir(t) else None\n"
        "print('tmpdir', t, oct(m) if m is not None else 'missing', os.stat(t).st_uid == os.getuid())"
    )
    source = notebook(folder / "tmp.ipynb", cell)
    argv = [
        "sudo",
        "-u",
        USER,
        "env",
        f"TMPDIR={session_tmp}",
        f"{VENV}/bin/aifactory-run-notebook",
        "run",
        str(source),
        "--memory",
        "500M",
        "--walltime",
        "00:05:00",
    ]
    said = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=60, check=True).stdout
    shutil.rmtree(session_tmp)  # the session ended: its private folder is gone
    job_id = said.split()[1].rstrip(":")
    lines = finished(job_id)
    assert lines[0].split()[1] == "done", lines
    executed = folder / f"tmp-job{job_id}.ipynb"
    text = "".join(
        "".join(o.get("text", "")) for c in json.loads(executed.read_text())["cells"] for o in c.get("outputs", [])
    )
    tmpdir, mode, own = text.split("tmpdir ", 1)[1].split()[:3]
    assert tmpdir != str(session_tmp), text
    assert (mode, own) == ("0o700", "True"), text
    assert not Path(tmpdir).exists(), "the job's own folder is removed when it ends"


#: A notebook job's Dask cluster: where its workers come from, and that they answer over TLS.
DASK_CELL = """
import dask.config
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster(cores=1, memory="500MiB", walltime="00:05:00")
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print("dask", dask.config.get("jobqueue.slurm.name"), cluster.scheduler_address.split(":")[0],
      client.submit(sum, [20, 22]).result())
client.close()
cluster.close()
"""


@pytest.mark.slow
def test_a_notebook_jobs_dask_workers_and_credentials_are_its_own(folder: Path):
    """Issue 22, item 5: started from a JupyterLab session (job 999999 here), a notebook job's
    workers were named after the session (its end cancelled them) and used the session's TLS
    credentials, which are removed when the session ends. Played with a session that is gone
    by the time the job runs: its worker name and credentials folder no longer exist."""
    session = {
        "DASK_JOBQUEUE__SLURM__NAME": "aifw-dask-999999",
        "AIFACTORY_DASK_TLS": "/nonexistent/dask-tls",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": "/nonexistent/dask-tls/dask-cert.pem",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": "/nonexistent/dask-tls/dask-key.pem",
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
    }
    source = notebook(folder / "dask.ipynb", DASK_CELL)
    argv = [
        "sudo",
        "-u",
        USER,
        "env",
        *(f"{k}={v}" for k, v in session.items()),
        f"{VENV}/bin/aifactory-run-notebook",
        "run",
        str(source),
        "--memory",
        "1G",
        "--walltime",
        "00:10:00",
    ]
    said = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=60, check=True).stdout
    job_id = said.split()[1].rstrip(":")
    lines = finished(job_id, timeout=400)
    log = (folder / f"dask-job{job_id}.log").read_text(errors="replace")
    assert lines[0].split()[1] == "done", f"{lines}\n{log[-3000:]}"
    executed = json.loads((folder / f"dask-job{job_id}.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert f"dask aifw-dask-{job_id} tls 42" in text, text
    assert sh("squeue", "-h", "--name", f"aifw-dask-{job_id}", "-o", "%i").strip() == "", "its workers outlived it"
    assert not list(Path(f"/home/{USER}/.aifactory/dask-tls").glob(f"job-{job_id}.*")), "its credentials outlived it"


@pytest.mark.slow
def test_the_batch_job_dialog_shows_the_limits_and_the_estimate_and_refuses_a_value_beyond_a_limit(
    folder: Path, demo_setup_hub: HubProcess
):
    """Issue 36, item 2: the dialog had free text fields with no limits and no estimate. Now, for
    the values typed: gpp's limits for alice, the cost, SLURM's start; 200 cores (gpp's nodes have
    112) is marked and said, Submit is disabled, and Enter submits nothing: the dialog is shown
    again with the refusal."""
    hub = demo_setup_hub
    notebook(folder / "limits.ipynb", "print(6 * 7)")
    hub.start_ready(USER)
    dialog = ".jp-Dialog"
    with chromium_page(*hub.chromium_args) as page:
        sign_in(page, hub, USER)
        page.goto(f"{hub.user_url(USER)}lab/tree/{folder.name}/limits.ipynb?reset")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run as Batch Job…')")
        page.wait_for_selector(".aifw-batch-form")
        # The site's notebook-job preset, which alice's JupyterLab job received from the hub.
        assert [page.input_value(f"#aifw-batch-{f}") for f in ("partition", "cpus", "memory", "walltime")] == [
            "gpp",
            "1",
            "2G",
            "00:30:00",
        ]
        page.wait_for_selector(".aifw-batch-start:has-text('SLURM expects it to start')", timeout=30_000)
        limits = page.inner_text(".aifw-batch-limits")
        assert limits.startswith("On gpp: up to 112 cores, ") and "with QoS normal" in limits, limits
        cost = page.inner_text(".aifw-batch-cost")
        assert cost == "This job costs at most 0.50 core-hours if it runs its whole walltime.", cost
        assert page.is_enabled(f"{dialog} button:has-text('Submit job')")
        assert serious_violations(page, within=dialog) == [], "the batch job dialog"
        page.fill("#aifw-batch-cpus", "200")
        refused = page.wait_for_selector(".aifw-batch-refused:has-text('at most 112 on partition gpp')", timeout=30_000)
        assert refused.inner_text() == "Not accepted: cpus: 200 is not accepted; allowed: at most 112 on partition gpp"
        assert page.get_attribute("#aifw-batch-cpus", "aria-invalid") == "true"
        assert page.is_disabled(f"{dialog} button:has-text('Submit job')"), "Submit stays offered beyond a limit"
        assert page.inner_text(".aifw-batch-limits") == limits and page.inner_text(".aifw-batch-start") == ""
        shot(page, "24b-batch-job-beyond-a-limit")
        page.press("#aifw-batch-cpus", "Enter")  # Enter, JupyterLab's accept key, submits nothing refused
        page.wait_for_timeout(1000)
        page.wait_for_selector(".aifw-batch-refused:has-text('at most 112 on partition gpp')", timeout=30_000)
        assert page.input_value("#aifw-batch-cpus") == "200", "the dialog keeps the values typed"
        assert sh("squeue", "-h", "-u", USER, "--name", "aifw-nb-limits", "-o", "%i").strip() == "", "submitted"
        page.fill("#aifw-batch-cpus", "2")
        page.wait_for_selector(".aifw-batch-start:has-text('SLURM expects it to start')", timeout=30_000)
        assert page.inner_text(".aifw-batch-refused") == ""
        assert page.is_enabled(f"{dialog} button:has-text('Submit job')")
        assert "1.00 core-hours" in page.inner_text(".aifw-batch-cost")
        page.click(f"{dialog} button:has-text('Cancel')")
        page.wait_for_selector(dialog, state="detached")
    assert sh("squeue", "-h", "-u", USER, "--name", "aifw-nb-limits", "-o", "%i").strip() == "", "submitted"
