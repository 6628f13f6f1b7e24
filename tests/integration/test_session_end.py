"""The end of a JupyterLab job, seen in JupyterLab: the time left, a warning when a threshold
is crossed, every open notebook saved on SLURM's signal before the end, and a notice with
"Start again" once the job has ended, however it ended, listed in the notification centre."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.harness import demo_password

from .conftest import HubProcess, chromium_page, launch, sh, wait_for

TYPED = "typed_before_the_end = 42"


@pytest.fixture(scope="module")
def short_hub() -> Iterator[HubProcess]:
    """Warnings 9 minutes before the end, so that a 10-minute job crosses one within a minute."""
    hub = launch(singleuser={"warn_minutes": [9], "save_before_end": 120})
    yield hub
    hub.shutdown()


@pytest.fixture
def no_autosave() -> Iterator[Path]:
    """alice's notebook, and her own setting that turns real-time collaboration's autosave off
    (a user may): an edit then reaches the disk only when the notebook is saved."""
    user = pwd.getpwnam("alice")
    home = Path(user.pw_dir)
    config_dir = home / ".jupyter"
    config_dir.mkdir(exist_ok=True)
    config = config_dir / "jupyter_server_config.json"
    config.write_text(json.dumps({"YDocExtension": {"document_save_delay": None}}))
    notebook = home / "before-the-end.ipynb"
    cell = {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [], "source": ""}
    kernel = {"name": "aifactory", "display_name": "Python 3 (AI Factory)", "language": "python"}
    content = {"cells": [cell], "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    notebook.write_text(json.dumps(content))
    shutil.rmtree(config_dir / "lab" / "workspaces", ignore_errors=True)
    for path in (config_dir, config, notebook):
        os.chown(path, user.pw_uid, user.pw_gid)
    yield notebook
    config.unlink(missing_ok=True)
    notebook.unlink(missing_ok=True)


@pytest.mark.slow
def test_time_left_a_warning_the_save_on_the_signal_and_the_end(short_hub: HubProcess, no_autosave: Path, clean):
    hub = short_hub
    hub.start_ready("alice", {"walltime": "00:10:00", "cpus": 1})
    (job_id,) = sh("squeue", "-h", "-u", "alice", "-o", "%i").split()
    with chromium_page() as page:
        page.goto(f"{hub.url}/hub/login?next=/hub/user/alice/lab/tree/{no_autosave.name}")
        page.fill("#username_input", "alice")
        page.fill("#password_input", demo_password("alice"))
        page.click("#login_submit")
        status = page.locator(".aifw-session-status")
        page.wait_for_selector(".aifw-session-status:has-text('left')", timeout=120_000)
        assert status.inner_text().startswith(f"Job {job_id} on ")

        # An edit that is not saved: with autosave off it stays in the page only.
        page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
        page.click(".jp-Notebook .jp-Cell .cm-content")
        page.keyboard.type(TYPED)
        time.sleep(3)
        assert TYPED not in no_autosave.read_text(), "autosave is on: the test would prove nothing"

        # The warning, once 9 minutes are left (the job has 10).
        page.wait_for_selector("text=Your JupyterLab job ends in", timeout=150_000)
        assert "aifw-ending" in (status.get_attribute("class") or "")

        # SLURM's signal before the end (sbatch --signal=B:USR2@N), sent now: the page saves.
        subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], check=True)
        wait_for(lambda: TYPED in no_autosave.read_text(), 40, "the page did not save what was typed", every=1)
        page.wait_for_selector("text=every open notebook was saved", timeout=20_000)

        # The job ends: JupyterLab says so once, lists it, and leads back to the hub, which says why.
        subprocess.run(["scancel", job_id], check=True)
        assert_one_end_notice(page)
        page.click(".jp-Notification-Center button:has-text('Start again')")
        page.wait_for_url("**/hub/home", timeout=30_000)
        assert_home_says_why(page, job_id)


def assert_home_says_why(page, job_id: str) -> None:
    """The hub's home page, where "Start again" leads, names the job's end (the hub learns of it
    at its next squeue: the page is reloaded before each look but the first)."""
    looked: list[bool] = []

    def last_end_shown() -> bool:
        if looked:
            page.reload()
        looked.append(True)
        return page.is_visible("#aifw-last-end")

    wait_for(last_end_shown, 90, "the home page names the job's end", every=2, fail=False)
    assert f"job {job_id}" in page.inner_text("#aifw-last-end")


ENDED = "Your JupyterLab job has ended"


def assert_one_end_notice(page) -> None:
    """The end's notice, once (issue 36, item 7): "Job ended" and "Start again" in the status
    bar, one toast, no JupyterLab dialog over it, and the notification centre (the bell) opens
    and lists it, with its own "Start again". Leaves the list open."""
    page.wait_for_selector(".aifw-session-status:has-text('Job ended')", timeout=90_000)
    page.wait_for_selector(f".jp-toast-message:has-text('{ENDED}')", timeout=20_000)
    assert page.is_visible(".aifw-end-action:has-text('Start again')")
    time.sleep(15)  # a later poll, JupyterLab's lost connection, the kernel's closed socket: none adds a notice
    assert page.locator(f".jp-toast-message:has-text('{ENDED}')").count() == 1
    assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").all_inner_texts()
    assert page.get_by_text("Failed to fetch").count() == 0
    page.click(".jp-Notification-Status")
    page.wait_for_selector(".jp-Notification-Center", state="visible", timeout=10_000)
    listed = page.locator(f".jp-Notification-Center .jp-toast-message:has-text('{ENDED}')")
    assert listed.count() == 1, page.inner_text(".jp-Notification-Center")
    assert page.locator(".jp-Notification-Center button:has-text('Start again')").count() == 1


@pytest.mark.slow
def test_the_end_is_told_when_it_is_the_pages_first_notice(clean: HubProcess):
    """A page that showed no notification before its job ended (no warning, no save): JupyterLab
    fetched its toasts' code at the first notice, from a server that was gone, and showed only
    "Job ended" in the status bar, its bell opening nothing (issue 36, item 7). The page now loads
    that code at start, unseen. Stopped from the hub, as Stop My Server and an operator's stop do."""
    hub = clean
    hub.start_ready("alice", {"walltime": "01:00:00", "cpus": 1})
    (job_id,) = sh("squeue", "-h", "-u", "alice", "-o", "%i").split()
    with chromium_page() as page:
        page.goto(f"{hub.url}/hub/login?next=/hub/user/alice/lab")
        page.fill("#username_input", "alice")
        page.fill("#password_input", demo_password("alice"))
        page.click("#login_submit")
        page.wait_for_selector(".aifw-session-status:has-text('left')", timeout=120_000)
        # The toasts' code is in, and loading it showed and lit nothing.
        page.wait_for_selector("#react-toastify-container", state="attached", timeout=30_000)
        assert page.locator(".jp-toast-message").count() == 0
        assert page.locator(".jp-Notification-Center").count() == 0
        assert page.inner_text(".jp-Notification-Status-Text").strip() == "0"
        assert "jp-mod-selected" not in (page.get_attribute(".jp-Notification-Status", "class") or "")
        hub.stop("alice")
        assert_one_end_notice(page)
        page.keyboard.press("Escape")
        page.click(".aifw-end-action")  # the status bar's own way to the hub
        page.wait_for_url("**/hub/home", timeout=30_000)
        assert_home_says_why(page, job_id)


@pytest.mark.slow
def test_the_save_signal_while_jupyterlab_starts_does_not_end_the_job(clean: HubProcess):
    """SLURM sends the save signal up to a minute early, so a job shorter than the save time
    (a one-minute test) gets it while it starts: in CI such a job ended before JupyterLab's
    handler was in place. Here the signal comes about five times a second, from the moment the job's
    script has announced itself until JupyterLab answers: the start succeeds, and the signal is
    then handled."""
    hub = clean
    sent: list[str] = []
    done = threading.Event()

    def signal_the_starting_job() -> None:
        # From the moment the script has announced itself in its log (its first lines, which
        # set the signal aside, have run: no line of a script can guard bash's own start).
        while not done.is_set():
            for job_id in sh("squeue", "-h", "-u", "alice", "-t", "R", "-o", "%i").split():
                log = Path(f"/home/alice/.aifactory/logs/jupyterlab-{job_id}.log")
                if not (log.exists() and "JupyterLab for alice" in log.read_text()):
                    continue
                if subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], capture_output=True).returncode == 0:
                    sent.append(job_id)
            time.sleep(0.1)

    flood = threading.Thread(target=signal_the_starting_job, daemon=True)
    flood.start()
    try:
        # The start's answer may come only once the server is ready: the signal starts first.
        assert hub.start("alice", {"walltime": "00:10:00", "cpus": 1}).status_code in (201, 202)
        # Ready in the hub (the port is reported) comes before JupyterLab has loaded its
        # extensions: the signal goes on until JupyterLab itself answers.
        hub.wait_ready("alice")
        answers = lab_answers(hub, "alice")
        wait_for(answers, 60, "alice's JupyterLab answers", every=0.2, fail=False)
    finally:
        done.set()
        flood.join()
    assert len(sent) >= 5, f"the signal reached the job {len(sent)} times while it started: the test proves nothing"
    (job_id,) = set(sent)
    subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], check=True)
    log = Path(f"/home/alice/.aifactory/logs/jupyterlab-{job_id}.log")
    wait_for(
        lambda: "asking JupyterLab pages to save" in log.read_text(), 20, "the job's log names the save", fail=False
    )
    assert "asking JupyterLab pages to save" in log.read_text(), log.read_text()[-2000:]
    assert sh("squeue", "-h", "-j", job_id, "-o", "%T").strip() == "RUNNING"


def lab_answers(hub: HubProcess, name: str) -> Callable[[], bool]:
    """Whether the user's JupyterLab answers its API through the proxy, with their token."""
    url, headers = f"{hub.user_url(name)}api/status", {"Authorization": f"token {hub.user_token(name)}"}

    def answers() -> bool:
        try:
            return requests.get(url, headers=headers, timeout=5, verify=hub.verify).status_code == 200
        except requests.RequestException:
            return False

    return answers
