"""What a person walks, in the setup `make demo` runs (issue 22): the https front with the
demo's CA, each user's server on its own origin, internal TLS to the compute nodes. Several
paths passed the suite's plainer hubs and broke there."""

from __future__ import annotations

import pwd
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from .conftest import (
    VENV,
    HubProcess,
    chromium_page,
    chromium_pages,
    demo_password,
    execute_in_kernel,
    gpus_held,
    queued_jobs,
    serious_violations,
    sh,
    shot,
    sign_in,
    wait_for,
)


@pytest.mark.slow
def test_a_stopped_servers_address_says_why_and_leads_to_the_hub(demo_setup_hub: HubProcess):
    """Item 3: after alice's job ended, her server's address gave an unstyled 503 (the proxy
    refused the hub's internal certificate for alice's host) whose "home" link stayed on her
    origin and looped. Now: the hub's page, styled, with why the job ended and a way home."""
    hub = demo_setup_hub
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    sh("scancel", job_id)  # root, as an admin would (or the walltime): the hub learns why
    wait_for(lambda: hub.server("alice") is None, 60, "the hub did not notice the job's end")
    lab = f"{hub.user_url('alice')}lab"
    with chromium_page(*hub.chromium_args) as page:
        sign_in(page, hub, "alice")
        answers = []
        page.on("response", lambda r: answers.append((r.status, r.url)))
        page.goto(lab)
        page.wait_for_selector("#aifw-not-running-heading", timeout=30_000)
        assert [a for a in answers if a[0] >= 500] == [], answers
        assert page.inner_text("#aifw-not-running-heading") == "Your JupyterLab is not running"
        reason = page.inner_text("#aifw-last-end")
        assert re.match(rf"Your JupyterLab job {job_id} has ended: ", reason), reason
        shot(page, "27-stopped-server")
        styled = page.evaluate("getComputedStyle(document.querySelector('#start')).backgroundColor")
        assert styled not in ("", "rgba(0, 0, 0, 0)"), "the page's stylesheet did not load"
        page.click("#aifw-not-running-home")
        page.wait_for_url(f"{hub.url}/hub/home", timeout=30_000)
        assert page.locator("#start").count() == 1


HOME_JOBS = "aifw-test-home-jobs"
KEEP_A_WORKER = (
    "from aifactory_workbench.lab.notebook import start_cluster\n"
    "client, cluster = start_cluster(minimum=1, maximum=1, adapt=False)\n"
    "client.wait_for_workers(1, timeout=240)\n"
    'print("workers:", len(client.scheduler_info()["workers"]))'
)


def notebook_job(user: str, folder: Path) -> str:
    """A one-cell notebook run as ``user``'s batch job, as a terminal would; its job id."""
    folder.mkdir(exist_ok=True)
    shutil.chown(folder, user, user)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "aifactory", "display_name": "Python 3 (AI Factory)", "language": "python"}
    nbformat.write(nb, folder / "hello.ipynb")
    shutil.chown(folder / "hello.ipynb", user, user)
    argv = [
        "sudo",
        "-u",
        user,
        f"{VENV}/bin/aifactory-run-notebook",
        "run",
        "hello.ipynb",
        "--memory",
        "1G",
        "--walltime",
        "00:10:00",
    ]
    said = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=60, check=True).stdout
    return said.split()[1].rstrip(":")


def sacct_state(job_id: str) -> str:
    return sh("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State").strip()


def nav_labels(page) -> list[str]:
    return [a.inner_text() for a in page.query_selector_all("a[data-nav]")]


@pytest.mark.slow
def test_home_shows_dask_workers_and_notebook_jobs_and_an_operator_stops_with_a_reason(demo_setup_hub: HubProcess):
    """Issue 22, items 5 and 7: two idle Dask workers were billed for 24 minutes while the home
    card never mentioned them; notebook jobs showed only in a terminal; admins had JupyterHub's
    page only, with "Shutdown Hub" in plain sight; no page linked to the gallery or the share page."""
    hub = demo_setup_hub
    home = Path(pwd.getpwnam("alice").pw_dir)
    hub.start_ready("alice")
    (session_job,) = queued_jobs("alice")
    assert "workers: 1" in execute_in_kernel(hub, "alice", hub.user_token("alice"), KEEP_A_WORKER)
    workers = sh("squeue", "-h", "--name", f"aifw-dask-{session_job}", "-o", "%i").split()
    notebook = notebook_job("alice", home / HOME_JOBS)
    wait_for(lambda: sacct_state(notebook) == "COMPLETED", 240, f"job {notebook} COMPLETED", every=2, fail=False)
    assert sacct_state(notebook) == "COMPLETED", sacct_state(notebook)
    try:
        with chromium_pages(2, *hub.chromium_args) as (alice, admin):
            sign_in(alice, hub, "alice")
            assert nav_labels(alice) == ["Home", "Gallery", "Share", "Token", "Help"]
            group = alice.wait_for_selector(f".aifw-workers[data-parent='{session_job}']", timeout=30_000)
            assert f"Dask workers of job {session_job}: 1 running, 0 queued, 1 core;" in group.inner_text()
            try:
                row = alice.wait_for_selector(f".aifw-notebook-jobs tr[data-job='{notebook}']", timeout=40_000)
            except PlaywrightTimeout:
                raise AssertionError(alice.inner_html("#aifw-jobs-card")) from None
            assert "done" in row.inner_text(), row.inner_text()
            result = row.query_selector(f"a[href$='lab/tree/{HOME_JOBS}/hello-job{notebook}.ipynb']")
            assert result is not None, row.inner_html()
            result_url = result.get_attribute("href")
            assert serious_violations(alice) == [], "home with jobs"
            shot(alice, "20-home-jobs")
            alice.click(f".aifw-workers[data-parent='{session_job}'] .aifw-stop-workers")
            running = ",".join(workers)
            wait_for(
                lambda: sh("squeue", "-h", "-j", running, "-o", "%i").strip() == "",
                60,
                "the workers still run",
                every=1,
            )
            alice.wait_for_selector(f".aifw-workers[data-parent='{session_job}']", state="detached", timeout=30_000)
            assert hub.server("alice")["ready"], "stopping the workers stopped the session"
            # The notebook job followed to its output: the executed notebook opens in her JupyterLab.
            alice.goto(f"{result_url}?reset")  # not the tabs her workspace restores
            alice.wait_for_selector(".jp-OutputArea-output:visible:has-text('42')", timeout=90_000)

            sign_in(admin, hub, "admin")
            assert nav_labels(admin) == ["Home", "Gallery", "Share", "Workshops", "Operator", "Users", "Token", "Help"]
            admin.click("a[data-nav='operator']")
            line = admin.wait_for_selector(f"#aifw-operator-jobs tr[data-job='{session_job}']")
            assert re.search(rf"JupyterLab\s+alice\s+\S+\s+gpp\s+{session_job}\s+running\s+mn5-", line.inner_text())
            assert admin.get_attribute("a[data-nav='operator']", "aria-current") == "page"
            assert serious_violations(admin) == [], "operator page"
            shot(admin, "21-operator")
            admin.fill(f"#aifw-reason-{session_job}", "node maintenance at 18:00")
            admin.click(f"#aifw-operator-jobs tr[data-job='{session_job}'] button")
            admin.wait_for_selector("#aifw-operator-stopped")
            wait_for(lambda: hub.server("alice") is None, 60, "alice's server stopped", fail=False)
            alice.goto(f"{hub.url}/hub/home")
            told = alice.inner_text("body")
            assert "admin, an operator, stopped it: node maintenance at 18:00" in told, told[:2000]
            for page_path in ("help", "gallery", "workshops", "share"):  # new pages (/hub/admin is JupyterHub's)
                admin.goto(f"{hub.url}/hub/{page_path}")
                admin.wait_for_load_state("networkidle")
                assert serious_violations(admin) == [], page_path
            admin.goto(f"{hub.url}/hub/admin")
            admin.wait_for_selector("#shutdown-button", state="attached", timeout=30_000)
            assert not admin.is_visible("#shutdown-button"), "Shutdown Hub is in plain sight"
    finally:
        shutil.rmtree(home / HOME_JOBS, ignore_errors=True)
    audit = [e["event"] for e in hub.api("GET", "/aifactory/audit").json()["entries"]]
    assert "dask_workers_stopped" in audit and "operator_stop" in audit, audit


@pytest.mark.slow
def test_sharing_with_a_colleague_who_never_signed_in_and_a_whole_link_to_copy(demo_setup_hub: HubProcess):
    """Issue 22, item 6: sharing with a colleague who had not signed in yet said "No such user:
    bob" with no way on; the share link was a path with no host, copy button or expiry; the
    recipient's home never listed what was shared with them."""
    hub = demo_setup_hub
    hub.start_ready("alice")
    assert hub.api("GET", "/users/bob").status_code == 404, "bob is to be someone who never signed in"
    with chromium_pages(2, *hub.chromium_args) as (alice, bob):
        sign_in(alice, hub, "alice")
        alice.click("a[data-nav='share']")
        alice.fill("#invite-1", "nosuchperson")
        alice.click(".aifw-invite button")
        alice.wait_for_selector(".aifw-share-error:has-text('No one named')")
        alice.fill("#invite-1", "bob")
        alice.click(".aifw-invite button")
        alice.wait_for_selector(".aifw-shares li[data-user='bob']", timeout=30_000)
        alice.click(".aifw-code")
        alice.wait_for_selector(".aifw-code-made:not([hidden])")
        link = alice.input_value(".aifw-code-url")
        assert link.startswith(f"{hub.url}/hub/accept-share?code="), link
        assert "Expires" in alice.inner_text(".aifw-code-expires")
        assert serious_violations(alice) == [], "share page"
        shot(alice, "22-share-link")
        sign_in(bob, hub, "bob")
        shared = bob.wait_for_selector("#aifw-shared-with-me li[data-owner='alice'] a")
        assert shared.get_attribute("href") == hub.user_url("alice"), shared.get_attribute("href")
        assert serious_violations(bob) == [], "home, shared with bob"
        # The consent page says whose JupyterLab it is and what opening it means, not an OAuth URL.
        shared.click()
        bob.wait_for_selector("#aifw-oauth h1", timeout=60_000)
        assert bob.inner_text("#aifw-oauth h1") == "Open alice's JupyterLab?"
        assert "you work as alice" in bob.inner_text("#aifw-oauth")
        assert serious_violations(bob) == [], "the consent page"
        shot(bob, "23-consent")
        bob.click("#aifw-oauth-allow")
        bob.wait_for_selector(".jp-LabShell", timeout=120_000)


@pytest.mark.slow
def test_a_notebook_run_as_a_batch_job_from_jupyterlabs_menu_is_followed_to_its_output(demo_setup_hub: HubProcess):
    """Issue 22, item 5: notebook jobs could be run and followed only by typing
    ``aifactory-run-notebook`` in a terminal. Now: Run › Run as Batch Job…, the resources in a
    dialog, a panel of notebook jobs, the result opened from it and from the hub's home page."""
    hub = demo_setup_hub
    home = Path(pwd.getpwnam("alice").pw_dir)
    folder = home / HOME_JOBS
    folder.mkdir(exist_ok=True)
    shutil.chown(folder, "alice", "alice")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "aifactory", "display_name": "Python 3 (AI Factory)", "language": "python"}
    nbformat.write(nb, folder / "menu.ipynb")
    shutil.chown(folder / "menu.ipynb", "alice", "alice")
    hub.start_ready("alice")
    try:
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "alice")
            page.goto(f"{hub.user_url('alice')}lab/tree/{HOME_JOBS}/menu.ipynb?reset")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run as Batch Job…')")
            page.wait_for_selector(".aifw-batch-form")
            page.fill("#aifw-batch-memory", "1G")
            page.fill("#aifw-batch-walltime", "00:10:00")
            shot(page, "24-run-as-batch-job")
            page.click(".jp-Dialog button:has-text('Submit job')")
            said = page.wait_for_selector(f".Toastify__toast:has-text('runs {HOME_JOBS}/menu.ipynb')").inner_text()
            job_id = re.search(r"Job (\d+) runs", said).group(1)
            assert "JobName=aifw-nb-menu" in sh("scontrol", "show", "job", job_id), "no such SLURM job"
            page.wait_for_selector(f"#aifw-notebook-jobs li[data-job='{job_id}']", timeout=30_000)
            done = f"#aifw-notebook-jobs li[data-job='{job_id}'] .aifw-job-state:text-is('done')"
            page.wait_for_selector(done, timeout=240_000)
            shot(page, "25-notebook-jobs-panel")
            page.click(f"#aifw-notebook-jobs li[data-job='{job_id}'] .aifw-open-result")
            page.wait_for_selector(f".lm-TabBar-tab:has-text('menu-job{job_id}.ipynb')", timeout=60_000)
            page.wait_for_selector(".jp-OutputArea-output:visible:has-text('42')", timeout=60_000)
            # The collaboration extension's "Generate a Shared Link" (a CORS error) gives way to the hub's page.
            page.click(".lm-MenuBar-itemLabel:text-is('File')")
            assert page.locator(".lm-Menu-itemLabel:text-is('Share This JupyterLab…')").count() == 1
            page.keyboard.press("Escape")
            page.goto(f"{hub.url}/hub/home")
            row = page.wait_for_selector(f".aifw-notebook-jobs tr[data-job='{job_id}']", timeout=40_000)
            assert row.query_selector(f"a[href$='lab/tree/{HOME_JOBS}/menu-job{job_id}.ipynb']") is not None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_start_in_a_stale_form_tab_leads_to_the_starting_server(demo_setup_hub: HubProcess, full_partition: str):
    """Issue 36, item 9: the form open in two tabs, Start pressed in one (the job queues on a
    full partition), then in the other: "alice is pending spawn", a 400 error page with its
    heading twice and no user menu. Now: the server's progress page, as the first tab has."""
    hub = demo_setup_hub
    with chromium_page(*hub.chromium_args) as stale:
        sign_in(stale, hub, "alice")
        stale.goto(f"{hub.url}/hub/spawn")
        start = "#spawn_form button[type=submit]"
        stale.wait_for_selector(f"{start}:enabled", timeout=60_000)
        fresh = stale.context.new_page()
        fresh.goto(f"{hub.url}/hub/spawn")
        fresh.wait_for_selector(f"{start}:enabled", timeout=60_000)
        fresh.click(start)
        fresh.wait_for_url("**/hub/spawn-pending/alice**", timeout=60_000)
        wait_for(lambda: queued_jobs("alice"), 30, "alice's job queued", every=0.25)
        assert hub.server("alice")["pending"] == "spawn"
        answers = []
        stale.on("response", lambda r: answers.append((r.status, r.url)))
        stale.click(start)
        stale.wait_for_url("**/hub/spawn-pending/alice**", timeout=30_000)
        stale.wait_for_selector("#progress-bar", state="attached", timeout=30_000)
        assert [a for a in answers if a[0] >= 400] == [], answers
        assert stale.locator("h1").count() == 1, stale.inner_text("body")[:500]
        assert stale.inner_text("h1") == "Your JupyterLab is on its way"
        assert stale.locator("#logout").count() == 1, "no user menu"
        assert len(queued_jobs("alice")) == 1, "the stale tab started a second job"
        assert serious_violations(stale) == [], "the progress page, from a stale form"
        shot(stale, "28-stale-form-start")


@pytest.mark.slow
def test_a_notebook_job_cancelled_while_queued_says_cancelled_and_offers_nothing_to_open(
    demo_setup_hub: HubProcess, full_partition: str
):
    """Issue 36, item 10: a notebook job cancelled before it started said "failed (cancelled)"
    in JupyterLab's panel, with an "Open result" that did nothing, and the home page linked an
    executed notebook and a log that were never written. Now: "cancelled", and nothing to open.
    Item 2: while it waits, the home page and the panel say why, and the panel's Cancel ends it."""
    hub = demo_setup_hub
    home = Path(pwd.getpwnam("alice").pw_dir)
    folder = home / HOME_JOBS
    hub.start_ready("alice", {"partition": "acc"})  # gpp is full: the notebook job waits there
    try:
        job_id = notebook_job("alice", folder)
        assert sh("squeue", "-h", "-j", job_id, "-o", "%T").strip() == "PENDING", "it was to wait for the full gpp"
        # As the hub asks accounting (a job submitted or cancelled this very second is not in its window yet).
        listed = ["sacct", "-X", "-n", "-u", "alice", "-S", "now-7days", "-o", "JobID"]
        wait_for(lambda: job_id in sh(*listed).split(), 30, f"job {job_id} in alice's week of jobs", every=0.5)
        with chromium_page(*hub.chromium_args) as page:  # why it waits, then Cancel from JupyterLab's panel
            sign_in(page, hub, "alice")
            row = page.wait_for_selector(f".aifw-notebook-jobs tr[data-job='{job_id}']", timeout=40_000)
            assert "queued: waiting for" in row.inner_text(), row.inner_text()
            page.goto(f"{hub.user_url('alice')}lab?reset")
            page.wait_for_selector(".jp-LabShell", timeout=120_000)
            page.click(".jp-SideBar .lm-TabBar-tab[title='Notebook jobs']")
            item = f"#aifw-notebook-jobs li[data-job='{job_id}']"
            page.wait_for_selector(f"{item} .aifw-job-waiting", timeout=30_000)
            assert page.inner_text(f"{item} .aifw-job-waiting").startswith("waiting for"), page.inner_text(item)
            page.click(f"{item} .aifw-cancel-job")
            page.click(".jp-Dialog button:has-text('Cancel job')")
            wait_for(lambda: sacct_state(job_id).startswith("CANCELLED"), 30, f"job {job_id} cancelled", every=0.5)
        assert not list(folder.glob(f"*-job{job_id}.*")), "the job wrote something after all"
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "alice")
            row = page.wait_for_selector(f".aifw-notebook-jobs tr[data-job='{job_id}']", timeout=40_000)
            said = row.inner_text()
            assert "cancelled" in said and "failed" not in said, said
            links = [a.get_attribute("href") for a in row.query_selector_all("a")]
            assert all(link.endswith(f"lab/tree/{HOME_JOBS}/hello.ipynb") for link in links), links  # the notebook only
            assert f"job{job_id}" not in said, "it names outputs that were never written"
            shot(page, "29b-cancelled-notebook-job-home")
            page.goto(f"{hub.user_url('alice')}lab?reset")
            page.wait_for_selector(".jp-LabShell", timeout=120_000)
            page.click(".jp-SideBar .lm-TabBar-tab[title='Notebook jobs']")
            item = f"#aifw-notebook-jobs li[data-job='{job_id}']"
            page.wait_for_selector(item, timeout=30_000)
            assert page.inner_text(f"{item} .aifw-job-state") == "cancelled", page.inner_text(item)
            assert page.locator(f"{item} .aifw-open-result").count() == 0, "Open result for a job that wrote nothing"
            assert page.locator(f"{item} .aifw-open-log").count() == 0, "a log that was never written"
            shot(page, "29-cancelled-notebook-job")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def unassociated_user():
    """A user the hub admits (in aifactory-users) whom no one added to SLURM (no sacctmgr)."""
    name, password = "erin", "erin-no-project-1"
    subprocess.run(["useradd", "-m", "-K", "HOME_MODE=0700", "-G", "aifactory-users", name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    yield name, password
    subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


def first_screen(page, hub: HubProcess, user: str, password: str) -> None:
    """Sign in from the login page with no page asked for: where the hub leads a person first."""
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_load_state("networkidle")


@pytest.mark.slow
def test_an_account_without_a_slurm_association_is_told_so_and_an_admin_lands_on_the_operator_page(
    demo_setup_hub: HubProcess, unassociated_user: tuple[str, str]
):
    """Issue 36, item 5: the admin's first screen was a spawn form with no partition and no
    account, "? core-hours", and Start answered "partition 'gpp' is not accepted; allowed:
    nothing". The admin (no SLURM association, as the demo's) now lands on the operator page; a
    user whom no one added to SLURM is told why nothing can start and what an admin does; the
    API refuses the start with the same words, and nothing is submitted."""
    hub = demo_setup_hub
    name, password = unassociated_user
    with chromium_page(*hub.chromium_args) as page:
        first_screen(page, hub, "admin", demo_password("admin"))
        page.wait_for_url("**/hub/operator**", timeout=30_000)
        assert page.locator("#aifw-form").count() == 0
        assert serious_violations(page) == [], "the admin's first screen"
        shot(page, "33-admin-first-screen-operator")
    with chromium_page(*hub.chromium_args) as page:
        first_screen(page, hub, name, password)
        page.wait_for_url("**/hub/spawn**", timeout=30_000)
        said = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
        assert f"Your account {name} has no SLURM association" in said, said[:800]
        assert f"sacctmgr add user {name} account=PROJECT" in said, said[:800]
        assert page.locator("#aifw-form").count() == 0, "a form that nothing could start"
        assert not page.is_visible("#spawn_form button[type=submit]"), "a Start button that could start nothing"
        assert "core-hours" not in said and "Listing your environments" not in said, said[:800]
        assert serious_violations(page) == [], "a first screen without a project"
        shot(page, "34-no-slurm-association")
    refused = hub.start(name)
    assert refused.status_code == 403, refused.text
    assert "has no SLURM association" in refused.json()["message"], refused.text
    assert queued_jobs(name) == {}


@pytest.mark.slow
def test_a_start_held_by_memory_says_so_and_less_memory_starts_now(demo_setup_hub: HubProcess):
    """Issue 36, item 4: with bob's GPU job holding 8G of the acc node's 16000M, alice's 2 GPUs
    and 8G said "about 120 min" and offered nothing, since even 1 GPU waits for memory. The form
    now says what holds the start and offers 1 GPU with the memory that is free, which starts."""
    hub = demo_setup_hub
    with gpus_held("bob", 1, memory="8G"), chromium_page(*hub.chromium_args) as page:
        sign_in(page, hub, "alice")
        page.goto(f"{hub.url}/hub/spawn")
        page.wait_for_function("document.getElementById('aifw-start').textContent.includes('SLURM expects')")
        page.select_option("#partition", "acc")
        page.fill("#walltime", "02:00:00")
        page.fill("#memory", "8G")
        page.fill("#gpus", "2")
        page.wait_for_selector(".aifw-alternative", timeout=60_000)
        held = page.inner_text("#aifw-holds")
        assert held.startswith("Waiting for memory and GPUs on acc: 8 of 15.6 GB in use"), held
        offered = page.locator(".aifw-alternative").all_inner_texts()
        assert offered[0] == "1 GPU, 7G memory: now", offered
        assert serious_violations(page) == [], "a start held by memory"
        page.locator("#aifw-holds").scroll_into_view_if_needed()
        shot(page, "35-held-by-memory")
        page.click(".aifw-alternative")
        assert page.input_value("#gpus") == "1" and page.input_value("#memory") == "7G"
        page.wait_for_function("document.getElementById('aifw-start').textContent.includes('start now')")
        page.click("#spawn_form button[type=submit]")
        hub.wait_ready("alice")
        (job,) = queued_jobs("alice")
        shown = sh("scontrol", "show", "job", job, "-o")
        assert re.search(r"gres[/:]gpu[:=]1\b", shown) and "mem=7G" in shown, shown
        hub.stop("alice")


@pytest.mark.slow
def test_a_queued_notebook_job_is_cancelled_from_the_home_page_and_only_by_its_owner(
    demo_setup_hub: HubProcess, full_partition: str
):
    """Issue 36, item 2: the home page listed a queued notebook job with no way to end it but
    JupyterLab's panel. Its row now has Cancel, which asks first (a confirm: dismissed, nothing
    happens), then cancels it as alice; bob's own route is refused for her job, which waits on."""
    hub = demo_setup_hub
    folder = Path(pwd.getpwnam("alice").pw_dir) / HOME_JOBS
    try:
        job_id = notebook_job("alice", folder)  # gpp is full: it waits there
        listed = ["sacct", "-X", "-n", "-u", "alice", "-S", "now-7days", "-o", "JobID"]
        wait_for(lambda: job_id in sh(*listed).split(), 30, f"job {job_id} in alice's week of jobs", every=0.5)
        bob = {"Authorization": f"token {hub.user_token('bob')}"}
        for owner in ("alice", "bob"):  # hers: not his to ask; his: not his job
            r = requests.post(
                f"{hub.url}/hub/api/aifactory/jobs/{owner}/notebooks/{job_id}/cancel",
                headers=bob,
                timeout=60,
                verify=hub.verify,
            )
            assert r.status_code in (403, 404) and "Traceback" not in r.text, (owner, r.status_code, r.text[:300])
        assert sacct_state(job_id) == "PENDING", "bob's request cancelled alice's job"
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "alice")
            row = f".aifw-notebook-jobs tr[data-job='{job_id}']"
            page.wait_for_selector(f"{row} .aifw-cancel-notebook-job", timeout=40_000)
            page.once("dialog", lambda d: d.dismiss())  # asked first: keeping it changes nothing
            page.click(f"{row} .aifw-cancel-notebook-job")
            assert sacct_state(job_id) == "PENDING"
            asked = []
            page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
            page.click(f"{row} .aifw-cancel-notebook-job")
            assert asked and asked[0].startswith(f"Cancel job {job_id} ("), asked
            wait_for(lambda: sacct_state(job_id).startswith("CANCELLED"), 30, f"job {job_id} cancelled", every=0.5)
            page.wait_for_function(
                "sel => (document.querySelector(sel) || {}).innerText?.includes('cancelled')",
                arg=f"{row} .aifw-notebook-state",
                timeout=30_000,
            )
            assert page.locator(f"{row} .aifw-cancel-notebook-job").count() == 0, "Cancel on an ended job"
            assert serious_violations(page) == [], "the home page with a cancelled notebook job"
            shot(page, "29c-notebook-job-cancelled-from-home")
        audit = hub.api("GET", "/aifactory/audit?n=50").json()["entries"]
        assert any(e["event"] == "notebook_job_cancelled" and e.get("job_id") == job_id for e in audit), audit[-5:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
