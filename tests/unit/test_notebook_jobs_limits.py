"""The "Run as batch job" dialog's limits, estimate and cost (issue 36, item 2), and the same
limits on submission, against the recorded SLURM of the mini cluster: alice (account ehpc01, QoS
interactive and normal, normal by default) on gpp (112 cores, 16000M, no GPUs, 2 days) and acc."""

import json
import sys
from types import SimpleNamespace

import pytest

from aifactory_workbench.lab import notebook_jobs
from aifactory_workbench.lab.batch import notebook_job_defaults
from aifactory_workbench.lab.kernel import register
from aifactory_workbench.lab.notebook_jobs import estimate_answer, submit_answer

from .recorded_slurm import FakeSlurm

DEFAULTS = notebook_job_defaults({})


@pytest.fixture
def notebook(tmp_path, monkeypatch):
    """alice's notebook in her JupyterLab's root, in a kernel she has."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    register("aifactory", sys.executable, "AI Factory", [])
    path = tmp_path / "work" / "analysis.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def asked(slurm: FakeSlurm, command: str) -> list[list[str]]:
    return [argv for argv in slurm.commands() if argv[0] == command]


async def ask(notebook, slurm, **values):
    body = {"path": "work/analysis.ipynb", **values}
    return await estimate_answer(body, notebook.parent.parent, DEFAULTS, "alice", slurm)


async def test_the_dialog_shows_the_partitions_limits_the_cost_and_when_slurm_would_start_it(notebook):
    slurm = FakeSlurm()
    code, answer = await ask(notebook, slurm, cpus="4", memory="8G", walltime="02:00:00")
    assert code == 200 and answer["refused"] is None
    assert answer["limits"] == {
        "partition": "gpp",
        "qos": "normal",
        "cpus": 112,
        "memory": "16000M",
        "gpus": 0,
        "walltime": "2-00:00:00",
        "text": "On gpp: up to 112 cores, 16000M of memory, no GPUs, at most 48 h with QoS normal.",
    }
    assert answer["partitions"] == ["gpp", "acc"]
    assert (answer["cost"]["hours"], answer["cost"]["core_hours_text"], answer["cost"]["gpu_hours_text"]) == (
        2.0,
        "8.00",
        "0.00",
    )
    assert answer["start_text"] == "SLURM expects it to start now."
    [test] = asked(slurm, "sbatch")
    assert test[:2] == ["sbatch", "--test-only"] and "--parsable" not in test
    assert {
        "--partition=gpp",
        "--cpus-per-task=4",
        "--mem=8G",
        "--time=02:00:00",
        "--job-name=aifw-nb-analysis",
    } <= set(test), "the options a submission would have"
    assert not slurm.queue_now, "an estimate submits nothing"


async def test_the_walltime_limit_follows_the_qos_chosen(notebook):
    code, answer = await ask(notebook, FakeSlurm(), qos="interactive")
    assert answer["limits"]["walltime"] == "12:00:00" and answer["limits"]["qos"] == "interactive"
    code, answer = await ask(notebook, FakeSlurm(), qos="interactive", walltime="13:00:00")
    assert answer["refused"] == {
        "field": "walltime",
        "message": "walltime: '13:00:00' is not accepted; allowed: at most 12 h on gpp with QoS interactive",
    }


@pytest.mark.parametrize(
    ("values", "field", "said"),
    [
        ({"cpus": "200"}, "cpus", "cpus: 200 is not accepted; allowed: at most 112 on partition gpp"),
        ({"memory": "64G"}, "memory", "at most 16000M on partition gpp"),
        ({"gpus": "1"}, "gpus", "0 on partition gpp"),
        ({"walltime": "3-00:00:00"}, "walltime", "at most 48 h on gpp with QoS normal"),
        ({"account": "ehpc02"}, "account", "allowed: one of ehpc01"),
    ],
)
async def test_a_value_beyond_a_limit_is_refused_with_the_limit_and_slurm_is_not_asked(notebook, values, field, said):
    slurm = FakeSlurm()
    code, answer = await ask(notebook, slurm, **values)
    assert code == 200 and answer["refused"]["field"] == field and said in answer["refused"]["message"]
    assert answer["limits"]["partition"] == "gpp", "the limits stay shown beside the refusal"
    assert not asked(slurm, "sbatch")


async def test_a_partition_not_open_to_the_user_names_those_that_are(notebook):
    code, answer = await ask(notebook, FakeSlurm(), partition="nope")
    assert answer["limits"] is None and answer["partitions"] == ["gpp", "acc"]
    assert answer["refused"] == {
        "field": "partition",
        "message": "partition: 'nope' is not accepted; allowed: one of gpp, acc",
    }


async def test_a_value_its_rule_refuses_is_named_before_slurm_is_asked(notebook):
    slurm = FakeSlurm()
    code, answer = await ask(notebook, slurm, cpus="many")
    assert code == 200 and answer["refused"]["field"] == "cpus" and "a whole number" in answer["refused"]["message"]
    code, answer = await ask(notebook, slurm, walltime="2h")
    assert answer["refused"]["field"] == "walltime" and "HH:MM:SS" in answer["refused"]["message"]
    assert slurm.commands() == []


async def test_slurms_own_refusal_is_shown_with_the_field_it_names(notebook):
    slurm = FakeSlurm()
    slurm.refusal = "Invalid feature specification"
    code, answer = await ask(notebook, slurm, constraint="gpuless")
    assert code == 200 and answer["refused"] == {
        "field": "constraint",
        "message": "SLURM would refuse this job: Invalid feature specification",
    }


async def test_no_answer_from_slurm_is_a_503_and_nothing_is_submitted(notebook):
    down = FakeSlurm(down=True)
    code, answer = await ask(notebook, down)
    assert code == 503 and "Unable to contact slurm controller" in answer["message"]
    code, answer = await submit_answer({"path": "work/analysis.ipynb"}, notebook.parent.parent, DEFAULTS, "alice", down)
    assert code == 503 and not asked(down, "sbatch")


async def test_a_notebook_outside_the_servers_root_is_refused(notebook):
    code, answer = await ask(notebook, FakeSlurm(), path="../../etc/passwd.ipynb")
    assert code == 400 and "not a notebook of this JupyterLab" in answer["message"]


async def test_the_server_refuses_a_submission_beyond_a_limit_and_submits_nothing(notebook):
    """The dialog refuses it first; a request made without the dialog is refused the same way."""
    slurm = FakeSlurm()
    root = notebook.parent.parent
    body = {"path": "work/analysis.ipynb", "cpus": "200"}
    code, answer = await submit_answer(body, root, DEFAULTS, "alice", slurm)
    assert (code, answer["field"]) == (400, "cpus") and "at most 112 on partition gpp" in answer["message"]
    assert not asked(slurm, "sbatch") and not slurm.queue_now
    code, answer = await submit_answer({**body, "cpus": "2"}, root, DEFAULTS, "alice", slurm)
    assert code == 201 and answer["job"] in slurm.queue_now
    [submitted] = asked(slurm, "sbatch")
    assert submitted[:2] == ["sbatch", "--parsable"] and "--cpus-per-task=2" in submitted


def test_the_estimate_has_a_route_of_its_own_before_a_jobs(monkeypatch):
    added = []
    app = SimpleNamespace(settings={"base_url": "/user/alice/"}, add_handlers=lambda host, rules: added.extend(rules))
    monkeypatch.setattr(notebook_jobs, "notebook_job_defaults", lambda env=None: {})
    notebook_jobs._load_jupyter_server_extension(SimpleNamespace(web_app=app, log=SimpleNamespace(info=print)))
    routes = [route for route, _ in added]
    assert dict(added)["/user/alice/aifactory/notebook-jobs/estimate"] is notebook_jobs.NotebookJobEstimateHandler
    assert routes.index("/user/alice/aifactory/notebook-jobs/estimate") < routes.index(
        "/user/alice/aifactory/notebook-jobs/([^/]+)"
    ), "the job's route would take 'estimate' for a job id"
    assert set(vars(notebook_jobs.NotebookJobEstimateHandler)) & {"get", "post", "delete"} == {"post"}
