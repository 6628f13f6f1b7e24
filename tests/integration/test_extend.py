"""More time for a running session (issue #27, part 2), on the real cluster: alice's 10-minute
job is extended to 40 minutes from JupyterLab (squeue's %l, and the time left JupyterLab shows at
once), audited, then from the walltime warning in Chromium; bob's session, past the QoS
interactive's 12 h, is refused with the limit named and nothing changes; the hub account asking
the root helper for bob's job in alice's name, for a Dask worker job or for a job the hub did not
start is refused by the helper itself; with ``singleuser.extend: off`` Extend is not offered and
both the hub and the helper refuse.

The test hub names its jobs ``aifw-test-jupyterlab`` and has its own site file, so the helper it
calls is one written here the way ``aifactory-site install`` writes the installed one
(:func:`~aifactory_workbench.root.site_install.extend_helper_text`), root's, reading a root-owned
copy of the test hub's site file, with a sudo rule of the installed rule's form for it (removed
after). The installed helper is asked too: it refuses bob's job in alice's name as well."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.root.extend_job import NO_SUCH_JOB, OFF
from aifactory_workbench.root.site_install import extend_helper_text, visudo
from aifactory_workbench.slurm.display import duration_text

from .conftest import HUB_USER, LIBEXEC, TEST_JOB_NAME, HubProcess, chromium_page, launch, sh, shot, sign_in, wait_for

#: The sudo rule's arguments, as config/sudoers.in has them for the installed helper.
RULE_ARGUMENTS = "^[a-z_][a-z0-9_.-]* [0-9]+ [0-9]+$"
TEST_SUDOERS = Path("/etc/sudoers.d/aifw-test-extend")
AS_HUB = ["setpriv", f"--reuid={HUB_USER}", f"--regid={HUB_USER}", "--init-groups"]
EXTEND = {"step": 30, "total": 240}
#: The Extend button on a session card (hub/home.html; the page's script names the class too).
HOME_BUTTON = 'aifw-extend" data-minutes'


def as_hub(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AS_HUB, *argv], capture_output=True, text=True, cwd="/tmp")


def time_limit(job_id: str) -> str:
    """squeue's %l: 10:00 for ten minutes."""
    return sh("squeue", "-h", "-j", job_id, "-o", "%l").strip()


def submit_as(user: str, name: str) -> str:
    """A plain job of ``user``'s named ``name`` (10 minutes), once it runs."""
    out = sh(
        "sudo",
        "-u",
        user,
        "sbatch",
        "--parsable",
        f"--job-name={name}",
        "-t",
        "10",
        "--mem=100M",  # not a whole node's memory (SLURM's default here): the three must run at once
        "-o",
        "/dev/null",
        "--chdir=/tmp",
        "--wrap",
        "sleep 600",
    )
    job_id = out.strip().split(";")[0]
    wait_for(lambda: sh("squeue", "-h", "-j", job_id, "-o", "%T").strip() == "RUNNING", 60, f"job {job_id} runs")
    return job_id


@pytest.fixture(scope="module")
def helper_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="aifw-extend-", dir="/var/tmp"))  # root's, 0700
    folder.chmod(0o755)
    yield folder
    TEST_SUDOERS.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def install_helper(folder: Path, site_file: Path) -> Path:
    """A root-owned copy of the hub's site file and the helper reading it, as install writes it,
    with a sudo rule for it (checked by visudo first)."""
    copy = folder / "site.yaml"
    shutil.copyfile(site_file, copy)
    copy.chmod(0o644)
    wrapper = folder / "aifactory-extend-job"
    wrapper.write_text(extend_helper_text(load_site_config(copy), str(folder / "ledger")))
    wrapper.chmod(0o755)
    rule = folder / "sudoers"
    rule.write_text(f"{HUB_USER} ALL=(root) NOPASSWD: {wrapper} {RULE_ARGUMENTS}\n")
    rule.chmod(0o440)
    assert visudo(rule) == ""
    shutil.copyfile(rule, TEST_SUDOERS)
    TEST_SUDOERS.chmod(0o440)
    return wrapper


@pytest.fixture(scope="module")
def extend_hub(helper_dir: Path) -> Iterator[tuple[HubProcess, Path]]:
    wrapper = helper_dir / "aifactory-extend-job"
    # A warning from the start (two hours before the end), so that the page offers Extend in it.
    hub = launch(
        singleuser={"extend": EXTEND, "warn_minutes": [120]},
        config_lines=f"c.WorkbenchSpawner.extend_helper = {str(wrapper)!r}\n",
    )
    install_helper(helper_dir, hub.site_file)
    yield hub, wrapper
    hub.shutdown()


@pytest.fixture(scope="module")
def alices_job(extend_hub) -> Iterator[str]:
    hub, _ = extend_hub
    hub.start_ready("alice", {"walltime": "00:10:00", "cpus": 1})
    (job_id,) = [j for j, state in _queued("alice").items() if state == "RUNNING"]
    yield job_id
    hub.stop("alice")


def _queued(user: str) -> dict[str, str]:
    out = sh("squeue", "-h", "-u", user, "--name", TEST_JOB_NAME, "-o", "%i|%T")
    return dict(line.split("|") for line in out.splitlines())


def extend_api(hub: HubProcess, user: str, minutes: int) -> requests.Response:
    headers = {"Authorization": f"token {hub.user_token(user)}"}
    return requests.post(
        f"{hub.url}/hub/api/aifactory/extend/{user}",
        json={"minutes": minutes},
        headers=headers,
        timeout=60,
        verify=hub.verify,
    )


@pytest.mark.slow
def test_alices_ten_minutes_become_forty_from_jupyterlab_and_its_time_left_follows(extend_hub, alices_job):
    hub, _ = extend_hub
    token = hub.user_token("alice")
    assert time_limit(alices_job) == "10:00"
    session = hub.through_proxy("alice", token, "aifactory/session").json()
    assert session["extend_minutes"] == EXTEND["step"] and session["seconds_left"] <= 600
    assert (session["extend_text"], session["time_left_text"]) == ("30 min", duration_text(session["seconds_left"]))
    # What JupyterLab's Extend button does: its server asks the hub with the server's own token.
    answer = hub.through_proxy_post("alice", token, "aifactory/session/extend", {"minutes": 30}).json()
    assert (answer["old_limit"], answer["new_limit"]) == ("00:10:00", "00:40:00")
    assert time_limit(alices_job) == "40:00"
    # The time left JupyterLab shows follows at once (no wait for its next squeue).
    after = hub.through_proxy("alice", token, "aifactory/session").json()
    assert after["seconds_left"] > 30 * 60 and after["time_left_text"] == duration_text(after["seconds_left"])
    assert HOME_BUTTON in hub.login("alice").get(f"{hub.url}/hub/home", timeout=30).text
    entries = hub.api("GET", "/aifactory/audit").json()["entries"]
    extended = [e for e in entries if e["event"] == "session_extended" and e.get("job_id") == alices_job]
    assert extended and extended[-1] | {"old": "00:10:00", "new": "00:40:00", "by": "alice"} == extended[-1]


@pytest.mark.slow
def test_from_the_walltime_warning_in_the_browser(extend_hub, alices_job):
    hub, _ = extend_hub
    with chromium_page(*hub.chromium_args) as page:
        sign_in(page, hub, "alice")
        page.goto(f"{hub.url}/hub/user/alice/lab")
        page.wait_for_selector(".aifw-session-status:has-text('left')", timeout=120_000)
        page.wait_for_selector("text=Your JupyterLab job ends in", timeout=60_000)
        assert page.is_visible(".aifw-extend:has-text('Extend by 30 min')")  # beside the time left
        assert_on_one_line(page)
        page.click(".jp-toast-button:has-text('Extend by 30 min')")  # the warning's own button
        page.wait_for_selector("text=was extended to 01:10:00", timeout=60_000)
        shot(page, "09-extend")
        wait_for(lambda: " 1 h " in page.inner_text(".aifw-session-status"), 20, "the status bar shows over an hour")
    assert time_limit(alices_job) == "1:10:00"


#: The middle of an element's text on the page (the box of its words, not of the element).
TEXT_MIDDLE = """selector => {
    const range = document.createRange();
    range.selectNodeContents(document.querySelector(selector));
    const box = range.getBoundingClientRect();
    return box.top + box.height / 2;
}"""


def assert_on_one_line(page) -> None:
    """The Extend button's words sit on the status bar's line, with the time left (they sat lower)."""
    status, button = (page.evaluate(TEXT_MIDDLE, selector) for selector in (".aifw-session-status", ".aifw-extend"))
    assert abs(status - button) <= 1, f"the time left's text at {status:.1f} px, Extend's at {button:.1f} px"


@pytest.mark.slow
def test_at_the_qos_limit_the_extend_button_stops_and_says_why(extend_hub):
    """Issue 36: "Extend" stayed active after the limit was reached (each press: the same refusal)."""
    hub, _ = extend_hub
    hub.start_ready("bob", {"walltime": "11:45:00", "cpus": 1})
    try:
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "bob")
            page.goto(f"{hub.url}/hub/user/bob/lab")
            page.wait_for_selector(".aifw-extend:has-text('Extend by 30 min')", timeout=120_000)
            page.click(".aifw-extend")
            said = "Not extended: the QoS interactive allows at most 12 h."
            page.wait_for_selector(f"text={said}", timeout=60_000)
            page.wait_for_function("document.querySelector('.aifw-extend').disabled")
            assert page.get_attribute(".aifw-extend", "title") == said
            assert_on_one_line(page)
    finally:
        hub.stop("bob")


@pytest.mark.slow
def test_past_the_qos_the_refusal_names_it_and_nothing_changes(extend_hub):
    hub, _ = extend_hub
    hub.start_ready("bob", {"walltime": "11:45:00", "cpus": 1})
    try:
        (job_id,) = [j for j, state in _queued("bob").items() if state == "RUNNING"]
        refused = extend_api(hub, "bob", 30)  # 11 h 45 min + 30 min > 12 h
        assert refused.status_code == 403
        assert refused.json()["message"] == "the QoS interactive allows at most 12 h"
        assert time_limit(job_id) == "11:45:00"
    finally:
        hub.stop("bob")


@pytest.mark.slow
def test_a_colleague_cannot_extend_and_bob_cannot_extend_alices(extend_hub, alices_job):
    hub, _ = extend_hub
    before = time_limit(alices_job)
    headers = {"Authorization": f"token {hub.user_token('bob')}"}
    r = requests.post(
        f"{hub.url}/hub/api/aifactory/extend/alice",
        json={"minutes": 10},
        headers=headers,
        timeout=60,
        verify=hub.verify,
    )
    assert r.status_code in (403, 404)
    assert time_limit(alices_job) == before


@pytest.mark.slow
def test_the_helper_itself_refuses_others_jobs_dask_workers_and_plain_jobs(extend_hub, alices_job):
    _, wrapper = extend_hub
    bobs = submit_as("bob", TEST_JOB_NAME)  # named like a session, but bob's
    workers = submit_as("alice", f"aifw-dask-{alices_job}")
    plain = submit_as("alice", "aifw-test-plain")
    try:
        for job_id in (bobs, workers, plain):
            answer = as_hub("sudo", "-n", str(wrapper), "alice", job_id, "10")
            assert answer.returncode == NO_SUCH_JOB, (job_id, answer)
            assert "alice has no running JupyterLab job" in json.loads(answer.stdout)["message"]
            assert time_limit(job_id) == "10:00"
        # The installed helper (make install) refuses bob's job in alice's name too.
        installed = as_hub("sudo", "-n", str(LIBEXEC / "aifactory-extend-job"), "alice", bobs, "10")
        assert installed.returncode in (NO_SUCH_JOB, OFF) and time_limit(bobs) == "10:00"
        # sudo's rule lets nothing else through.
        for argv in (["alice", f"{bobs};id", "10"], ["alice", bobs], ["../x", bobs, "10"]):
            assert as_hub("sudo", "-n", str(wrapper), *argv).returncode == 1, argv
    finally:
        subprocess.run(["scancel", bobs, workers, plain], check=False)


@pytest.mark.slow
def test_with_extend_off_it_is_not_offered_and_hub_and_helper_refuse(helper_dir, extend_hub):
    """Last in this file: the second hub's shutdown cancels every test job, alice's too."""
    _, wrapper = extend_hub
    site_copy = helper_dir / "site.yaml"
    kept = site_copy.read_text()
    off = yaml.safe_load(kept)
    off.setdefault("singleuser", {})["extend"] = "off"
    site_copy.write_text(yaml.safe_dump(off))
    try:
        answer = as_hub("sudo", "-n", str(wrapper), "alice", "1", "10")  # refused before SLURM is asked
        assert answer.returncode == OFF and "singleuser.extend: off" in answer.stdout
    finally:
        site_copy.write_text(kept)
    hub = launch(singleuser={"extend": "off"})
    try:
        hub.start_ready("bob", {"walltime": "00:10:00", "cpus": 1})
        token = hub.user_token("bob")
        assert hub.through_proxy("bob", token, "aifactory/session").json()["extend_minutes"] == 0
        home = hub.login("bob").get(f"{hub.url}/hub/home", timeout=30)
        assert "aifw-session" in home.text and HOME_BUTTON not in home.text
        refused = extend_api(hub, "bob", 10)
        assert refused.status_code == 403 and "singleuser.extend: off" in refused.json()["message"]
    finally:
        hub.shutdown()
