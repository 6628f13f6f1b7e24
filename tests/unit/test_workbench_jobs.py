"""The jobs the home page and the operator page list, read from sacct as recorded on the mini
cluster (tests/data/record.sh workbench), and the links atop every hub page."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from aifactory_workbench.hub.navigation import nav_links
from aifactory_workbench.slurm.client import CommandResult
from aifactory_workbench.slurm.formats import SACCT_WORKBENCH_JOBS
from aifactory_workbench.slurm.parsers import parse_rows
from aifactory_workbench.spawners.workbench_jobs import in_home, live_jobs, notebook_jobs, worker_groups

from .recorded_slurm import RECORDED_QUEUE, FakeSlurm

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
    from aifactory_workbench.spawners.workbench_jobs import queued_to_explain
    from tests.unit.recorded_slurm import RECORDED_QUEUE, FakeSlurm

    done = next(r for r in rows() if r["JobName"] == "aifw-nb-analysis")
    queued = {**done, "JobID": "903", "State": "PENDING", "Start": "Unknown"}
    placed = {**done, "JobID": "904", "State": "PENDING", "Start": "Unknown"}
    now = dt.datetime(2026, 11, 27, 16, 28)
    slurm = FakeSlurm()
    slurm.hold(replace(RECORDED_QUEUE["PENDING"], job_id="903", user="alice", start_time="2026-11-27T16:40:00"))
    slurm.hold(replace(RECORDED_QUEUE["PENDING"], job_id="904", user="alice", reason="None", start_time="N/A"))
    assert queued_to_explain([*rows(), queued, placed]) == ["903", "904"]  # no session, worker or ended job
    queue = await queued_jobs(slurm, queued_to_explain([*rows(), queued, placed]))
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


# -- kernels in jobs of their own, on the session's card (issue 39) ----------------------------
#: What a kernel's job on acc holds (one GPU, four cores), as sacct's AllocTRES words it.
KERNEL_TRES = "billing=4,cpu=4,gres/gpu=1,mem=1G,node=1"


def kernel_rows() -> list[dict[str, str]]:
    """The recorded session 441's kernels on acc, made from its Dask workers' recorded rows (a
    running job and a queued one of the session, as sacct has them): kernel 447 running on
    mn5-a01, 448 queued, and 449 that ended (cancelled when its notebook shut it down)."""
    recorded = rows()
    session = next(r for r in recorded if r["JobName"] == SESSION_NAME)
    running = next(r for r in recorded if r["JobName"].startswith("aifw-dask-") and r["State"] == "RUNNING")
    queued = next(r for r in recorded if r["JobName"].startswith("aifw-dask-") and r["State"] == "PENDING")
    kernel = {"JobName": f"aifw-kernel-{session['JobID']}", "Partition": "acc"}
    return [
        {**running, **kernel, "JobID": "447", "NodeList": "mn5-a01", "AllocTRES": KERNEL_TRES, "ReqCPUS": "4"},
        {**queued, **kernel, "JobID": "448", "ReqCPUS": "4"},
        {**running, **kernel, "JobID": "449", "State": "CANCELLED by 1001", "AllocTRES": KERNEL_TRES},
    ]


def kernel_queue():
    """squeue's line for the queued kernel 448: why it waits, when SLURM expects it, its GPU."""
    return {
        "448": replace(
            RECORDED_QUEUE["PENDING"],
            job_id="448",
            user="alice",
            partition="acc",
            start_time="2026-12-03T18:00:00",
            tres_per_node="gres:gpu:1",
        )
    }


def test_a_sessions_kernels_are_listed_with_partition_node_state_time_left_and_what_they_hold():
    """Issue 39: the home page lists a session's kernel jobs on its card. From the one sacct of
    the page (and squeue's line of a queued one): the running one with its node and time left in
    words, the queued one with SLURM's reason and expected start; the ended one is not listed."""
    import datetime as dt

    from aifactory_workbench.slurm.display import duration_text
    from aifactory_workbench.spawners.workbench_jobs import kernel_jobs

    now = dt.datetime(2026, 12, 3, 17, 48)
    kernels = kernel_jobs([*rows(), *kernel_rows()], kernel_queue(), now)
    assert [(k.job_id, k.session_job, k.partition, k.state) for k in kernels] == [
        ("447", "441", "acc", "running"),
        ("448", "441", "acc", "queued"),
    ]
    running, queued = kernels
    elapsed = next(int(r["ElapsedRaw"]) for r in kernel_rows() if r["JobID"] == "447")
    assert (running.node, running.cores, running.gpus, running.waiting) == ("mn5-a01", 4, 1, "")
    assert running.seconds_left == 60 * 60 - elapsed and running.time_left == duration_text(running.seconds_left)
    assert (queued.node, queued.cores, queued.gpus, queued.seconds_left, queued.time_left) == ("", 4, 1, None, "")
    assert queued.waiting == (
        "waiting for free CPUs, memory or GPUs; SLURM expects it to start at 2026-12-03 18:00 (in about 12 min)."
    )
    assert running.as_data()["time_left"] == running.time_left and running.as_data()["user"] == "alice"
    # squeue silent: the queued kernel is still listed, without words it cannot have
    (_, alone) = kernel_jobs(kernel_rows(), {}, now)
    assert (alone.state, alone.waiting, alone.gpus) == ("queued", "", 0)
    assert kernel_jobs(rows()) == []  # no kernel, no entry: sessions, workers and notebook jobs are not kernels


def test_the_operator_lists_a_kernel_with_its_session_and_the_same_time_left():
    """The operator page and the home page word a kernel's time left from one rule."""
    from aifactory_workbench.spawners.workbench_jobs import kernel_jobs

    live = {j.job_id: j for j in live_jobs([*rows(), *kernel_rows()], SESSION_NAME)}
    assert (live["447"].kind, live["447"].parent_job, live["447"].partition, live["447"].gpus) == (
        "kernel",
        "441",
        "acc",
        1,
    )
    assert "449" not in live and live["448"].seconds_left is None
    home = {k.job_id: k for k in kernel_jobs(kernel_rows())}
    assert live["447"].seconds_left == home["447"].seconds_left


class _Home:
    """What JobsHandler.get reads of JupyterHub's APIHandler, for alice with no server running
    (so her server is not asked which outputs it has)."""

    def __init__(self, slurm):
        from jupyterhub.scopes import parse_scopes

        scopes = ["servers!user=alice"]
        self.current_user = SimpleNamespace(name="alice")
        self.expanded_scopes, self.parsed_scopes, self.db = set(scopes), parse_scopes(scopes), None
        self.request = SimpleNamespace(path="/hub/api/aifactory/jobs/alice")
        self.spawner = SimpleNamespace(slurm=slurm, ready=False, req_homedir="/home/alice")
        self.answer = None

    def find_user(self, name):
        return SimpleNamespace(name=name, spawner=self.spawner, server_url=lambda s: "/user/alice/")

    def finish(self, body):
        self.answer = body


class _KernelSlurm:
    """sacct's rows of alice's week (the recording, her kernels, a queued notebook job) and
    squeue's lines, counting what is asked."""

    def __init__(self):
        done = next(r for r in rows() if r["JobName"] == "aifw-nb-analysis")
        self.rows = [*rows(), *kernel_rows(), {**done, "JobID": "903", "State": "PENDING", "Start": "Unknown"}]
        self.asked = []

    async def job_rows(self, fields, *, user="", since=""):
        self.asked.append(("sacct", user))
        return self.rows

    async def jobs_by_id(self, job_ids):
        self.asked.append(("squeue", tuple(job_ids)))
        return {k: v for k, v in kernel_queue().items() if k in job_ids}


async def test_the_home_pages_jobs_answer_carries_the_kernels_from_one_sacct_and_one_squeue():
    from aifactory_workbench.hub.operator import JobsHandler

    slurm = _KernelSlurm()
    page = _Home(slurm)
    await JobsHandler.get(page, "alice")
    # one sacct, then one squeue for the queued kernel and the queued notebook job together
    assert slurm.asked == [("sacct", "alice"), ("squeue", ("448", "903"))]
    kernels = page.answer["kernels"]
    assert [(k["job_id"], k["session_job"], k["partition"], k["state"]) for k in kernels] == [
        ("447", "441", "acc", "running"),
        ("448", "441", "acc", "queued"),
    ]
    assert kernels[1]["waiting"].startswith("waiting for free CPUs, memory or GPUs; SLURM expects it to start")
    assert kernels[0]["time_left"] and kernels[0]["node"] == "mn5-a01"
    assert [n["job_id"] for n in page.answer["notebooks"]][0] == "903"


# -- the home page's Cancel of a notebook job (issue 36, item 2) -------------------------------
class Accounting(FakeSlurm):
    """The recorded SLURM, which also answers the hub's one ``sacct -X -u USER`` of the workbench's
    jobs: USER's recorded lines (tests/data/workbench_jobs.txt: a running session 441, its Dask
    workers 442 and 443, ended notebook jobs), and each job the fake holds or has ended as a line
    of the same form (its name, owner and state: what accounting would say of it)."""

    RECORDED = (DATA / "workbench_jobs.txt").read_text().splitlines()

    def __init__(self) -> None:
        super().__init__()
        self.owners: dict[str, str] = {}

    def hold_job(self, job_id: str, user: str, name: str, state: str = "PENDING") -> None:
        self.hold(replace(RECORDED_QUEUE["PENDING"], job_id=job_id, user=user), name=name)
        self.owners[job_id] = user
        if state == "RUNNING":
            self.run_job(job_id)

    def _sacct(self, argv: list[str], user: str, stdin: str) -> CommandResult:
        if "-u" not in argv:
            return super()._sacct(argv, user, stdin)
        asked, sep, names = argv[argv.index("-u") + 1], SACCT_WORKBENCH_JOBS.sep, SACCT_WORKBENCH_JOBS.names
        lines = [
            line for line in self.RECORDED if line.split(sep)[2] == asked and line.split(sep)[0] not in self.owners
        ]
        analysis = next(line for line in self.RECORDED if "aifw-nb-analysis" in line)
        template = dict(zip(names, analysis.split(sep), strict=True))
        for job_id, owner in self.owners.items():
            held = self.queue_now.get(job_id)
            if owner == asked:
                state = held.state if held else "CANCELLED by 1001"
                start = "Unknown" if held is not None and held.state == "PENDING" else "2026-12-03T17:34:35"
                row = {**template, "JobID": job_id, "JobName": self.names[job_id], "User": owner}
                lines.append(sep.join({**row, "State": state, "Start": start}[n] for n in names))
        return CommandResult(argv, 0, "".join(line + "\n" for line in lines))


def accounting() -> Accounting:
    """alice's queued notebook job 4701 and running 4702, and bob's queued 4703."""
    slurm = Accounting()
    slurm.hold_job("4701", "alice", "aifw-nb-analysis")
    slurm.hold_job("4702", "alice", "aifw-nb-train", "RUNNING")
    slurm.hold_job("4703", "bob", "aifw-nb-secret")
    return slurm


def cancelled(slurm) -> list[list[str]]:
    return [argv for _, argv in slurm.asked if argv[0] == "scancel"]


async def test_the_home_pages_cancel_ends_only_the_users_own_live_notebook_job():
    """Issue 36, item 2: the home page listed queued and running notebook jobs with no way to end
    them. ``cancel_notebook_job`` cancels alice's own queued or running one as alice, once SLURM's
    accounting lists it as hers; her session, her Dask workers, an ended job, bob's job and a
    malformed id are refused in words, and none of them reaches scancel."""
    from aifactory_workbench.hub.operator import cancel_notebook_job

    slurm = accounting()
    status, body = await cancel_notebook_job(slurm, "alice", "4701")
    assert status == 200 and body == {"job": "4701", "message": "job 4701 (/tmp/analysis.ipynb) cancelled"}
    assert ("alice", ["scancel", "4701"]) in slurm.asked and "4701" not in slurm.queue_now
    assert await cancel_notebook_job(slurm, "alice", "4702") == (
        200,
        {"job": "4702", "message": "job 4702 (/tmp/train.ipynb) cancelled"},
    )
    assert cancelled(slurm) == [["scancel", "4701"], ["scancel", "4702"]]

    NOT_NOTEBOOK = "job {} is not a notebook job: a session ends with Stop My Server, Dask workers with Stop workers"
    refusals = {
        "441": (400, NOT_NOTEBOOK.format("441")),  # her session
        "442": (400, NOT_NOTEBOOK.format("442")),  # its Dask workers
        "444": (409, "job 444 has already ended (done)"),
        "445": (409, "job 445 has already ended (failed)"),
        "4701": (409, "job 4701 has already ended (cancelled)"),
        "4703": (404, "job 4703 is not one of alice's jobs of the last 7 days"),  # bob's: not in her accounting
        "9999": (404, "job 9999 is not one of alice's jobs of the last 7 days"),
    }
    for job_id, (code, said) in refusals.items():
        assert await cancel_notebook_job(slurm, "alice", job_id) == (code, {"status": code, "message": said}), job_id
    asked = len(slurm.asked)
    for bad in ("", "12;scancel -u alice", "../4702", "4702,4703", "-1", "٤٧٠٣", "4702_1", "--name=aifw-nb-train"):
        code, body = await cancel_notebook_job(slurm, "alice", bad)
        assert code == 400 and "is not a job id" in body["message"], bad
    assert len(slurm.asked) == asked, "a malformed id reached SLURM"
    assert "4703" in slurm.queue_now and cancelled(slurm) == [["scancel", "4701"], ["scancel", "4702"]]

    slurm.down = True
    code, body = await cancel_notebook_job(slurm, "alice", "4702")
    assert code == 503 and body["message"].startswith("SLURM did not cancel job 4702:") and "Traceback" not in str(body)


class _Audit:
    def __init__(self):
        self.entries = []

    def record(self, event, **fields):
        self.entries.append((event, fields))


class _Caller:
    """What NotebookCancelHandler.post reads of JupyterHub's APIHandler: who calls with which
    scopes (as JupyterHub parses them), the users, and where the answer goes."""

    def __init__(self, name, scopes, slurm):
        from jupyterhub.scopes import parse_scopes

        self.current_user = SimpleNamespace(name=name)
        self.expanded_scopes, self.parsed_scopes, self.db = set(scopes), parse_scopes(scopes), None
        self.request = SimpleNamespace(path="/hub/api/aifactory/jobs/alice/notebooks/4701/cancel")
        self.audit, self.answer = _Audit(), None
        self.spawners = {n: SimpleNamespace(slurm=slurm) for n in ("alice", "bob")}

    def find_user(self, name):
        return SimpleNamespace(name=name, spawner=self.spawners[name]) if name in self.spawners else None

    def set_status(self, status):
        self.status = status

    def finish(self, body):
        self.answer = (self.status, body)


async def test_bob_cannot_cancel_alices_notebook_job_through_the_route():
    """The route's guard is JupyterHub's ``servers`` scope on USER: bob's token (scopes on bob
    only) is refused for alice's route before SLURM is asked, and on his own route her job is not
    his (not in his accounting). Either way nothing is cancelled; the refusal is audited."""
    from tornado import web

    from aifactory_workbench.hub.operator import NotebookCancelHandler

    slurm = accounting()
    bob = _Caller("bob", ["servers!user=bob", "read:users!user=bob"], slurm)
    with pytest.raises(web.HTTPError) as refused:
        await NotebookCancelHandler.post(bob, "alice", "4701")
    # (404: JupyterHub does not tell bob whether alice is there, his scope being for himself only)
    assert refused.value.status_code in (403, 404) and slurm.asked == []
    await NotebookCancelHandler.post(bob, "bob", "4701")
    assert bob.answer == (404, {"status": 404, "message": "job 4701 is not one of bob's jobs of the last 7 days"})
    assert bob.audit.entries == [
        (
            "notebook_job_cancel_refused",
            {"user": "bob", "by": "bob", "job_id": "4701", "status": 404, "reason": bob.answer[1]["message"]},
        )
    ]
    assert cancelled(slurm) == [] and "4701" in slurm.queue_now

    alice = _Caller("alice", ["servers!user=alice"], slurm)
    await NotebookCancelHandler.post(alice, "alice", "4701")
    assert alice.answer[0] == 200 and cancelled(slurm) == [["scancel", "4701"]]
    assert alice.audit.entries == [("notebook_job_cancelled", {"user": "alice", "by": "alice", "job_id": "4701"})]


def test_the_cancel_route_takes_a_job_number_and_nothing_else():
    import re

    from aifactory_workbench.hub.operator import NOTEBOOK_CANCEL_API_ROUTE, NotebookCancelHandler
    from aifactory_workbench.hub.routes import routes

    route = re.compile(NOTEBOOK_CANCEL_API_ROUTE + "$")
    assert route.match("/api/aifactory/jobs/alice/notebooks/4701/cancel").groups() == ("alice", "4701")
    for bad in ("4701,4702", "..%2F4701", "-1", "x", "", "4701/x"):
        assert not route.match(f"/api/aifactory/jobs/alice/notebooks/{bad}/cancel"), bad
    site = SimpleNamespace(singleuser=SimpleNamespace(venv=""), gallery=SimpleNamespace(shared_storage=[]))
    table = {r[0]: r[1] for r in routes(None, None, None, site)}
    assert table[NOTEBOOK_CANCEL_API_ROUTE] is NotebookCancelHandler
    assert "post" in vars(NotebookCancelHandler) and not {"get", "delete", "put"} & set(vars(NotebookCancelHandler))
