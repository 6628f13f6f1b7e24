"""aifactory-run-notebook without the cluster: the job's command and options, its checks, its
kernel, and how a failed run is explained."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aifactory_workbench.job import notebook_job_outputs
from aifactory_workbench.lab import batch
from aifactory_workbench.lab.batch import (
    batch_script,
    failing_cell,
    kernel_of,
    main,
    notebook_job_defaults,
    resource_problems,
    sbatch_argv,
    submit,
)
from aifactory_workbench.lab.kernel import register
from aifactory_workbench.slurm.job_fields import USER_OPTIONS


def fake_commands(folder: Path) -> Path:
    """A python that echoes its papermill command (and makes no credentials), and a scancel
    that notes what it was asked: the job's script runs here without SLURM."""
    folder.mkdir()
    (folder / "python").write_text('#!/bin/sh\n[ "$2" = aifactory_workbench.job.dask_tls ] && exit 0\necho "$@"\n')
    (folder / "scancel").write_text(f'#!/bin/sh\necho "$@" >> {folder}/scancelled\n')
    for name in ("python", "scancel"):
        (folder / name).chmod(0o755)
    return folder


def test_any_file_name_and_parameter_stays_one_word_of_the_job(tmp_path):
    hostile = tmp_path / "$(touch pwned) `touch pwned2` it's.ipynb"
    bin = fake_commands(tmp_path / "bin")
    script = batch_script(hostile, [("year", "2021; touch pwned3")], "aifactory", str(bin / "python"))
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"SLURM_JOB_ID": "77", "PATH": f"{bin}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert not list(tmp_path.glob("pwned*"))
    ran = result.stdout.splitlines()[-1]
    assert ran == (
        f"-m papermill {hostile} {hostile.with_suffix('')}-job77.ipynb "
        "--engine aifactory --kernel aifactory --log-output -p year 2021; touch pwned3"
    )


def test_a_notebook_job_has_its_own_dask_workers_and_credentials(tmp_path):
    """Issue 22, item 5: started from alice's session (job 21), a notebook job's Dask workers
    were named aifw-dask-21, so ending the session cancelled them, and its TLS credentials were
    the session's, removed when the session ends. Now both are the job's own (job 77); its
    workers are cancelled when it ends, and its credentials removed."""
    bin = fake_commands(tmp_path / "bin")
    home = tmp_path / "home"
    home.mkdir()
    show = (
        'echo "NAME=$DASK_JOBQUEUE__SLURM__NAME"; echo "TLS=$AIFACTORY_DASK_TLS"; '
        'echo "CERT=$DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"; '
        'echo "ENC=$DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"; ls "$AIFACTORY_DASK_TLS"'
    )
    script = batch_script(tmp_path / "x.ipynb", [], "aifactory", sys.executable).rsplit("\n", 2)[0] + f"\n{show}\n"
    session = {
        "DASK_JOBQUEUE__SLURM__NAME": "aifw-dask-21",
        "AIFACTORY_DASK_TLS": "/session/folder",
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": "/session/folder/dask-cert.pem",
    }
    env = {**session, "SLURM_JOB_ID": "77", "PATH": f"{bin}:/usr/bin:/bin", "HOME": str(home)}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert shown["NAME"] == "aifw-dask-77", result.stdout + result.stderr
    folder = Path(shown["TLS"])
    assert folder.parent == home / ".aifactory" / "dask-tls" and folder.name.startswith("job-77.")
    assert shown["CERT"] == str(folder / "dask-cert.pem") and shown["ENC"] == "True"
    assert {"dask-cert.pem", "dask-key.pem"} <= set(result.stdout.split())
    assert not folder.exists(), "the job's credentials outlived it"
    assert (bin / "scancelled").read_text() == "--name aifw-dask-77\n"


def test_sbatch_gets_the_resources_and_names_the_outputs_after_the_job(tmp_path):
    nb = tmp_path / "analysis.ipynb"
    resources = notebook_job_defaults({}) | {
        "partition": "gpp",
        "account": "ehpc01",
        "cpus": 4,
        "memory": "8G",
        "walltime": "02:00:00",
        "constraint": "highmem",
    }
    argv = sbatch_argv(nb, resources)
    assert "--job-name=aifw-nb-analysis" in argv and f"--output={tmp_path}/analysis-job%j.log" in argv
    assert {
        "--cpus-per-task=4",
        "--mem=8G",
        "--time=02:00:00",
        "--partition=gpp",
        "--account=ehpc01",
        "--constraint=highmem",
    } <= set(argv)
    assert not [a for a in argv if a.startswith(("--qos", "--reservation", "--gres"))], "unset asks for nothing"
    assert notebook_job_outputs(nb, "12") == (tmp_path / "analysis-job12.ipynb", tmp_path / "analysis-job12.log")


def test_resources_default_to_the_sites_notebook_job_preset_never_the_sessions(monkeypatch, tmp_path):
    """Issue 36, item 2: the dialog offered the session's acc, 20 cores, 6144M, 1 h, and a
    20-second notebook waited more than 2 hours while gpp was idle. The defaults are now the
    site's notebook-job preset, whatever session the job is started from."""
    session = {"SLURM_JOB_PARTITION": "acc", "SLURM_CPUS_PER_TASK": "20", "SLURM_MEM_PER_NODE": "6144"}
    for name, value in session.items():
        monkeypatch.setenv(name, value)
    here = notebook_job_defaults({})
    assert {k: here[k] for k in ("partition", "account", "cpus", "memory", "gpus", "walltime")} == {
        "partition": "gpp",
        "account": "",
        "cpus": 1,
        "memory": "2G",
        "gpus": 0,
        "walltime": "00:30:00",
    }
    # The site's, as the JupyterLab job's script exports it (tests/unit/test_batch_site_preset.py).
    site = {"AIFACTORY_NOTEBOOK_JOB": '{"partition": "short", "cpus": 2, "walltime": "00:10:00"}'}
    theirs = notebook_job_defaults(site)
    assert (theirs["partition"], theirs["cpus"], theirs["memory"], theirs["walltime"]) == ("short", 2, "", "00:10:00")
    assert set(here) == set(USER_OPTIONS), "every job field has a notebook-job value"
    assert resource_problems(notebook_job_defaults({})) == []
    bad = resource_problems(
        notebook_job_defaults({})
        | {
            "partition": "gpp\n#SBATCH --uid=0",
            "cpus": 0,
            "memory": "lots",
            "walltime": "2h",
            "constraint": "a b",
            "nodes": 3,
        }
    )
    assert [p.split()[0] for p in bad] == [
        "--nodes:",
        "--partition",
        "--cpus",
        "--memory",
        "--walltime",
        "--constraint",
    ]


def test_the_failing_cell_is_named_with_its_error(tmp_path):
    executed = tmp_path / "x-job1.ipynb"
    cells = [
        {"cell_type": "markdown", "source": "# title"},
        {"cell_type": "code", "source": "x = 1", "outputs": []},
        {
            "cell_type": "code",
            "source": ["y = x / 0\n", "print(y)"],
            "outputs": [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"}],
        },
    ]
    executed.write_text(json.dumps({"cells": cells}))
    assert failing_cell(executed) == "cell 2 ('y = x / 0'): ZeroDivisionError: division by zero"
    assert failing_cell(Path(tmp_path / "missing.ipynb")) == ""


class NoSbatch:
    """A SLURM that records what was submitted (and fails the test when nothing should be)."""

    def __init__(self, allowed: bool):
        self.allowed, self.scripts = allowed, []

    def run_blocking(self, argv, stdin=""):
        assert self.allowed, f"submitted although it should not have: {argv}"
        self.scripts.append(stdin)
        return subprocess.CompletedProcess(argv, 0, stdout="91\n", stderr="")


def notebook_naming(path: Path, kernel: str) -> Path:
    path.write_text(json.dumps({"cells": [], "metadata": {"kernelspec": {"name": kernel}}, "nbformat": 4}))
    return path


def test_a_notebook_job_runs_in_the_kernel_the_notebook_names_the_users_own_included(tmp_path, monkeypatch, capsys):
    """Issue 26, item 3: the notebook's kernel (metadata.kernelspec.name), a user's own kernel
    (aifactory-env, aifactory-kernel register) as well as the site's."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    register("my-env", sys.executable, "My env", [])
    notebook = notebook_naming(tmp_path / "mine.ipynb", "my-env")
    assert kernel_of(notebook) == "my-env"
    slurm = NoSbatch(allowed=True)
    monkeypatch.setattr("aifactory_workbench.lab.batch.Slurm", lambda: slurm)
    assert main(["run", str(notebook)]) == 0
    assert "--kernel my-env --log-output" in slurm.scripts[0]
    assert main(["run", str(notebook), "--kernel", "aifactory"]) == 0
    assert "--kernel aifactory --log-output" in slurm.scripts[1]
    assert kernel_of(tmp_path / "no-metadata.ipynb") == "aifactory"


def test_an_unknown_kernel_is_refused_before_anything_is_submitted(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    notebook = notebook_naming(tmp_path / "theirs.ipynb", "bobs-env")
    with pytest.raises(SystemExit, match=r"kernel 'bobs-env' is not installed here \(kernels: .*aifactory.*--kernel"):
        submit(notebook, [], kernel_of(notebook), notebook_job_defaults({}), NoSbatch(allowed=False))


class _Accounting:
    """sacct's notebook jobs, as the Slurm client gives them (oldest first)."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.rows = rows

    def job_rows_blocking(self, fields: list[str], user: str) -> list[dict[str, str]]:
        return self.rows


def test_status_words_a_cancelled_job_and_names_only_the_outputs_that_are_there(tmp_path, capsys, monkeypatch):
    """Issue 36, item 10: JupyterLab's panel said "failed (cancelled)" for a job cancelled while
    queued, with an "Open result" that opened nothing: no executed notebook, no log were written."""
    from aifactory_workbench.lab import batch

    row = {"JobName": "aifw-nb-hello", "WorkDir": str(tmp_path), "Start": "None", "End": "Unknown"}
    ran, log = notebook_job_outputs(tmp_path / "hello.ipynb", "12")
    ran.write_text("{}")
    log.write_text("ran\n")
    slurm = _Accounting(
        [
            {**row, "JobID": "11", "State": "CANCELLED by 1001"},  # cancelled while queued
            {**row, "JobID": "12", "State": "COMPLETED"},
            {**row, "JobID": "13", "State": "TIMEOUT"},
        ]
    )
    jobs = {j["job"]: j for j in batch.status("alice", slurm)}
    assert [j["job"] for j in batch.status("alice", slurm)] == ["13", "12", "11"]
    assert {k: jobs["11"][k] for k in ("state", "state_text", "result", "log")} == {
        "state": "cancelled",
        "state_text": "cancelled",
        "result": "",
        "log": "",
    }
    assert (jobs["12"]["state_text"], jobs["12"]["result"], jobs["12"]["log"]) == ("done", str(ran), str(log))
    assert (jobs["13"]["state_text"], jobs["13"]["result"]) == ("failed (timeout)", "")
    monkeypatch.setattr(batch, "Slurm", lambda: slurm)
    assert main(["status"]) == 0
    said = capsys.readouterr().out
    assert "11       cancelled" in said and "job11" not in said, said
    assert f"result {ran}" in said and f"log {log}" in said, said


def test_the_help_reads_as_plain_text_with_its_examples(capsys):
    """issue 36: `aifactory-run-notebook --help` showed reStructuredText's ``backticks``."""
    with pytest.raises(SystemExit):
        batch.main(["--help"])
    said = capsys.readouterr().out
    assert "``" not in said
    assert "aifactory-run-notebook: run a notebook headless" in said.replace("\n", " ")
    assert "aifactory-run-notebook run analysis.ipynb -p year 2021" in said  # the examples, as written


class _Cancelling(_Accounting):
    """Accounting's notebook jobs, and the commands run (scancel)."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        super().__init__(rows)
        self.ran: list[list[str]] = []

    def run_blocking(self, argv: list[str]) -> None:
        self.ran.append(argv)


def test_cancel_cancels_only_the_users_own_live_notebook_jobs(tmp_path, monkeypatch, capsys):
    """Issue 36, item 2: a queued notebook job could not be cancelled from the command that
    submitted it. `cancel JOBID` cancels one of the user's queued or running notebook jobs, and
    names why it does not for any other job."""
    row = {"JobName": "aifw-nb-hello", "WorkDir": str(tmp_path), "Start": "None", "End": "Unknown"}
    slurm = _Cancelling(
        [
            {**row, "JobID": "21", "State": "PENDING"},
            {**row, "JobID": "22", "State": "COMPLETED"},
            {**row, "JobName": "aifw-jupyterlab", "JobID": "23", "State": "RUNNING"},  # a session
        ]
    )
    monkeypatch.setattr(batch, "Slurm", lambda: slurm)
    monkeypatch.setenv("USER", "alice")
    assert main(["cancel", "21"]) == 0
    assert slurm.ran == [["scancel", "21"]] and "job 21" in capsys.readouterr().out
    for job, why in [
        ("22", r"has already ended \(done\)"),
        ("23", "is not one of your notebook jobs"),
        ("99", "is not"),
    ]:
        with pytest.raises(SystemExit, match=why):
            main(["cancel", job])
    with pytest.raises(SystemExit, match="not a job id"):
        main(["cancel", "21,23"])
    assert slurm.ran == [["scancel", "21"]], "nothing else cancelled"


def test_the_panels_cancel_follows_the_commands_rule_and_words_each_refusal(tmp_path):
    """Issue 36, item 2: JupyterLab's Notebook jobs panel had no Cancel. ``DELETE
    aifactory/notebook-jobs/JOBID`` cancels through batch.cancel (one home for the rule): the
    user's own live notebook job is cancelled; anything else is a 400 that says why, and SLURM
    not answering a 503."""
    from aifactory_workbench.lab.notebook_jobs import cancel_answer
    from aifactory_workbench.slurm.parsers import SlurmUnavailable

    row = {"JobName": "aifw-nb-hello", "WorkDir": str(tmp_path), "Start": "None", "End": "Unknown"}
    slurm = _Cancelling(
        [
            {**row, "JobID": "21", "State": "RUNNING"},
            {**row, "JobID": "22", "State": "CANCELLED by 1001"},
            {**row, "JobName": "aifw-dask-21", "JobID": "23", "State": "RUNNING"},  # a Dask worker
        ]
    )
    code, said = cancel_answer("21", "alice", slurm)
    assert code == 200 and said.startswith("job 21 (") and "cancelled" in said
    assert cancel_answer("22", "alice", slurm) == (400, "job 22 has already ended (cancelled)")
    assert cancel_answer("23", "alice", slurm) == (400, "job 23 is not one of your notebook jobs (see status)")
    assert cancel_answer("../21", "alice", slurm)[0] == 400
    assert slurm.ran == [["scancel", "21"]], "nothing else cancelled"

    class Down(_Cancelling):
        def run_blocking(self, argv):
            raise SlurmUnavailable("scancel did not answer within 30s")

    code, said = cancel_answer("21", "alice", Down(slurm.rows))
    assert code == 503 and "did not answer" in said


def test_the_panels_cancel_has_a_route_of_its_own_beside_the_list(monkeypatch):
    from types import SimpleNamespace

    from aifactory_workbench.lab import notebook_jobs

    added = []
    app = SimpleNamespace(settings={"base_url": "/user/alice/"}, add_handlers=lambda host, rules: added.extend(rules))
    monkeypatch.setattr(notebook_jobs, "notebook_job_defaults", lambda: {})
    notebook_jobs._load_jupyter_server_extension(SimpleNamespace(web_app=app, log=SimpleNamespace(info=print)))
    routes = dict(added)
    assert routes["/user/alice/aifactory/notebook-jobs"] is notebook_jobs.NotebookJobsHandler
    assert routes["/user/alice/aifactory/notebook-jobs/([^/]+)"] is notebook_jobs.NotebookJobHandler
    assert "delete" in vars(notebook_jobs.NotebookJobHandler) and "post" not in vars(notebook_jobs.NotebookJobHandler)


class _Queued(_Accounting):
    """Accounting's notebook jobs, and the controller's queue as the mini cluster's squeue printed it."""

    def __init__(self, rows: list[dict[str, str]], queue: list) -> None:
        super().__init__(rows)
        self.queue = queue
        self.asked: list[list[str]] = []

    def run_blocking(self, argv: list[str], stdin: str | None = None, cwd: str | None = None):
        from aifactory_workbench.slurm.client import CommandResult
        from tests.unit.recorded_slurm import check_format, squeue_line

        check_format(argv)  # the formats' own field list, as the real client asks
        self.asked.append(argv)
        wanted = argv[argv.index("-j") + 1].split(",")
        lines = "".join(squeue_line(info) + "\n" for info in self.queue if info.job_id in wanted)
        return CommandResult(argv, 0, lines, "")


def test_a_queued_notebook_job_says_why_it_waits_and_when_slurm_expects_it_to_start(tmp_path, capsys, monkeypatch):
    """Issue 36, item 2: a queued notebook job said only "queued" while it waited two hours for an
    accelerator node. Its line now says SLURM's reason and expected start in the words of the
    session's queued page (slurm/pending.py), asked of squeue in one call for the queued jobs
    only; a job SLURM has not placed yet says so, and a running one says nothing of the sort."""
    import datetime as dt
    from dataclasses import replace

    from tests.unit.recorded_slurm import RECORDED_QUEUE

    soon = (dt.datetime.now() + dt.timedelta(minutes=12, seconds=20)).isoformat(timespec="seconds")
    pending = RECORDED_QUEUE["PENDING"]
    row = {"JobName": "aifw-nb-hello", "WorkDir": str(tmp_path), "Start": "Unknown", "End": "Unknown"}
    slurm = _Queued(
        [
            {**row, "JobID": "31", "State": "PENDING"},
            {**row, "JobID": "32", "State": "PENDING"},
            {**row, "JobID": "33", "State": "RUNNING"},
        ],
        [
            replace(pending, job_id="31", start_time=soon),
            replace(pending, job_id="32", reason="None", start_time="N/A"),
        ],
    )
    jobs = {j["job"]: j for j in batch.status("alice", slurm)}
    assert jobs["31"]["waiting"].startswith("waiting for free CPUs, memory or GPUs; SLURM expects it to start at ")
    assert jobs["31"]["waiting"].endswith("(in about 12 min).")
    assert jobs["32"]["waiting"] == "waiting for the scheduler to place it."
    assert jobs["33"]["waiting"] == "" and jobs["31"]["state_text"] == "queued"
    assert slurm.asked == [["squeue", "-h", "-j", "32,31", "-o", slurm.asked[0][-1]]]
    monkeypatch.setattr(batch, "Slurm", lambda: slurm)
    assert main(["status"]) == 0
    assert "waiting: waiting for the scheduler to place it." in capsys.readouterr().out


def test_without_a_queued_job_squeue_is_not_asked_and_its_silence_hides_nothing_else(tmp_path):
    row = {"JobName": "aifw-nb-hello", "WorkDir": str(tmp_path), "Start": "None", "End": "Unknown"}
    slurm = _Queued([{**row, "JobID": "41", "State": "COMPLETED"}], [])
    assert [j["waiting"] for j in batch.status("alice", slurm)] == [""] and slurm.asked == []

    class Down(_Queued):
        def run_blocking(self, argv, stdin=None, cwd=None):
            from aifactory_workbench.slurm.parsers import SlurmUnavailable

            raise SlurmUnavailable("squeue did not answer within 30s")

    jobs = batch.status("alice", Down([{**row, "JobID": "42", "State": "PENDING"}], []))
    assert [(j["state_text"], j["waiting"]) for j in jobs] == [("queued", "")]
