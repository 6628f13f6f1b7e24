"""Publish and relaunch (issue 13): alice publishes a notebook from her running session's
terminal; bob finds it from the navigation, launches it from the gallery, confirms, and gets a
job with the recorded resources and kernel, the notebook's copy in his home, opened, and run.
In the demo's setup (issue 22: publishing broke there while the suite, on plainer hubs, passed):
the https front, users' own origins, internal TLS."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.harness import HUB_USER

from .conftest import (
    VENV,
    HubProcess,
    chromium_page,
    execute_in_kernel,
    launch_demo_setup,
    requests_trusting,
    run_in_terminal,
    serious_violations,
    sh,
    shot,
    sign_in,
    wait_for,
    wait_for_kernel,
)

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Sum of ten"},
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "outputs": [],
            "source": "source = '/srv/data/climate/2020.nc'  # named in the entry, not copied",
        },
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 2,
            "source": "print(sum(range(10)))",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "45\n"}],
        },
    ],
    "metadata": {"kernelspec": {"name": "aifactory", "display_name": "Python 3 (AI Factory)", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def gallery_hub(demo_certs: Path) -> Iterator[tuple[HubProcess, Path]]:
    top = Path(tempfile.mkdtemp(prefix="aifw-gallery-", dir="/var/tmp"))
    top.chmod(0o755)
    folder = top / "gallery"
    folder.mkdir(mode=0o755)
    shutil.chown(folder, HUB_USER, HUB_USER)
    (top / "site-wheels").mkdir(mode=0o755)  # the site's index: root's alone (issue 34, hole 1)
    hub = launch_demo_setup(
        demo_certs,
        gallery={"dir": str(folder), "shared_storage": ["/srv/data"]},
        environments={"index_url": "", "find_links": [str(top / "site-wheels")]},
    )
    with requests_trusting(str(hub.verify)):
        yield hub, folder
    hub.shutdown()
    subprocess.run(["rm", "-rf", str(top)], check=False)


def stdout_cells(notebook: dict) -> list[str]:
    return ["".join(o.get("text", "")) for c in notebook["cells"] for o in c.get("outputs", []) if "text" in o]


@pytest.mark.slow
def run_headless_as(user: str, notebook: Path, *options: str) -> Path:
    """``aifactory-run-notebook run`` of ``notebook`` as ``user``; the executed copy once the job ended."""
    run = subprocess.run(
        [
            "sudo",
            "-u",
            user,
            f"{VENV}/bin/aifactory-run-notebook",
            "run",
            str(notebook),
            *options,
            "--walltime",
            "00:05:00",
        ],
        capture_output=True,
        text=True,
        cwd="/tmp",
        check=True,
    )
    job_id = run.stdout.split()[1].rstrip(":")
    executed = notebook.with_name(f"{notebook.stem}-job{job_id}.ipynb")
    wait_for(
        lambda: executed.exists() and sh("squeue", "-h", "-j", job_id, check=False).strip() == "",
        180,
        f"job {job_id} ended, its notebook written",
        every=2,
        fail=False,
    )
    return executed


def test_a_published_notebook_is_relaunched_with_its_resources_and_reproduced(gallery_hub):
    hub, folder = gallery_hub
    hub.start_ready("alice", {"cpus": 2, "memory": "1G", "walltime": "00:30:00"})
    alice = hub.user_token("alice")
    contents = f"{hub.user_url('alice')}api/contents/aifw-pub.ipynb"
    model = {"type": "notebook", "content": NOTEBOOK}
    assert requests.put(contents, json=model, headers={"Authorization": f"token {alice}"}, timeout=30).ok
    bob_home = Path("/home/bob")
    try:
        # alice publishes by name from her JupyterLab's terminal, as the gallery page says.
        said = run_in_terminal(
            hub, "alice", alice, "aifactory-publish aifw-pub.ipynb --title 'Sum of ten' --like-session", "PUBLISHED"
        )
        found = re.search(r"published aifw-pub.ipynb as entry ([0-9a-f]{12})", said)
        assert found, said
        entry_id = found.group(1)
        entry = json.loads((folder / entry_id / "entry.json").read_text())
        assert (entry["author"], entry["kernel"], entry["data_paths"]) == (
            "alice",
            "aifactory",
            ["/srv/data/climate/2020.nc"],
        )
        recorded = {k: entry["resources"][k] for k in ("cpus", "memory", "walltime")}
        assert recorded == {"cpus": 2, "memory": "1G", "walltime": "00:30:00"}
        assert re.search(r"^pyarrow==", entry["lock"], re.M) and re.search(r"^scikit-learn==", entry["lock"], re.M)
        # Immutable: the hub's files, read-only; bob cannot change or withdraw it.
        assert (folder / entry_id / "notebook.ipynb").owner() == HUB_USER
        assert (
            subprocess.run(
                ["sudo", "-u", "bob", "sh", "-c", f"echo x >> {folder / entry_id / 'notebook.ipynb'}"],
                capture_output=True,
            ).returncode
            != 0
        )

        # bob finds it from the navigation, launches it: the filled form first, then his Start.
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "bob")
            page.click("a[data-nav='gallery']")
            card = page.wait_for_selector(f"article[data-entry='{entry_id}']")
            assert "2 cores, 1G" in card.inner_text(), card.inner_text()
            assert serious_violations(page) == [], "gallery"
            shot(page, "30-gallery")
            card.query_selector(".aifw-launch").click()
            page.wait_for_selector("#aifw-gallery-entry")
            assert page.input_value("#cpus") == "2", "the form shows the recorded cores"
            page.wait_for_function("document.getElementById('aifw-start').textContent.includes('SLURM expects')")
            shot(page, "31-gallery-launch-form")
            launched = time.monotonic()
            page.click("#spawn_form button[type=submit]")
            page.wait_for_url(f"**/lab/tree/gallery/aifw-pub-{entry_id}.ipynb**", timeout=180_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            cpus, memory = sh("squeue", "-h", "-u", "bob", "-o", "%C|%m").strip().split("|")
            assert (cpus, memory) == ("2", "1G")
            copy = bob_home / "gallery" / f"aifw-pub-{entry_id}.ipynb"
            assert (
                copy.owner() == "bob" and json.loads(copy.read_text())["cells"][2]["source"] == "print(sum(range(10)))"
            )
            # His notebook runs: its published outputs cleared, Run › Run All Cells prints the same.
            wait_for_kernel(page)
            answered = time.monotonic() - launched
            print(f"FIGURE bob's Launch to his notebook's kernel answering, a site-kernel entry: {answered:.1f} s")
            page.click(".lm-MenuBar-itemLabel:text-is('Edit')")
            page.click(".lm-Menu-itemLabel:text-is('Clear Outputs of All Cells')")
            page.wait_for_selector(".jp-OutputArea-output", state="detached", timeout=30_000)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            page.wait_for_selector(".jp-OutputArea-output:has-text('45')", timeout=40_000)
            shot(page, "32-gallery-relaunched")

        # Re-executed headless in bob's own job: the published output again.
        executed = run_headless_as("bob", copy, "--memory", "500M")
        assert stdout_cells(json.loads(executed.read_text())) == stdout_cells(NOTEBOOK) == ["45\n"]

        # Withdrawn by its author only; a withdrawn entry cannot be launched.
        url = f"{hub.url}/hub/api/aifactory/gallery/{entry_id}"
        assert (
            requests.delete(url, headers={"Authorization": f"token {hub.user_token('bob')}"}, timeout=30).status_code
            == 403
        )
        # alice withdraws it from the gallery page: asked first (a dismissed question changes
        # nothing), then gone.
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "alice")
            page.goto(f"{hub.url}/hub/gallery")
            withdraw = f".aifw-withdraw[data-entry='{entry_id}']"
            asked: list[str] = []
            page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
            page.click(withdraw)
            wait_for(lambda: asked, 10, "the question before a withdrawal", every=0.1)
            assert "Withdraw \u201cSum of ten\u201d from the gallery?" in asked[0], asked
            page.wait_for_timeout(500)
            assert (folder / entry_id / "entry.json").exists(), "withdrawn although the question was dismissed"
            page.once("dialog", lambda d: d.accept())
            page.click(withdraw)
            page.wait_for_selector(f"article[data-entry='{entry_id}']", state="detached", timeout=30_000)
        assert not (folder / entry_id / "entry.json").exists()
        hub.stop("bob")
        refused = hub.start("bob", {"gallery": entry_id})
        assert refused.status_code == 400 and "may have been withdrawn" in refused.text
    finally:
        shutil.rmtree(bob_home / "gallery", ignore_errors=True)
        hub.stop("bob")
        hub.stop("alice")


def server_token(hub: HubProcess, user: str) -> str:
    """The server's own token (its OAuth client's secret), as the user's code reads it."""
    token = hub.user_token(user)
    return execute_in_kernel(hub, user, token, "import os; print(os.environ['JUPYTERHUB_API_TOKEN'])").strip()


def oauth_token_reaching(hub: HubProcess, visitor: str, owner: str, secret: str) -> str:
    """What the owner's server gets when ``visitor`` opens it: an OAuth token of the visitor's,
    issued to the server's OAuth client.  The owner's code completes the exchange itself."""
    session = hub.login(visitor)
    callback = f"{hub.user_url(owner)}oauth_callback"
    client = f"jupyterhub-user-{owner}"
    params = {"client_id": client, "redirect_uri": callback, "response_type": "code", "state": "aifw"}
    r = session.get(f"{hub.url}/hub/api/oauth2/authorize", params=params, timeout=30, allow_redirects=False)
    if r.status_code == 200:  # JupyterHub asks the visitor to confirm: the visitor does
        form = {
            "_xsrf": session.cookies.get("_xsrf", path="/hub/"),
            "scopes": re.findall(r'name="scopes" value="([^"]+)"', r.text),
        }
        r = session.post(r.url, data=form, timeout=30, allow_redirects=False)
    assert r.status_code == 302, r.text
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    exchange = {
        "client_id": client,
        "client_secret": secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback,
    }
    reply = requests.post(f"{hub.url}/hub/api/oauth2/token", data=exchange, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def publish_as(hub: HubProcess, token: str, owner: str, title: str) -> requests.Response:
    return requests.post(
        f"{hub.url}/hub/api/aifactory/gallery/publish/{owner}/",
        timeout=120,
        json={"path": "aifw-pub.ipynb", "title": title},
        headers={"Authorization": f"token {token}"},
    )


def withdraw_as(hub: HubProcess, token: str, entry_id: str) -> requests.Response:
    return requests.delete(
        f"{hub.url}/hub/api/aifactory/gallery/{entry_id}", timeout=30, headers={"Authorization": f"token {token}"}
    )


@pytest.mark.slow
def test_a_token_that_reached_a_server_neither_publishes_nor_withdraws(gallery_hub):
    """Issue 21, hole 7: bob, and the instructor (an admin), open alice's server shared with them;
    each hands her server an OAuth token.  Her code replays them: it may neither withdraw bob's
    entry or alice's, nor publish as bob.  Their own tokens and sessions still can."""
    hub, folder = gallery_hub
    hub.start_ready("alice")
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    model = {"type": "notebook", "content": NOTEBOOK}
    contents = f"{hub.user_url('alice')}api/contents/aifw-pub.ipynb"
    assert requests.put(contents, json=model, headers={"Authorization": f"token {alice}"}, timeout=30).ok
    shares = f"{hub.url}/hub/api/shares/alice/"
    hub.ensure_user("instructor")
    for colleague in ("bob", "instructor"):  # the instructor, an admin, opens servers shared with them
        shared = requests.post(
            shares, json={"user": colleague}, headers={"Authorization": f"token {alice}"}, timeout=30
        )
        assert shared.ok, shared.text
    try:
        bobs_entry = publish_as(hub, bob, "alice", "Published by bob")  # bob's own token: his consent
        assert bobs_entry.status_code == 201, bobs_entry.text
        alices_entry = publish_as(hub, alice, "alice", "Published by alice")
        assert alices_entry.status_code == 201, alices_entry.text
        secret = server_token(hub, "alice")
        replayed = {who: oauth_token_reaching(hub, who, "alice", secret) for who in ("bob", "instructor")}
        assert hub.through_proxy("alice", replayed["bob"]).status_code == 200  # the token does reach her server

        for who, token in replayed.items():
            for entry in (bobs_entry.json()["id"], alices_entry.json()["id"]):
                refused = withdraw_as(hub, token, entry)
                assert refused.status_code == 403, f"{who}'s replayed token withdrew {entry}: {refused.status_code}"
            as_them = publish_as(hub, token, "alice", f"Not published by {who}")
            assert as_them.status_code == 403, f"{who}'s replayed token published: {as_them.status_code}"
        assert {e.parent.name for e in folder.glob("*/entry.json")} >= {
            bobs_entry.json()["id"],
            alices_entry.json()["id"],
        }
        assert withdraw_as(hub, bob, bobs_entry.json()["id"]).status_code == 204
        # The server's own token (aifactory-publish) and the admin's own session still withdraw.
        assert withdraw_as(hub, secret, alices_entry.json()["id"]).status_code == 204
    finally:
        requests.delete(shares, headers={"Authorization": f"token {alice}"}, timeout=30)
        hub.stop("alice")


@pytest.mark.slow
def test_publishing_works_with_internal_ssl_and_stops_at_its_limit(gallery_hub):
    """Issue 21, hole 13: as the demo runs (internal_ssl), the hub reads the notebook from the
    server over mutual TLS; a notebook over 20 MB is refused with the reason."""
    hub, folder = gallery_hub
    hub.start_ready("alice")
    alice = hub.user_token("alice")
    big = {
        **NOTEBOOK,
        "cells": [*NOTEBOOK["cells"], {"cell_type": "markdown", "metadata": {}, "source": "x" * (21 * 2**20)}],
    }
    home = Path("/home/alice")
    try:
        for name, notebook in (("aifw-pub.ipynb", NOTEBOOK), ("aifw-big.ipynb", big)):
            model = {"type": "notebook", "content": notebook}
            r = requests.put(
                f"{hub.user_url('alice')}api/contents/{name}",
                json=model,
                timeout=120,
                headers={"Authorization": f"token {alice}"},
            )
            assert r.ok, r.text
        said = execute_in_kernel(hub, "alice", alice, "!aifactory-publish aifw-pub.ipynb --title 'Sum of ten'")
        found = re.search(r"published aifw-pub.ipynb as entry ([0-9a-f]{12})", said)
        assert found, said
        published = json.loads((folder / found.group(1) / "entry.json").read_text())
        assert published["author"] == "alice" and published["resources"]["gpus"] == 0, published  # none chosen
        assert "it needs " in said and "--like-session" in said, said  # the session's as a suggestion
        said = execute_in_kernel(hub, "alice", alice, "!aifactory-publish aifw-big.ipynb --title 'Too big' 2>&1")
        assert "aifw-big.ipynb is over 20 MB" in said, said
    finally:
        for name in ("aifw-pub.ipynb", "aifw-big.ipynb"):
            (home / name).unlink(missing_ok=True)
        hub.stop("alice")


@pytest.mark.slow
def test_a_notebook_in_alices_environment_is_relaunched_by_bob_in_that_environment_built_once(gallery_hub):
    """Issue 26, item 4 (written, not yet run on the cluster): alice builds an environment with
    a wheel the test writes (in a folder bob can read: no index), publishes a notebook of its
    kernel from her terminal; the page shows what it needs and that it can be built; bob's
    launch builds it in his job (~/.aifactory/envs/gallery-HASH) and opens the notebook in it,
    re-executing it headless gives alice's output, and his second launch reuses the build."""
    from tests.wheels import PROBE, PROBE_VERSION, write_wheel

    hub, folder = gallery_hub
    wheels = folder.parent / "site-wheels"  # the site's index (issue 34: the only one a launch installs from)
    write_wheel(wheels, PROBE, PROBE_VERSION)
    sh("chmod", "-R", "a+rX", str(wheels))
    env = "aifw-test-gallery-env"
    home = {user: Path(f"/home/{user}") for user in ("alice", "bob")}
    (home["alice"] / "aifw-env.txt").write_text(f"{PROBE}=={PROBE_VERSION}\n")
    sh("chown", "alice:alice", str(home["alice"] / "aifw-env.txt"))
    job = ["srun", "--job-name=aifw-test-env", "--partition=gpp", "--time=00:10:00", "--mem=2G"]
    # An earlier run that stopped before its clean-up may have left the environment.
    subprocess.run(["sudo", "-u", "alice", f"{VENV}/bin/aifactory-env", "remove", env], check=False)
    made = subprocess.run(
        ["sudo", "-u", "alice", *job, f"--chdir={home['alice']}", f"{VENV}/bin/aifactory-env", "create", env]
        + ["--file", "aifw-env.txt", "--no-index", "--find-links", str(wheels)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr
    notebook = json.loads(json.dumps(NOTEBOOK))
    notebook["cells"][2]["source"] = f"import {PROBE}; print({PROBE}.__version__)"
    notebook["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"{PROBE_VERSION}\n"}]
    notebook["metadata"]["kernelspec"] = {"name": env, "display_name": f"Python ({env})", "language": "python"}
    hub.start_ready("alice", {"cpus": 1, "memory": "1G", "walltime": "00:30:00"})
    alice = hub.user_token("alice")
    contents = f"{hub.user_url('alice')}api/contents/aifw-env-pub.ipynb"
    assert requests.put(
        contents,
        json={"type": "notebook", "content": notebook},
        headers={"Authorization": f"token {alice}"},
        timeout=30,
    ).ok
    try:
        said = run_in_terminal(
            hub, "alice", alice, "aifactory-publish aifw-env-pub.ipynb --title 'Probe version'", "PUBLISHED"
        )
        entry_id = re.search(r"as entry ([0-9a-f]{12})", said).group(1)
        entry = json.loads((folder / entry_id / "entry.json").read_text())
        kernel = entry["environment"]["kernel"]
        assert re.fullmatch(r"gallery-[0-9a-f]{32}", kernel) and entry["environment"]["base"] == "aifactory"
        assert "--hash=sha256:" in (folder / entry_id / "environment.lock").read_text()
        assert f"{PROBE.replace('_', '-')}=={PROBE_VERSION}" in entry["lock"].replace("_", "-").splitlines()
        assert (
            json.loads((folder / entry_id / "notebook.ipynb").read_text())["metadata"]["kernelspec"]["name"] == kernel
        )

        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "bob")
            page.goto(f"{hub.url}/hub/gallery")
            card = page.wait_for_selector(f"article[data-entry='{entry_id}']").inner_text()
            assert f"{PROBE.replace('_', '-')}=={PROBE_VERSION}" in card and "Its build took" in card, card
            page.wait_for_selector(f"article[data-entry='{entry_id}'] .aifw-buildable[data-state='ok']", timeout=30_000)

        firsts, answers = [], []
        for launch in ("first", "second"):
            hub.stop("bob")
            launched = time.monotonic()
            firsts.append(hub.start_ready("bob", {"gallery": entry_id, "memory": "1G"}))
            built = home["bob"] / ".aifactory" / "envs" / kernel
            assert (built / "bin" / "python").exists(), f"{launch} launch: no environment built"
            copy = home["bob"] / "gallery" / f"aifw-env-pub-{entry_id}.ipynb"
            assert json.loads(copy.read_text())["metadata"]["kernelspec"]["name"] == kernel
            reply = execute_in_kernel(
                hub,
                "bob",
                hub.user_token("bob"),
                f"import {PROBE}, sys; print({PROBE}.__version__, sys.executable)",
                kernel=kernel,
            )
            answers.append(time.monotonic() - launched)
            assert reply.strip() == f"{PROBE_VERSION} {built / 'bin' / 'python'}", reply
        print(f"FIGURE bob's launch to ready, first (builds) {firsts[0]:.1f} s, second (reuses) {firsts[1]:.1f} s")
        print(
            "FIGURE bob's Launch to his notebook's kernel answering, an entry of alice's environment: "
            f"first (builds) {answers[0]:.1f} s, second (reuses) {answers[1]:.1f} s (a site-kernel entry's: above)"
        )
        log = max((home["bob"] / ".aifactory" / "logs").glob("jupyterlab-*.log"), key=lambda p: p.stat().st_mtime)
        assert "found built (no rebuild)" in log.read_text()

        executed = run_headless_as("bob", copy)
        assert stdout_cells(json.loads(executed.read_text())) == [f"{PROBE_VERSION}\n"]
    finally:
        hub.stop("bob")
        hub.stop("alice")
        for user in ("alice", "bob"):
            subprocess.run(["sudo", "-u", user, f"{VENV}/bin/aifactory-env", "remove", env], check=False)
        shutil.rmtree(home["bob"] / "gallery", ignore_errors=True)
        for built in (home["bob"] / ".aifactory" / "envs").glob("gallery-*"):  # and their kernels
            subprocess.run(["sudo", "-u", "bob", f"{VENV}/bin/aifactory-env", "remove", built.name], check=False)


def evil_wheel(folder: Path, name: str, version: str) -> Path:
    """bob's wheel: a .pth file, which Python runs at every start, as whoever installed it."""
    from tests.wheels import write_wheel

    wheel = write_wheel(folder, name, version)
    with zipfile.ZipFile(wheel, "a") as z:
        z.writestr("aifw_bw.pth", "import os; open(os.path.expanduser('~/aifw-pwned'), 'a').close()\n")
    return wheel


def publish_environment(hub: HubProcess, token: str, owner: str, lock: str, index: list[str]) -> requests.Response:
    """What aifactory-publish sends for a notebook of an environment ``bw-env``: the hub sees only this."""
    environment = {
        "kernel": "bw-env",
        "display_name": "Python (bw-env)",
        "base": "aifactory",
        "lock": lock,
        "build": {"seconds": 1.0, "size": 1024, "python": "3.11", "index": index},
    }
    return requests.post(
        f"{hub.url}/hub/api/aifactory/gallery/publish/{owner}/",
        timeout=120,
        json={"path": "aifw-bw.ipynb", "title": "Handy tools", "environment": environment},
        headers={"Authorization": f"token {token}"},
    )


@pytest.mark.slow
def test_a_publishers_own_index_or_a_swapped_wheel_never_runs_as_the_launcher(gallery_hub):
    """Issue 34, hole 1: bob publishes an environment whose record names a folder of wheels he
    controls (its wheel carries a .pth): refused, and so is a package the site's index lacks.
    An entry pinned on the site's index whose wheel is swapped afterwards (same name and
    version, bob's .pth inside) installs nothing when alice launches it: no .pth ran as her, no
    environment is left; the same pins published again get another kernel, never the old build."""
    hub, folder = gallery_hub
    site = folder.parent / "site-wheels"
    bobs = Path(tempfile.mkdtemp(prefix="aifw-bw-", dir="/tmp"))
    evil_wheel(bobs, "aifw_bw", "1.0")
    sh("chown", "-R", "bob:bob", str(bobs))
    sh("chmod", "-R", "a+rX", str(bobs))
    alice_home = Path("/home/alice")
    marker = alice_home / "aifw-pwned"
    marker.unlink(missing_ok=True)
    notebook = json.loads(json.dumps(NOTEBOOK))
    notebook["metadata"]["kernelspec"] = {"name": "bw-env", "display_name": "Python (bw-env)", "language": "python"}
    hub.start_ready("bob")
    bob = hub.user_token("bob")
    contents = f"{hub.user_url('bob')}api/contents/aifw-bw.ipynb"
    model = {"type": "notebook", "content": notebook}
    assert requests.put(contents, json=model, headers={"Authorization": f"token {bob}"}, timeout=30).ok
    entries = set()
    try:
        own_index = publish_environment(hub, bob, "bob", "aifw-bw==1.0\n", ["--no-index", "--find-links", str(bobs)])
        assert own_index.status_code == 400, f"bob's own index was accepted: {own_index.status_code} {own_index.text}"
        assert "not the site's package index" in own_index.json()["message"], own_index.text
        missing = publish_environment(hub, bob, "bob", "aifw-bw==1.0\n", [])
        assert missing.status_code == 400, missing.text
        assert "aifw-bw==1.0: not on the site's index" in missing.json()["message"], missing.text

        # Pinned on the site's index, then the wheel there is swapped for bob's (as root: a mirror gone bad).
        from tests.wheels import write_wheel

        write_wheel(site, "aifw_tool", "2.0")
        sh("chmod", "-R", "a+rX", str(site))
        honest = publish_environment(hub, bob, "bob", "aifw-tool==2.0\n", ["--no-index", "--find-links", str(site)])
        assert honest.status_code == 201, honest.text
        entry_id = honest.json()["id"]
        entries.add(entry_id)
        entry = json.loads((folder / entry_id / "entry.json").read_text())
        kernel = entry["environment"]["kernel"]
        assert "--hash=sha256:" in (folder / entry_id / "environment.lock").read_text()
        (site / "aifw_tool-2.0-py3-none-any.whl").unlink()
        evil_wheel(site, "aifw_tool", "2.0")
        sh("chmod", "-R", "a+rX", str(site))
        again = publish_environment(hub, bob, "bob", "aifw-tool==2.0\n", [])
        assert again.status_code == 201, again.text
        entries.add(again.json()["id"])
        assert json.loads((folder / again.json()["id"] / "entry.json").read_text())["environment"]["kernel"] != kernel

        hub.start_ready("alice", {"gallery": entry_id, "memory": "1G"})
        log = max((alice_home / ".aifactory" / "logs").glob("jupyterlab-*.log"), key=lambda p: p.stat().st_mtime)
        assert "Hash mismatch" in log.read_text() or "hash mismatch" in log.read_text(), log.read_text()[-2000:]
        assert not (alice_home / ".aifactory" / "envs" / kernel).exists(), "an environment was left"
        assert not marker.exists(), "bob's .pth ran as alice"
    finally:
        hub.stop("alice")
        hub.stop("bob")
        marker.unlink(missing_ok=True)
        shutil.rmtree(alice_home / "gallery", ignore_errors=True)
        for entry_id in entries:
            withdraw_as(hub, bob, entry_id)
        subprocess.run(["rm", "-rf", str(bobs)], check=False)
        (Path("/home/bob") / "aifw-bw.ipynb").unlink(missing_ok=True)


@pytest.mark.slow
def test_launch_while_bobs_jupyterlab_runs_opens_it_there_or_stops_and_relaunches(gallery_hub):
    """Issue 36, item 1: bob pressed Launch while his own JupyterLab ran and landed in his old
    session, with no copy and no word. Now Launch says what each way does: (a) his running
    JupyterLab copies the notebook into ~/gallery as bob and opens it (no new job; the page names
    his session's resources beside the entry's, which are not applied); (c) Stop and relaunch
    asks first, stops his job, and leads to the filled form."""
    hub, _ = gallery_hub
    hub.start_ready("alice")
    alice = hub.user_token("alice")
    contents = f"{hub.user_url('alice')}api/contents/aifw-pub.ipynb"
    model = {"type": "notebook", "content": NOTEBOOK}
    assert requests.put(contents, json=model, headers={"Authorization": f"token {alice}"}, timeout=30).ok
    published = requests.post(
        f"{hub.url}/hub/api/aifactory/gallery/publish/alice/",
        timeout=120,
        json={"path": "aifw-pub.ipynb", "title": "Sum of ten, again", "resources": {"cpus": 2, "memory": "1G"}},
        headers={"Authorization": f"token {alice}"},
    )
    assert published.status_code == 201, published.text
    entry_id = published.json()["id"]
    copy = Path("/home/bob") / "gallery" / f"aifw-pub-{entry_id}.ipynb"
    try:
        hub.start_ready("bob", {"cpus": 1, "memory": "500M", "walltime": "00:30:00"})
        jobs_before = sh("squeue", "-h", "-u", "bob", "-o", "%i").split()
        assert len(jobs_before) == 1, jobs_before
        # The attacks on bob's new route: another tenant's token reaches nothing of his server, and
        # a page of another site that sends his browser there gets a question, not a copy.
        opener = f"{hub.user_url('bob')}aifactory/gallery/{entry_id}"
        as_alice = {"Authorization": f"token {hub.user_token('alice')}"}
        assert requests.get(opener, headers=as_alice, timeout=30, allow_redirects=False).status_code == 403
        cross = {"Authorization": f"token {hub.user_token('bob')}", "Sec-Fetch-Site": "cross-site"}
        asked_first = requests.get(opener, headers=cross, timeout=30, allow_redirects=False)
        assert asked_first.status_code == 200 and "aifw-gallery-open" in asked_first.text, asked_first.text[:300]
        assert not copy.exists(), "a copy made without bob's confirmation"
        # A colleague bob shares his JupyterLab with reaches his files, but not this route: it
        # writes into bob's home what alice chooses from the gallery.
        shares = f"{hub.url}/hub/api/shares/bob/"
        as_bob = {"Authorization": f"token {hub.user_token('bob')}"}
        assert requests.post(shares, json={"user": "alice"}, headers=as_bob, timeout=30).status_code == 200
        try:
            contents = f"{hub.user_url('bob')}api/contents"
            wait_for(
                lambda: requests.get(contents, headers=as_alice, timeout=30).status_code == 200,
                60,
                "alice reaching bob's shared JupyterLab",
                every=2,
            )
            in_bobs_lab = as_alice | {"Sec-Fetch-Site": "same-origin"}  # alice, browsing bob's shared JupyterLab
            for method in ("GET", "POST"):
                refused = requests.request(method, opener, headers=in_bobs_lab, timeout=30, allow_redirects=False)
                said = refused.text
                assert refused.status_code == 403 and "Only its owner opens gallery notebooks here" in said, (
                    method,
                    said,
                )
            assert not copy.exists(), "a colleague made a copy in bob's home"
        finally:
            requests.patch(shares, json={"user": "alice"}, headers=as_bob, timeout=30)
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "bob")
            page.goto(f"{hub.url}/hub/gallery")
            page.click(f"article[data-entry='{entry_id}'] .aifw-launch")
            page.wait_for_selector("#aifw-launch-choice[data-state='running']")
            said = page.inner_text("#aifw-launch-choice")
            assert "Your JupyterLab is running" in said, said
            assert "1 core," in page.inner_text("#aifw-choice-here .aifw-session-resources"), said
            assert "2 cores, 1G" in page.inner_text("#aifw-choice-here .aifw-entry-resources"), said
            assert "which is not applied" in said and "what is not saved in its notebooks is lost" in said
            assert page.query_selector("#aifw-choice-named") is None, "the demo's hub allows no named servers"
            assert serious_violations(page) == [], "launch choice"
            shot(page, "36-gallery-launch-while-running")

            # (a) His running JupyterLab makes the copy, as bob, and opens it; no job is added.
            page.click("#aifw-open-here")
            # From the hub's origin (another origin of the same site, as another user's server is),
            # bob's server asks before it copies: nothing is written until he confirms.
            page.wait_for_selector("#aifw-gallery-open", timeout=60_000)
            assert entry_id in page.inner_text("#aifw-gallery-open") and not copy.exists()
            page.click("#aifw-gallery-open button[type=submit]")
            page.wait_for_url(f"**/user/bob/lab/tree/gallery/aifw-pub-{entry_id}.ipynb**", timeout=60_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            assert copy.owner() == "bob", "copied by bob's own server"
            assert json.loads(copy.read_text())["cells"][2]["source"] == "print(sum(range(10)))"
            assert sh("squeue", "-h", "-u", "bob", "-o", "%i").split() == jobs_before, "a new job was started"
            shot(page, "37-gallery-opened-in-running-session")

            # (c) Stop and relaunch: a dismissed question stops nothing; accepted, his job ends
            # and the filled form follows.
            page.goto(f"{hub.url}/hub/gallery?launch={entry_id}")
            asked: list[str] = []
            page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
            page.click("#aifw-relaunch")
            wait_for(lambda: asked, 10, "the question before stopping", every=0.1)
            assert "what is not saved" in asked[0], asked
            page.wait_for_timeout(1000)
            assert sh("squeue", "-h", "-u", "bob", "-o", "%i").split() == jobs_before, "stopped though dismissed"
            page.once("dialog", lambda d: d.accept())
            page.click("#aifw-relaunch")
            page.wait_for_selector("#aifw-gallery-entry", timeout=120_000)
            assert f"opt-gallery={entry_id}" in page.url
            assert page.input_value("#cpus") == "2", "the form shows the entry's cores"
            wait_for(lambda: sh("squeue", "-h", "-u", "bob", "-o", "%i").strip() == "", 60, "bob's job ended", every=1)
            shot(page, "38-gallery-relaunch-form")
    finally:
        shutil.rmtree(Path("/home/bob") / "gallery", ignore_errors=True)
        hub.stop("bob")
        hub.stop("alice")
