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
    assert [(j.state, j.detail, j.state_text, Path(j.notebook).name) for j in jobs] == [
        ("done", "", "done", "a|b.ipynb"),
        ("failed", "FAILED", "failed", "broken.ipynb"),
        ("done", "", "done", "analysis.ipynb"),
    ]
    analysis = jobs[-1]
    assert analysis.result == f"/tmp/analysis-job{analysis.job_id}.ipynb"
    assert analysis.log == f"/tmp/analysis-job{analysis.job_id}.log"


def test_newest_first_whatever_order_sacct_gives():
    """Newest by job id, not by sacct's order (which need not be submission order)."""
    shuffled = sorted(rows(), key=lambda r: r["JobName"])
    assert [j.job_id for j in notebook_jobs(shuffled)] == [j.job_id for j in notebook_jobs(rows())]


def test_a_cancelled_notebook_job_is_cancelled_with_only_the_outputs_it_can_have():
    """Issue 36, item 10: a job cancelled while queued said "failed (cancelled)", and the home
    page linked an executed notebook and a log that were never written."""
    done = next(r for r in rows() if r["JobName"] == "aifw-nb-analysis")
    while_queued = {**done, "JobID": "901", "State": "CANCELLED by 1001", "Start": "None"}
    while_running = {**done, "JobID": "902", "State": "CANCELLED by 0"}
    queued = {**done, "JobID": "903", "State": "PENDING", "Start": "Unknown"}
    oom = {**done, "JobID": "904", "State": "OUT_OF_MEMORY"}
    jobs = {j.job_id: j for j in notebook_jobs([while_queued, while_running, queued, oom])}
    assert (jobs["901"].state, jobs["901"].state_text, jobs["901"].result, jobs["901"].log) == (
        "cancelled",
        "cancelled",
        "",
        "",
    )
    assert jobs["902"].state_text == "cancelled" and jobs["902"].log == "/tmp/analysis-job902.log"
    assert jobs["902"].result == "/tmp/analysis-job902.ipynb"  # the hub's page asks the server whether it is there
    assert (jobs["903"].state_text, jobs["903"].result, jobs["903"].log) == ("queued", "", "")
    assert (jobs["904"].state_text, jobs["904"].detail) == ("failed (out of memory)", "OUT_OF_MEMORY")


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


class _Reply:
    def __init__(self, status: int) -> None:
        self.status = status

    def close(self) -> None:
        pass


async def test_the_home_page_links_only_the_outputs_the_running_server_has(monkeypatch):
    """The hub cannot look into a home folder: it asks alice's running server (its contents API,
    with the server's own token) which outputs are there; a server that does not say is None."""
    import aiohttp

    from aifactory_workbench.hub import operator

    asked = []

    async def fetch(url, headers, raise_for_status, timeout):
        asked.append((url, headers["Authorization"]))
        return _Reply(200 if "a-job1.log" in url else 404)

    monkeypatch.setattr(operator, "fetch", fetch)
    spawner = SimpleNamespace(server=SimpleNamespace(url="https://alice.hub/user/alice/"), api_token="tok")
    paths = ["x/a-job1.ipynb", "x/a-job1.log", "x/a-job1.log", "x/b c-job2.log"]
    assert await operator.files_there(spawner, paths) == {"x/a-job1.log"}
    assert [u for u, _ in asked] == [
        "https://alice.hub/user/alice/api/contents/x/a-job1.ipynb?content=0",
        "https://alice.hub/user/alice/api/contents/x/a-job1.log?content=0",
        "https://alice.hub/user/alice/api/contents/x/b%20c-job2.log?content=0",
    ]
    assert {t for _, t in asked} == {"token tok"}

    async def refused(url, headers, raise_for_status, timeout):
        raise aiohttp.ClientConnectionError("no route")

    monkeypatch.setattr(operator, "fetch", refused)
    assert await operator.files_there(spawner, paths) is None


async def test_a_queued_notebook_job_on_the_home_page_says_why_it_waits_and_when_it_should_start():
    """Issue 36, item 2: the home page said "queued" for a notebook job that waited two hours.
    It now says SLURM's reason and expected start, in the words the session's queued page and
    JupyterLab's panel use (slurm/pending.py), from one squeue call for the queued ones only."""
    import datetime as dt
    from dataclasses import replace

    from aifactory_workbench.hub.operator import queued_jobs
    from aifactory_workbench.spawners.workbench_jobs import queued_notebook_jobs
    from tests.unit.recorded_slurm import RECORDED_QUEUE, FakeSlurm

    done = next(r for r in rows() if r["JobName"] == "aifw-nb-analysis")
    queued = {**done, "JobID": "903", "State": "PENDING", "Start": "Unknown"}
    placed = {**done, "JobID": "904", "State": "PENDING", "Start": "Unknown"}
    now = dt.datetime(2026, 11, 27, 16, 28)
    slurm = FakeSlurm()
    slurm.hold(replace(RECORDED_QUEUE["PENDING"], job_id="903", user="alice", start_time="2026-11-27T16:40:00"))
    slurm.hold(replace(RECORDED_QUEUE["PENDING"], job_id="904", user="alice", reason="None", start_time="N/A"))
    assert queued_notebook_jobs([*rows(), queued, placed]) == ["903", "904"]  # no session, worker or ended job
    queue = await queued_jobs(slurm, queued_notebook_jobs([*rows(), queued, placed]))
    jobs = {j.job_id: j for j in notebook_jobs([*rows(), queued, placed], queue, now)}
    assert jobs["903"].waiting == (
        "waiting for free CPUs, memory or GPUs; SLURM expects it to start at 2026-11-27 16:40 (in about 12 min)."
    )
    assert jobs["904"].waiting == "waiting for the scheduler to place it."
    assert {j.waiting for j in jobs.values() if j.state != "queued"} == {""}
    assert jobs["903"].as_data()["waiting"] == jobs["903"].waiting

    asked = len(slurm.asked)
    assert await queued_jobs(slurm, []) == {} and len(slurm.asked) == asked  # nothing queued: squeue not asked
    slurm.down = True
    assert await queued_jobs(slurm, ["903"]) == {}  # squeue silent: the list is shown without it
