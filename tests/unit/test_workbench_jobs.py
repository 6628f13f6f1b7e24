"""The jobs the home page and the operator page list, read from sacct as recorded on the mini
cluster (tests/data/record.sh workbench), and the links atop every hub page."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from aifactory_workbench.hub.navigation import nav_links
from aifactory_workbench.slurm.formats import SACCT_WORKBENCH_JOBS
from aifactory_workbench.slurm.parsers import parse_rows
from aifactory_workbench.spawners.workbench_jobs import in_home, live_jobs, notebook_jobs, worker_groups

DATA = Path(__file__).parent.parent / "data"
SESSION_NAME = "aifw-record"  # the session's job name in the recording


def rows() -> list[dict[str, str]]:
    return parse_rows((DATA / "workbench_jobs.txt").read_text(), SACCT_WORKBENCH_JOBS)


def test_a_name_with_a_pipe_is_read_whole():
    assert [r["JobName"] for r in rows() if "|" in r["JobName"]] == ["aifw-nb-a|b"]


def test_workers_are_grouped_by_the_job_that_started_them_with_cores_and_cost():
    session = next(r["JobID"] for r in rows() if r["JobName"] == SESSION_NAME)
    (group,) = worker_groups(rows())
    assert (group.user, group.parent_job, group.running, group.pending) == ("alice", session, 1, 1)
    assert group.cores == 3  # 2 held by the running one, 1 asked for by the queued one
    elapsed = next(
        int(r["ElapsedRaw"]) for r in rows() if r["JobName"] == f"aifw-dask-{session}" and r["State"] == "RUNNING"
    )
    assert group.core_hours == round(2 * elapsed / 3600, 2)


def test_notebook_jobs_newest_first_with_state_and_outputs():
    jobs = notebook_jobs(rows())
    assert [(j.state, j.detail, Path(j.notebook).name) for j in jobs] == [
        ("done", "", "a|b.ipynb"),
        ("failed", "FAILED", "broken.ipynb"),
        ("done", "", "analysis.ipynb"),
    ]
    analysis = jobs[-1]
    assert analysis.result == f"/tmp/analysis-job{analysis.job_id}.ipynb"
    assert analysis.log == f"/tmp/analysis-job{analysis.job_id}.log"


def test_the_operator_sees_only_live_workbench_jobs_with_time_left():
    live = {j.job_id: j for j in live_jobs(rows(), SESSION_NAME)}
    kinds = sorted(j.kind for j in live.values())
    assert kinds == ["Dask worker", "Dask worker", "JupyterLab"], kinds
    session = next(j for j in live.values() if j.kind == "JupyterLab")
    assert session.node == "mn5-g01" and session.cores == 1
    assert 0 < session.seconds_left <= 30 * 60
    queued = next(j for j in live.values() if j.state == "pending")
    assert queued.node == "" and queued.seconds_left is None and queued.parent_job == session.job_id


def test_links_to_outputs_only_under_the_home():
    assert in_home("/home/alice/x/a-job1.ipynb", "/home/alice") == "x/a-job1.ipynb"
    assert in_home("/tmp/a-job1.ipynb", "/home/alice") == ""


class _Registry:
    def led_by(self, user: str) -> list[str]:
        return ["climate101"] if user == "instructor" else []


def labels(name: str, admin: bool = False, sharing: bool = True) -> list[str]:
    user = SimpleNamespace(name=name, admin=admin)
    return [link.label for link in nav_links(user, registry=_Registry(), sharing=sharing)]


def test_each_person_is_shown_the_pages_they_may_use():
    assert labels("alice") == ["Home", "Gallery", "Share", "Token", "Help"]
    assert labels("alice", sharing=False) == ["Home", "Gallery", "Token", "Help"]
    assert labels("instructor") == ["Home", "Gallery", "Share", "Workshops", "Token", "Help"]
    assert labels("admin", admin=True) == [
        "Home",
        "Gallery",
        "Share",
        "Workshops",
        "Operator",
        "Users",
        "Token",
        "Help",
    ]
    assert [link.label for link in nav_links(None, registry=None, sharing=True)] == ["Help"]
