"""A new user's whole journey in Chromium, as issue #14 describes it: login, the form (a
preset, then an edit, a refused value), the queued page on a full partition, JupyterLab with its
examples, a widget, the Dask panel connected, the home page's session card, stop with its
confirmation, logout.  A screenshot of each step is kept (``AIFW_ARTIFACTS``, by default
``build/journey``); the hub's pages are checked with axe-core on the way.
"""

from __future__ import annotations

import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import demo_password

from .conftest import HubProcess, chromium_page, launch_demo_setup, serious_violations, sh, shot, wait_for_kernel

DASK_CELL = (
    "from aifactory_workbench.lab.notebook import start_cluster\n"
    "client, cluster = start_cluster(minimum=1, maximum=1, adapt=False)\n"
    "client.wait_for_workers(1, timeout=240)\n"
    'print("workers:", len(client.scheduler_info()["workers"]))'
)


#: Texts of the form that do not fit their box: each select's options, labels and help lines.
CUT_OFF = """() => {
  const ctx = document.createElement("canvas").getContext("2d"), bad = [];
  for (const s of document.querySelectorAll("#aifw-form select")) {
    const st = getComputedStyle(s);
    ctx.font = st.font;
    const room = s.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight);
    for (const o of s.options) if (ctx.measureText(o.text).width > room) bad.push(s.id + ": " + o.text);
  }
  for (const el of document.querySelectorAll("#aifw-form label, #aifw-form .form-text"))
    if (el.scrollWidth > el.clientWidth + 1) bad.push(el.textContent);
  return bad;
}"""


@pytest.fixture(scope="module")
def journey_hub(demo_certs: Path) -> Iterator[HubProcess]:
    """In the demo's setup (https front, users' origins, internal TLS). Usage is read from sacct at
    every request (no cache), so that it can equal sacct now."""
    hub = launch_demo_setup(demo_certs, form={"discovery_cache": 0})
    yield hub
    hub.shutdown()


def squeue_fields(job_id: str) -> list[str]:
    return sh("squeue", "-h", "-j", job_id, "-o", "%N|%P|%a|%C|%m|%L").strip().split("|")


def minutes_of(text: str) -> float:
    """'1 h 58 min', '12 min', 'under a minute' as minutes."""
    hours = re.search(r"(\d+) h", text)
    minutes = re.search(r"(\d+) min", text)
    return (int(hours.group(1)) * 60 if hours else 0) + (int(minutes.group(1)) if minutes else 0)


def squeue_state(job_id: str) -> str:
    return sh("squeue", "-h", "-j", job_id, "-o", "%T").strip()


def tab_to(page, element_id: str, most: int = 40) -> bool:
    """Press Tab from the top of the page until the element has the focus (as a keyboard user)."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return True
    return False


def squeue_minutes(left: str) -> float:
    from aifactory_workbench.slurm.values import parse_duration

    return (parse_duration(left) or 0) / 60


def sacct_usage(account: str, since: str) -> tuple[float, float]:
    from aifactory_workbench.slurm.parsers import parse_pipe_table
    from aifactory_workbench.spawners.estimate import usage_hours

    out = sh(
        "sacct", "-a", "-X", "-n", "-P", "-A", account, "-S", since, "-E", "now", "-o", "JobID,ElapsedRaw,AllocTRES"
    )
    return usage_hours(parse_pipe_table(out, ("JobID", "ElapsedRaw", "AllocTRES")))


@pytest.mark.slow
def test_a_new_users_journey_from_login_to_logout(journey_hub: HubProcess, full_partition: str):
    hub = journey_hub
    # alice as a new user: no JupyterLab layout of earlier tests, no examples yet.
    home = Path(pwd.getpwnam("alice").pw_dir)
    for leftover in (home / ".jupyter" / "lab" / "workspaces", home / "examples"):
        shutil.rmtree(leftover, ignore_errors=True)
    (home / ".aifactory" / "examples-copied").unlink(missing_ok=True)
    with chromium_page(*hub.chromium_args) as page:
        # 1. Login, with the keyboard alone.
        page.goto(f"{hub.url}/hub/login")
        assert serious_violations(page) == [], "login page"
        assert "AI Factory Workbench" in page.title()
        shot(page, "01-login")
        page.focus("#username_input")
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type(demo_password("alice"))
        page.keyboard.press("Enter")

        # 2. The form: a preset, then an edit (Custom), a refused value (marked, Start disabled, no cost).
        page.wait_for_selector("#aifw-form", timeout=60_000)
        page.wait_for_function("document.getElementById('aifw-start').textContent.includes('SLURM expects')")
        assert serious_violations(page) == [], "spawn form"
        page.click("#preset-gpu")
        assert page.input_value("#partition") == "acc" and page.input_value("#gpus") == "1"
        assert page.inner_text("#gpus-limit") == "at most 2 on acc" and "GPUs" in page.inner_text("#partition-help")
        page.fill("#cpus", "999")
        assert page.is_checked("#preset-custom"), "an edited preset is Custom"
        assert "is-invalid" in page.get_attribute("#cpus", "class")
        assert page.inner_text("#cpus-error") == "Between 1 and 80 cores on acc."
        assert page.is_disabled("#spawn_form button[type=submit]") and page.is_hidden("#aifw-cost")
        shot(page, "02-form-refused")
        page.select_option("#qos", "")
        assert page.input_value("#qos") == "", "'default' stays chosen"
        # Node features belong to a partition's nodes: moving the request to another partition in
        # its field clears them, as a preset does (issue 36: every estimate was then refused).
        page.select_option("#partition", "gpp")
        page.fill("#constraint", "highmem")
        page.select_option("#partition", "acc")
        assert page.input_value("#constraint") == "", "acc's nodes have no highmem"
        assert page.input_value("#qos") == "" and page.input_value("#cpus") == "999", "the rest stays as chosen"
        page.set_viewport_size({"width": 800, "height": 900})
        assert page.evaluate(CUT_OFF) == [], "nothing cut off at 800 px"
        page.set_viewport_size({"width": 1280, "height": 800})
        page.click("#preset-quick")  # a preset always applies
        assert page.input_value("#partition") == "gpp" and page.input_value("#cpus") == "1"
        page.click("#preset-quick")  # and again, after an edit of its field
        page.fill("#cpus", "2")
        page.click("#preset-quick")
        assert page.input_value("#cpus") == "1" and page.is_checked("#preset-quick")
        # The walltime's limit with its reason: the association's default QoS (sacctmgr), or the one chosen.
        assert (
            page.inner_text("#walltime-limit") == "at most 48 h with QoS normal (the default) (12 h with interactive)"
        )
        # The blank QoS says what it is (issue 22, item 8), and memory is in the field's own unit.
        assert page.inner_text("#qos option[value='']") == "default (normal)"
        assert page.inner_text("#memory-limit").startswith("at most 16000M on gpp")
        page.select_option("#qos", "interactive")
        assert page.inner_text("#walltime-limit") == "at most 12 h with QoS interactive (48 h with normal)"
        page.focus("#cpus")
        page.keyboard.press("Control+A")
        page.keyboard.type("2")  # an edit: Custom, 2 cores on gpp
        assert page.is_checked("#preset-custom") and not page.is_disabled("#spawn_form button[type=submit]")
        page.wait_for_function("document.getElementById('aifw-start').textContent.includes('SLURM expects')")
        # the cost as the hub's estimate words it, shown with its start (issue 37: "7" and "6.0" before)
        assert page.inner_text("#cost-core") == "2.00" and page.is_visible("#aifw-cost")
        shot(page, "03-form")
        page.keyboard.press("Enter")  # submits the form

        # 3. The queued page on a full partition: the bar moves, no internal details.
        page.wait_for_url("**/spawn-pending/alice**", timeout=60_000)
        page.wait_for_function(
            "document.getElementById('progress-message').textContent.includes('queued')", timeout=60_000
        )
        assert int(page.get_attribute("#progress-bar", "aria-valuenow")) == 25
        message = page.inner_text("#progress-message")
        assert "position" in message and "port" not in message
        assert serious_violations(page) == [], "progress page"
        shot(page, "04-queued")
        subprocess.run(["scancel", full_partition], check=True)

        # 4. JupyterLab: the job's time left in the status bar, within a minute of squeue's.
        page.wait_for_url("**/user/alice/lab**", timeout=180_000)
        page.wait_for_selector(".aifw-session-status:has-text('left')", timeout=120_000)
        (job_id,) = [j for j in sh("squeue", "-h", "-u", "alice", "-o", "%i").split()]
        node, partition, account, cpus, memory, left = squeue_fields(job_id)
        status = page.inner_text(".aifw-session-status")
        assert status.startswith(f"Job {job_id} on {node}")
        assert abs(minutes_of(status) - squeue_minutes(left)) <= 1, (status, left)
        page.wait_for_selector(".jp-LauncherCard:has-text('Example notebooks')", timeout=60_000)
        # Its icon, not the bare first letter JupyterLab shows for a Notebook card without one (issue 22).
        assert page.locator(".jp-LauncherCard:has-text('Example notebooks') img").count() == 1
        shot(page, "05-jupyterlab")

        # 5. The examples from the Launcher; cells run; the widget answers.
        page.click(".jp-LauncherCard:has-text('Example notebooks')")
        page.wait_for_selector(".jp-DirListing-item:has-text('02_interactive_explorer.ipynb')", timeout=30_000)
        page.wait_for_selector(".jp-RenderedMarkdown:has-text('Example notebooks')", timeout=30_000)
        page.dblclick(".jp-DirListing-item:has-text('02_interactive_explorer.ipynb')")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        wait_for_kernel(page)
        page.click(".lm-MenuBar-item:has-text('Run')")
        page.click(".lm-Menu-item:has-text('Run All Cells')")
        # The explorer's map and series are one image: choosing another region redraws it.
        image = page.locator(".widget-output img").first
        image.wait_for(timeout=180_000)
        before = image.get_attribute("src")
        page.locator(".widget-dropdown select").nth(1).select_option("Arctic")
        page.wait_for_function(
            "(b) => { const i = document.querySelector('.widget-output img'); return i && i.src !== b; }",
            arg=before,
            timeout=60_000,
        )
        shot(page, "06-widget")

        # 6. A Dask cluster on SLURM; the Dask panel finds it by itself (no magnifier click).
        # Before one runs, the panel says how to start one, not "the cluster manager below",
        # which the site hides (issue 36).
        page.click(".jp-SideBar [data-id='dask-dashboard-launcher']")
        page.wait_for_selector(".dask-DashboardListing-inactive", timeout=30_000)
        said = page.evaluate(
            "() => getComputedStyle(document.querySelector('.dask-DashboardListing-inactive'), '::after').content"
        )
        assert "start_cluster()" in said, said
        assert page.is_hidden(".dask-DashboardListing-inactive-detail"), "the words about a hidden manager show"
        page.click(".jp-SideBar [data-id='dask-dashboard-launcher']")
        page.keyboard.press("Escape")
        page.click(".jp-Notebook .jp-Cell >> nth=-1")
        page.keyboard.press("Escape")
        page.keyboard.press("b")
        page.keyboard.press("Enter")
        page.keyboard.type(DASK_CELL)
        page.keyboard.press("Shift+Enter")
        page.wait_for_selector(".jp-OutputArea-output:has-text('workers: 1')", timeout=300_000)
        page.click(".jp-SideBar [data-id='dask-dashboard-launcher']")
        page.wait_for_function(
            "() => { const i = document.querySelector('.dask-URLInput input');"
            " return i && i.value.includes('/aifactory/dask/'); }",
            timeout=60_000,
        )
        # Its items answer (the dashboard is reached through the server), and "+NEW" is not offered.
        page.wait_for_selector(".dask-DashboardListing-item:not(.dask-DashboardListing-inactive)", timeout=60_000)
        assert page.locator(".dask-DaskClusterManager").count() == 0 or page.is_hidden(".dask-DaskClusterManager")
        # A live plot draws: its page and its websocket reach the dashboard's socket through her server.
        page.click(".dask-DashboardListing-item:has-text('Task Stream')")
        plot = page.frame_locator("iframe[src*='/aifactory/dask/']").first
        plot.locator("canvas").first.wait_for(timeout=60_000)
        shot(page, "07-dask")

        # 7. The home page: the session card says what squeue says.
        page.goto(f"{hub.url}/hub/home")
        card = page.locator(".aifw-session")
        card.wait_for()
        node, partition, account, cpus, memory, left = squeue_fields(job_id)
        assert card.locator(".aifw-state").inner_text() == "running"
        assert card.locator(".aifw-job").inner_text() == job_id
        assert card.locator(".aifw-node").inner_text() == node
        assert card.locator(".aifw-partition").inner_text() == partition == "gpp"
        assert card.locator(".aifw-account").inner_text() == account
        assert card.locator(".aifw-cpus").inner_text() == cpus == "2"
        assert card.locator(".aifw-memory").inner_text() == memory
        assert card.locator(".aifw-gpus").inner_text() == "0"
        assert abs(minutes_of(card.locator(".aifw-time-left").inner_text()) - squeue_minutes(left)) <= 1
        assert card.locator(".aifw-log a").inner_text() == f"~/.aifactory/logs/jupyterlab-{job_id}.log"
        page.wait_for_selector(".aifw-usage-table")
        assert serious_violations(page) == [], "home page"
        shot(page, "08-home")

        # 8. Stop, by keyboard alone and asked first (issue 22, item 4): Tab reaches the button,
        # Escape keeps the job, Enter on "Stop the job" stops it. Then what happened to the job
        # and what it used, as sacct says.
        assert tab_to(page, "aifw-stop"), "Tab never reaches Stop My Server"
        page.keyboard.press("Enter")
        page.wait_for_selector("#aifw-stop-dialog[open]")
        assert job_id in page.inner_text("#aifw-stop-dialog")
        assert serious_violations(page) == [], "the stop dialog"
        shot(page, "08b-stop-asked")
        page.keyboard.press("Escape")
        page.wait_for_selector("#aifw-stop-dialog", state="hidden")
        assert page.evaluate("document.activeElement.id") == "aifw-stop"
        time.sleep(2)
        assert hub.server("alice") is not None and squeue_state(job_id) == "RUNNING", "Escape stopped the job"
        page.keyboard.press("Enter")
        page.wait_for_selector("#aifw-stop-dialog[open]")
        assert page.evaluate("document.activeElement.textContent") == "Keep it running"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "aifw-stop-confirm"
        page.keyboard.press("Enter")
        page.wait_for_selector("#aifw-last-end", timeout=90_000)
        confirmation = page.inner_text("#aifw-last-end")
        elapsed, tres = sh("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "ElapsedRaw,AllocTRES").strip().split("|")
        used = int(elapsed) * int(re.search(r"cpu=(\d+)", tres).group(1)) / 3600
        assert confirmation.startswith(f"Your JupyterLab job {job_id} was cancelled after ")
        assert f"it used {used:.2f} core-hours" in confirmation
        assert page.inner_text(".aifw-last-log") == f"~/.aifactory/logs/jupyterlab-{job_id}.log"
        # The usage table equals sacct's figures (nothing of these accounts runs now).
        page.wait_for_selector(".aifw-usage-table")
        since = re.search(r"Since (\S+),", page.inner_text(".aifw-usage-table caption")).group(1)
        for row in page.locator(".aifw-usage-table tbody tr").all():
            account = row.get_attribute("data-account")
            cells = row.locator("td").all_inner_texts()
            core, gpu = sacct_usage(account, since)
            assert (float(cells[0]), float(cells[1])) == (pytest.approx(core, abs=0.01), pytest.approx(gpu, abs=0.01))
        shot(page, "09-stopped")

        # 9. Logout.
        page.click("#logout")
        page.wait_for_url("**/hub/login**", timeout=30_000)
        shot(page, "10-logout")
    # The job's log is in the one folder of logs, not left hidden in the home.
    assert (home / ".aifactory" / "logs" / f"jupyterlab-{job_id}.log").exists()
    assert not (home / f".aifactory-jupyterlab-{job_id}.log").exists()


def test_another_users_jupyterlab_is_refused_in_words_with_the_way_home(journey_hub: HubProcess, clean):
    hub = journey_hub
    hub.start_ready("bob")
    with chromium_page(*hub.chromium_args) as page:
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", "alice")
        page.fill("#password_input", demo_password("alice"))
        page.click("#login_submit")
        page.wait_for_url("**/hub/**", timeout=60_000)
        response = page.goto(hub.user_url("bob") + "lab")
        assert response.status == 403
        heading = page.locator("h1")
        assert heading.count() == 1 and heading.inner_text() == "This page is not yours to open"
        assert "ask them to share it" in page.inner_text("#aifw-error-help")
        assert serious_violations(page) == [], "403 page"
        shot(page, "11-not-yours")
        page.click("text=Go to your home page")
        page.wait_for_url("**/hub/home", timeout=30_000)
