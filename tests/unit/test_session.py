"""What the home page and JupyterLab show of a session (issue #14): the card from squeue, the
sentence after a stop, the site's keys for the look and the end of a job, and the server
extension's time left (the Dask dashboard notes: test_dask_security.py)."""

import asyncio
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from aifactory_workbench.hub.configure import DEFAULT_LOGO, update_brand
from aifactory_workbench.hub.site import SiteConfigError, load_site_config
from aifactory_workbench.lab.access import POLICY_VIOLATION
from aifactory_workbench.lab.session import JobClock, SessionHandler, minutes, time_texts
from aifactory_workbench.lab.slurm_kernel import KernelJobsSeen, SlurmKernelProvisioner
from aifactory_workbench.slurm.client import squeue_argv
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.parsers import JobRecord
from aifactory_workbench.spawners.session import card, home_relative, stopped_text

from .defaults import DEFAULTS, site_file
from .fakes import RUNNING
from .recorded_slurm import RECORDED_QUEUE, FakeSlurm

PENDING = replace(
    RUNNING, state="PENDING", node="n/a", reason="Resources", tres_per_node="gres:gpu:1", time_left="2:00:00"
)


def card_of(info, **kw):
    args = {
        "job_id": "7",
        "position": "2 of 3",
        "ready": True,
        "stopping": False,
        "taken_at": 1000.0,
        "now": 1000.0,
        "log": "/home/alice/.aifactory/logs/jupyterlab-7.log",
        "home": "/home/alice",
    }
    return card(info, **(args | kw))


def test_a_running_job_shows_where_it_runs_what_it_has_and_the_time_left_counted_down():
    c = card_of(RUNNING, now=1000.0 + 600)  # squeue said 1:30:00 ten minutes ago
    assert (c["state"], c["node"], c["partition"], c["account"], c["cpus"], c["memory"], c["gpus"]) == (
        "running",
        "mn5-n01",
        "gpp",
        "ehpc01",
        "2",
        "4G",
        0,
    )
    assert c["seconds_left"] == 80 * 60 and c["time_left"] == "1 h 20 min"
    assert c["position"] == "" and c["log"] == "~/.aifactory/logs/jupyterlab-7.log"
    assert c["log_in_home"] == ".aifactory/logs/jupyterlab-7.log"


def test_queued_starting_ending_and_not_yet_seen():
    queued = card_of(PENDING)
    assert (queued["state"], queued["position"], queued["gpus"], queued["node"]) == ("queued", "2 of 3", 1, "")
    assert queued["seconds_left"] is None and "waiting for free" in queued["waiting_because"]
    assert card_of(RUNNING, ready=False)["state"] == "starting"
    assert card_of(RUNNING, stopping=True)["state"] == "ending"
    assert card_of(None)["state"] == "submitted" and card_of(None)["partition"] == ""


def test_durations_and_paths_in_words():
    assert [duration_text(s) for s in (20, 60, 12 * 60, 3600, 3600 + 59 * 60 + 40)] == [
        "under a minute",
        "1 min",
        "12 min",
        "1 h",
        "2 h",
    ]
    assert home_relative("/home/alice/x.log", "/home/alice/") == "~/x.log"
    assert home_relative("/home/alicex/x.log", "/home/alice") == "/home/alicex/x.log"


def test_after_a_stop_the_user_reads_what_the_job_used_as_accounting_says():
    record = JobRecord("7", "CANCELLED", "0:0", "None", elapsed_s=12 * 60, alloc_cpus=2)
    assert stopped_text("7", record) == "Your JupyterLab job 7 was cancelled after 12 min; it used 0.40 core-hours."
    gpu = replace(record, alloc_gpus=1)
    assert stopped_text("7", gpu).endswith("0.40 core-hours and 0.20 GPU-hours.")
    assert "before it started; it used no core-hours" in stopped_text("7", replace(record, elapsed_s=0))
    assert stopped_text("7", None) == "Your JupyterLab job 7 was cancelled."


def test_the_brand_is_the_sites_and_a_wrong_value_is_named(tmp_path):
    site = load_site_config(
        site_file(tmp_path, "brand: {product_name: MN5 Notebooks, support_url: 'mailto:help@bsc.es'}")
    )
    c = Config()
    c.JupyterHub.template_vars = {"announcement_home": "x"}
    update_brand(c, site)
    assert c.JupyterHub.logo_file == str(DEFAULT_LOGO) and DEFAULT_LOGO.exists()
    assert c.JupyterHub.template_vars["brand"]["product_name"] == "MN5 Notebooks"
    assert c.JupyterHub.template_vars["announcement_home"] == "x"  # kept
    for text, key in [
        ("brand: {support_url: 'javascript:alert(1)'}", "brand.support_url"),
        ("brand: {product_name: '<b>x</b>'}", "brand.product_name"),
        ("brand: {suport_contact: x}", "did you mean 'brand.support_contact'"),
        ("auth: {support_contact: x}", "auth.support_contact"),
    ]:
        with pytest.raises(SiteConfigError, match=key.replace(".", "\\.")):
            load_site_config(site_file(tmp_path, text))
    with pytest.raises(SiteConfigError, match="cannot be read"):
        update_brand(Config(), replace(site, brand=replace(site.brand, logo_file=str(tmp_path / "none.svg"))))


def test_the_end_of_a_job_follows_the_site_file(tmp_path):
    site = load_site_config(site_file(tmp_path, "singleuser: {warn_minutes: [30, 10], save_before_end: 600}"))
    assert (site.singleuser.warn_minutes, site.singleuser.save_before_end) == ([30, 10], 600)
    assert DEFAULTS.singleuser.warn_minutes == [15, 5] and DEFAULTS.singleuser.save_before_end == 300
    for text in (
        "singleuser: {warn_minutes: 5}",
        "singleuser: {warn_minutes: [0]}",
        "singleuser: {save_before_end: -1}",
    ):
        with pytest.raises(SiteConfigError, match="singleuser"):
            load_site_config(site_file(tmp_path, text))


def test_the_server_asks_squeue_for_the_time_left_at_most_every_refresh():
    slurm = FakeSlurm().hold(replace(RUNNING, time_left="1:00:00"))
    clock = JobClock(slurm, "7")
    first = asyncio.run(clock.seconds_left())
    second = asyncio.run(clock.seconds_left())
    assert 3590 <= second <= first <= 3600 and slurm.commands() == [squeue_argv("-j", "7")]
    assert clock.info == {
        "node": "mn5-n01",
        "partition": "gpp",
        "account": "ehpc01",
        "cpus": "2",
        "memory": "4G",
        "gres": "",
    }
    assert asyncio.run(JobClock(FakeSlurm(down=True), "7").seconds_left()) is None
    assert asyncio.run(JobClock(slurm, "").seconds_left()) is None
    assert minutes("5 15 x 15") == [15, 5]


def test_the_server_words_the_times_the_status_bar_shows():
    """JupyterLab's status bar, its tooltip, its warnings and its Extend button show these texts
    (labextension/src/session-logic.ts has no duration rule of its own; issue 37)."""
    assert time_texts(3930, 120, 30) == {
        "seconds_left": 3930,
        "time_left_text": "1 h 6 min",  # 65.5 min: half a minute up, as every page rounds
        "save_before_end": 120,
        "save_before_end_text": "2 min",
        "extend_minutes": 30,
        "extend_text": "30 min",
    }
    unknown = time_texts(None, 0, 0)  # squeue has not said; no save signal; no Extend button
    assert (unknown["seconds_left"], unknown["time_left_text"], unknown["save_before_end_text"]) == (None, "", "")
    assert unknown["extend_text"] == ""
    assert time_texts(20, 0, 90)["time_left_text"] == duration_text(20) == "under a minute"
    assert time_texts(20, 0, 90)["extend_text"] == "1 h 30 min"


def session_answer(slurm: FakeSlurm, kernel_manager: object) -> dict:
    """What SessionHandler.get answers (tornado's sign-in check aside), for session job 7."""
    said: list[str] = []
    handler = SimpleNamespace(
        settings={
            "aifactory_session": {"clock": JobClock(slurm, "7"), "save_requests": 0, "kernels": KernelJobsSeen(slurm)}
        },
        kernel_manager=kernel_manager,
        current_user=SimpleNamespace(username="alice"),
        base_url="/user/alice/",
        finish=said.append,
    )
    asyncio.run(SessionHandler.get.__wrapped__(handler))
    return json.loads(said[0])


def test_the_session_answer_names_the_kernels_in_jobs_of_their_own_beside_the_sessions_job():
    """JupyterLab's status bar shows the current notebook's kernel's job beside the session's
    (issue 39): the session answer lists them (lab/slurm_kernel.py's kernel_jobs)."""
    kernel = SlurmKernelProvisioner(kernel_id="k1", kernel_spec=None, partition="acc")
    kernel.job_id = "124"
    manager = SimpleNamespace(
        list_kernel_ids=lambda: ["k1", "k2"],
        get_kernel={"k1": SimpleNamespace(provisioner=kernel), "k2": SimpleNamespace(provisioner=None)}.get,
    )
    slurm = FakeSlurm().hold(replace(RUNNING, time_left="1:00:00"))
    slurm.hold(replace(RECORDED_QUEUE["RUNNING"], job_id="124", time_left="0:45:00"), "aifw-kernel-7")
    answer = session_answer(slurm, manager)
    assert (answer["job_id"], answer["time_left_text"]) == ("7", "1 h")
    assert [(k["kernel_id"], k["job_id"], k["node"], k["state"], k["time_left_text"]) for k in answer["kernels"]] == [
        ("k1", "124", "mn5-a01", "running", "45 min")
    ]
    down = session_answer(FakeSlurm(down=True), manager)
    assert down["time_left_text"] == "" and [k["state"] for k in down["kernels"]] == ["unknown"]
    assert session_answer(FakeSlurm(), SimpleNamespace(list_kernel_ids=list))["kernels"] == []


SESSION_TS = Path(__file__).parents[2] / "labextension" / "src"


def ts_constant(module: str, name: str) -> str:
    (value,) = re.findall(rf"const {name} = '?([^';]+)'?;", (SESSION_TS / module).read_text())
    return value


def test_the_page_knows_the_close_code_of_an_ended_access():
    """lab/access.py closes the websockets of a holder whose access ended with a code that
    JupyterLab's page (labextension/src/session-logic.ts) holds back from JupyterLab's own
    reconnection, which would otherwise say "Kernel died unexpectedly" (issue 36, item 8)."""
    assert int(ts_constant("session-logic.ts", "ACCESS_CLOSE_CODE")) == POLICY_VIOLATION


def test_jupyterlab_loads_its_toasts_code_as_the_page_expects():
    """The page loads JupyterLab's toasts' code at start by telling its notification plugin that
    a notification (one that never existed) was removed, and tells from the plugin's container
    whether that code is in (labextension/src/session.ts; issue 36, item 7). Both rest on the
    installed JupyterLab's code, minified: a JupyterLab that does otherwise fails here, not in
    front of someone whose job has ended."""
    (core,) = Path(sys.prefix, "share", "jupyter", "lab", "static").glob("jlab_core.*.js")
    code = core.read_text()
    # A removed notification's toast is hidden by its id alone, once the code is loaded.
    assert re.search(r'case"removed":await (\w+)\.toast\(\)\.then\((\w+)=>\{\2\.dismiss\(\w+\)\}\)', code)
    # The code, once loaded, puts its container in the page.
    container = ts_constant("session.ts", "TOASTS_CONTAINER_ID")
    assert code.count(f'.id="{container}"') == 1
