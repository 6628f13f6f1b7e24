"""Issue 26 on the real cluster: alice builds her own environment in a job of hers, with a
package the site kernel lacks (a wheel the test writes, no index); her kernel imports it,
SLURMCluster() workers run her environment's Python, a notebook job in her kernel gives the
expected output, and a broken requirement is named and leaves no kernel behind. The spawn form
and the home page list it with its size (the hub asks ``aifactory-env list --json`` as alice,
through its sudo rule); bob may not ask for alice's list, a .pth file in alice's home is not
run by the listing, and the hub cannot run the listing as an admin.

Not yet run on the cluster when written (the cluster was another engineer's then)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import requests

from tests.wheels import PROBE, PROBE_VERSION, write_wheel

from .conftest import (
    HUB_VENV,
    LIBEXEC,
    VENV,
    HubProcess,
    chromium_page,
    execute_in_kernel,
    launch,
    sh,
    sign_in,
    wait_for,
)

USER = "alice"
HOME = Path(f"/home/{USER}")
FOLDER = HOME / "aifw-test-environments"
ENV = "aifw-test-probe"
HUB_USER = "aifactory-hub"
AS_HUB = ["setpriv", f"--reuid={HUB_USER}", f"--regid={HUB_USER}", "--init-groups"]
#: What the hub runs as a user to list their environments (config/sudoers.in's AIFW_ENVS).
ENV_LIST = LIBEXEC / "aifactory-env-list"

WORKERS = f"""
import sys
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=180)
def probe():
    import sys, {PROBE}
    return sys.executable, {PROBE}.__version__
print("KERNEL", sys.executable)
for worker, (python, version) in sorted(client.run(probe).items()):
    print("WORKER", python, version)
client.close(); cluster.close()
"""


def as_alice_in_a_job(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``argv`` as alice, in a SLURM job of hers (where aifactory-env runs: never the login node)."""
    job = ["srun", "--job-name=aifw-test-env", "--partition=gpp", "--time=00:20:00", "--mem=2G", f"--chdir={FOLDER}"]
    return subprocess.run(["sudo", "-u", USER, *job, *argv], capture_output=True, text=True, timeout=timeout)


def aifactory_env(*args: str) -> subprocess.CompletedProcess:
    return as_alice_in_a_job(f"{VENV}/bin/aifactory-env", *args)


@pytest.fixture
def folder() -> Iterator[Path]:
    FOLDER.mkdir(exist_ok=True)
    write_wheel(FOLDER / "wheels", PROBE, PROBE_VERSION)
    (FOLDER / "requirements.txt").write_text(f"{PROBE}=={PROBE_VERSION}\n")
    sh("chown", "-R", f"{USER}:{USER}", str(FOLDER))
    yield FOLDER
    aifactory_env("remove", ENV)
    shutil.rmtree(FOLDER, ignore_errors=True)


@pytest.mark.slow
def test_alices_environment_is_followed_by_her_kernel_her_dask_workers_and_her_notebook_jobs(folder: Path):
    started = time.monotonic()
    made = aifactory_env(
        "create", ENV, "--file", "requirements.txt", "--no-index", "--find-links", str(folder / "wheels")
    )
    built = time.monotonic() - started
    assert made.returncode == 0, made.stderr
    print(f"FIGURE build of the test environment, in a job (srun included): {built:.1f} s")
    python = HOME / ".aifactory" / "envs" / ENV / "bin" / "python"
    spec = json.loads((HOME / ".local/share/jupyter/kernels" / ENV / "kernel.json").read_text())
    # Her environment's Python, after the launcher that checks the environment is hers alone.
    assert spec["argv"][spec["argv"].index("-m") - 1] == str(python)
    assert spec["argv"][1:6] == ["launch", "--env", str(python.parents[1]), "--owner", USER]
    lock = (python.parents[1] / "share" / "aifactory" / "kernel.lock").read_text()
    assert f"{PROBE.replace('_', '-')}=={PROBE_VERSION}" in lock.splitlines()

    # SLURMCluster() in her environment's Python: two workers, both on her Python, both import it.
    (folder / "workers.py").write_text(WORKERS)
    sh("chown", f"{USER}:{USER}", str(folder / "workers.py"))
    ran = as_alice_in_a_job(str(python), "workers.py")
    assert ran.returncode == 0, ran.stderr[-3000:]
    lines = ran.stdout.splitlines()
    assert f"KERNEL {python}" in lines
    assert [line for line in lines if line.startswith("WORKER")] == [f"WORKER {python} {PROBE_VERSION}"] * 2

    # A notebook job in her kernel, named by the notebook alone.
    nb = nbformat.v4.new_notebook()
    cell = f"import sys, {PROBE}\nprint('PROBE', {PROBE}.__version__, sys.executable)"
    nb.cells.append(nbformat.v4.new_code_cell(cell))
    nb.metadata["kernelspec"] = {"name": ENV, "display_name": ENV, "language": "python"}
    nbformat.write(nb, folder / "probe.ipynb")
    sh("chown", f"{USER}:{USER}", str(folder / "probe.ipynb"))
    said = subprocess.run(
        ["sudo", "-u", USER, f"{VENV}/bin/aifactory-run-notebook", "run", "probe.ipynb", "--walltime", "00:05:00"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
    )
    assert said.returncode == 0, said.stderr
    job_id = said.stdout.split()[1].rstrip(":")
    executed = folder / f"probe-job{job_id}.ipynb"
    # The cell's source names PROBE too: wait for the job to end, then read its output.
    wait_for(
        lambda: job_id not in sh("squeue", "-h", "-j", job_id, "-o", "%i", check=False),
        300,
        f"notebook job {job_id} to end",
    )
    (output,) = nbformat.read(executed, as_version=4).cells[0].outputs
    assert output.get("text", "").strip() == f"PROBE {PROBE_VERSION} {python}", output


@pytest.mark.slow
def test_a_broken_requirement_is_named_and_leaves_no_kernel(folder: Path):
    (folder / "broken.txt").write_text(f"{PROBE}=={PROBE_VERSION}\naifw-missing==1.0\n")
    sh("chown", f"{USER}:{USER}", str(folder / "broken.txt"))
    made = aifactory_env(
        "create", "aifw-test-broken", "--file", "broken.txt", "--no-index", "--find-links", str(folder / "wheels")
    )
    assert made.returncode != 0 and "'aifw-missing==1.0' failed" in made.stderr
    assert not (HOME / ".local/share/jupyter/kernels/aifw-test-broken").exists()
    assert not [p for p in (HOME / ".aifactory" / "envs").glob("*aifw-test-broken*")]


def test_an_unknown_kernel_is_refused_before_submitting(folder: Path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "nobodys-env", "display_name": "x", "language": "python"}
    nbformat.write(nb, folder / "unknown.ipynb")
    sh("chown", f"{USER}:{USER}", str(folder / "unknown.ipynb"))
    before = sh("squeue", "-h", "-u", USER, "-o", "%i").split()
    said = subprocess.run(
        ["sudo", "-u", USER, f"{VENV}/bin/aifactory-run-notebook", "run", "unknown.ipynb"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
    )
    assert said.returncode != 0 and "kernel 'nobodys-env' is not installed" in said.stderr
    assert not set(sh("squeue", "-h", "-u", USER, "-o", "%i").split()) - set(before), "a job was submitted"


def listing_as(user: str, *args: str) -> subprocess.CompletedProcess:
    """The hub account's sudo of the listing as ``user``, exactly as the hub runs it."""
    argv = [*AS_HUB, "sudo", "-n", "-u", user, "--", str(ENV_LIST), *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd="/tmp", timeout=60)


@pytest.fixture
def hostile_pth() -> Iterator[Path]:
    """A .pth file in alice's user site-packages that would write a marker when a Python reads it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = HOME / ".local" / "lib" / version / "site-packages"
    marker = Path(f"/tmp/aifw-test-pth-ran-{os.getpid()}")
    made = not site.exists()
    site.mkdir(parents=True, exist_ok=True)
    pth = site / "aifw-test-hostile.pth"
    pth.write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n")
    sh("chown", "-R", f"{USER}:{USER}", str(HOME / ".local"))
    yield marker
    pth.unlink()
    marker.unlink(missing_ok=True)
    if made:
        shutil.rmtree(site, ignore_errors=True)


@pytest.mark.slow
def test_the_form_and_home_show_alices_environment_with_its_size_and_only_to_her(
    folder: Path, hub: HubProcess, hostile_pth: Path
):
    made = aifactory_env(
        "create", ENV, "--file", "requirements.txt", "--no-index", "--find-links", str(folder / "wheels")
    )
    assert made.returncode == 0, made.stderr
    record = json.loads((HOME / ".aifactory" / "envs" / ENV / "share" / "aifactory" / "build.json").read_text())

    # The listing as the hub runs it: her environment with the size its build recorded; her
    # home's .pth is not read (a Python that reads her user site runs it: the trap is live).
    listed = listing_as(USER, "--json")
    assert listed.returncode == 0, listed.stderr
    [mine] = [e for e in json.loads(listed.stdout)["environments"] if e["name"] == ENV]
    assert mine["size"] == record["size"] > 0 and mine["kernel"] == ENV and mine["scope"] == "personal"
    assert not hostile_pth.exists(), "the listing ran a .pth file of alice's"
    subprocess.run(["sudo", "-u", USER, "/usr/bin/python3", "-c", "pass"], check=True, cwd="/tmp")
    assert hostile_pth.exists(), "the planted .pth is not live: this test would prove nothing"
    hostile_pth.unlink()

    # The endpoint, with her token: the site kernels, her environment, its size, the total.
    url = f"{hub.url}/hub/api/aifactory/environments/{USER}"
    alice = requests_get(url, hub.user_token(USER), hub)
    assert alice.status_code == 200, alice.text
    body = alice.json()
    site = sorted(p.name for p in (VENV / "share" / "jupyter" / "kernels").iterdir())
    assert body["listed"] and [k["name"] for k in body["site_kernels"]] == site and "aifactory" in site
    [shown] = [e for e in body["environments"] if e["name"] == ENV]
    assert shown["size"] == record["size"] and body["total"] >= record["size"] and body["total_text"]
    assert not hostile_pth.exists(), "the hub's listing ran a .pth file of alice's"
    # bob may not read alice's list: JupyterHub answers 404 for another user's resource
    # (needs_scope: it does not say whether she exists), and 403 to a token of hers without the
    # servers scope.
    refused = requests_get(url, hub.user_token("bob"), hub)
    assert refused.status_code == 404 and ENV not in refused.text, refused.text
    r = hub.api("POST", f"/users/{USER}/tokens", json={"scopes": [f"read:users:name!user={USER}"], "expires_in": 600})
    narrow = requests_get(url, r.json()["token"], hub)
    assert narrow.status_code == 403 and ENV not in narrow.text, narrow.text

    # What she sees, in Chromium: the home page's card, then the spawn form's block (shown
    # only while she has no server).
    if hub.server(USER) is not None:
        hub.stop(USER)
    row = f'#aifw-environments .aifw-env[data-name="{ENV}"]'
    with chromium_page() as page:
        sign_in(page, hub, USER)
        page.wait_for_selector(row, timeout=30_000)
        assert page.inner_text(row).startswith(f"{ENV}: {shown['size_text']}")
        assert "in all." in page.inner_text("#aifw-environments .aifw-envs-total")
        page.goto(f"{hub.url}/hub/spawn")
        page.wait_for_selector(row, timeout=30_000)
        assert "Python" in page.inner_text("#aifw-environments .aifw-site-kernels")


#: In alice's session: aifactory-env with the options given, its exit status, seconds and output.
IN_SESSION = """
import subprocess, time
started = time.monotonic()
done = subprocess.run(["{venv}/bin/aifactory-env", *{args!r}], capture_output=True, text=True, cwd="{cwd}")
print(done.returncode, round(time.monotonic() - started, 1), done.stdout + done.stderr)
"""


@pytest.mark.slow
def test_a_plain_requirements_file_builds_from_the_sites_index_in_a_session_or_says_what_to_do(folder: Path):
    """Issue 36, item 3, in alice's JupyterLab session: ``aifactory-env create`` with no option
    installs from the site's package index (here a folder of wheels, no index server), takes
    what the site kernel has as asked without any download; an index that does not answer is
    named within 10 s, with what to do."""
    yaml_version = sh(f"{VENV}/bin/python", "-c", "import importlib.metadata as m; print(m.version('PyYAML'))")
    (folder / "plain.txt").write_text(f"{PROBE}=={PROBE_VERSION}\nPyYAML=={yaml_version.strip()}\n")
    sh("chown", f"{USER}:{USER}", str(folder / "plain.txt"))
    site_index = ["--no-index", "--find-links", str(folder / "wheels")]
    hub = launch(environments={"index_url": "", "find_links": [str(folder / "wheels")]})
    try:
        hub.start_ready(USER)

        def in_session(*args: str) -> tuple[int, float, str]:
            code = IN_SESSION.format(venv=VENV, args=list(args), cwd=folder)
            status, seconds, said = execute_in_kernel(hub, USER, hub.user_token(USER), code).split(" ", 2)
            return int(status), float(seconds), said

        status, _, said = in_session("create", ENV, "--file", "plain.txt")
        assert status == 0, said
        prefix = HOME / ".aifactory" / "envs" / ENV
        lock = (prefix / "share" / "aifactory" / "kernel.lock").read_text().splitlines()
        assert f"aifw-probe=={PROBE_VERSION}" in lock and not any(line.lower().startswith("pyyaml") for line in lock)
        assert f"# PyYAML=={yaml_version.strip()}: the site's, as the file asked" in lock
        assert json.loads((prefix / "share" / "aifactory" / "build.json").read_text())["index"] == site_index

        # An index that does not answer (nothing listens on the node's port 9), named by the command line.
        status, seconds, said = in_session(
            "create", "aifw-test-no-index", "--file", "plain.txt", "--index-url", "http://127.0.0.1:9/simple"
        )
        assert status != 0 and seconds < 10, said
        assert "the package index http://127.0.0.1:9/simple did not answer" in said and "--find-links FOLDER" in said
        assert "Traceback" not in said and "cause:" not in said
    finally:
        if hub.server(USER) is not None:
            hub.stop(USER)
        hub.shutdown()


def requests_get(url: str, token: str, hub: HubProcess) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"token {token}"}, timeout=60, verify=hub.verify)


def test_the_hub_lists_environments_only_as_users_and_only_with_json():
    """The sudo rule: the fixed listing, with --json only, as members of the users' group and
    never of the admins' (cluster/users.txt's admins); nothing else through it."""
    users = (Path(__file__).parents[2] / "cluster" / "users.txt").read_text().splitlines()
    admins = [r.split()[0] for r in users if r and not r.startswith("#") and r.split()[2] == "admin"]
    assert admins
    for admin in admins:
        refused = listing_as(admin, "--json")
        assert refused.returncode == 1 and "a password is required" in refused.stderr, (admin, refused)
    for args in ((), ("--json", "--project", "ehpc01"), ("create", "x")):
        refused = listing_as(USER, *args)
        assert refused.returncode == 1 and "a password is required" in refused.stderr, (args, refused)
    allowed = listing_as(USER, "--json")
    assert allowed.returncode == 0 and "environments" in json.loads(allowed.stdout), allowed.stderr
    for path in (ENV_LIST, ENV_LIST.parent):
        assert path.stat().st_uid == 0 and not path.stat().st_mode & 0o022, path
    assert ENV_LIST.read_text().splitlines()[0] == f"#!{HUB_VENV}/bin/python -I"


@pytest.mark.slow
def test_the_site_modules_a_file_asks_for_are_loaded_by_its_kernel_and_a_missing_one_is_named(folder: Path):
    """``# aifactory: module climate-tools/1.0`` (cluster/modules) in the requirements: the kernel
    loads it (its variable is set in the kernel's Python); a module the site lacks fails the build."""
    (folder / "moduled.txt").write_text(f"# aifactory: module climate-tools/1.0\n{PROBE}=={PROBE_VERSION}\n")
    (folder / "missing.txt").write_text(f"# aifactory: module aifw-nothere/1.0\n{PROBE}=={PROBE_VERSION}\n")
    sh("chown", f"{USER}:{USER}", str(folder / "moduled.txt"), str(folder / "missing.txt"))
    wheels = ["--no-index", "--find-links", str(folder / "wheels")]
    made = aifactory_env("create", ENV, "--file", "moduled.txt", *wheels)
    assert made.returncode == 0, made.stderr
    spec = json.loads((HOME / ".local/share/jupyter/kernels" / ENV / "kernel.json").read_text())
    assert spec["metadata"]["aifactory"]["modules"][-1] == "climate-tools/1.0"
    record = HOME / ".aifactory" / "envs" / ENV / "share" / "aifactory" / "build.json"
    assert json.loads(record.read_text())["modules"][-1] == "climate-tools/1.0"
    launcher = spec["argv"][: spec["argv"].index("--") + 1]
    probe = "import os, sys; print(os.environ.get('CLIMATE_TOOLS_VERSION'), sys.executable)"
    said = as_alice_in_a_job(*launcher, str(spec["argv"][spec["argv"].index("--") + 1]), "-c", probe)
    assert said.returncode == 0 and said.stdout.split() == ["1.0", spec["argv"][spec["argv"].index("--") + 1]], said

    failed = aifactory_env("create", "aifw-test-nomodule", "--file", "missing.txt", *wheels)
    assert failed.returncode != 0 and "aifw-nothere/1.0" in failed.stderr, failed.stderr
    assert not (HOME / ".local/share/jupyter/kernels/aifw-test-nomodule").exists()


# A project's shared environments: a teammate cannot put their Python in place of another's ----

TEAM = "aifw-test-team"
TEAM_ENV = "team"
#: What a teammate's planted Python leaves behind, if anyone's kernel ever runs it.
PLANTED_MARK = "ran-bobs-python"


def as_member(user: str, *argv: str, projects: Path) -> subprocess.CompletedProcess:
    """``argv`` as ``user`` on the login node, with the test's projects folder (sudo's login
    groups are read afresh: the test's team group reaches this command at once)."""
    env = ["env", f"AIFACTORY_PROJECTS_DIR={projects}", "HOME=" + os.path.expanduser(f"~{user}")]
    return subprocess.run(["sudo", "-u", user, *env, *argv], capture_output=True, text=True, timeout=300)


@pytest.fixture
def team(tmp_path_factory) -> Iterator[Path]:
    """alice and bob in one project (a Unix group), its shared folder made as the docs tell a
    site (group-owned, mode 3770), and a wheel folder alice's build reads."""
    sh("groupadd", "-f", TEAM)
    for user in ("alice", "bob"):
        sh("usermod", "-aG", TEAM, user)
    projects = Path("/srv/aifw-test-projects")
    shutil.rmtree(projects, ignore_errors=True)
    (projects / TEAM).mkdir(parents=True)
    projects.chmod(0o755)
    sh("chgrp", TEAM, str(projects / TEAM))
    (projects / TEAM).chmod(0o3770)
    wheels = projects / "wheels"
    write_wheel(wheels, PROBE, PROBE_VERSION)
    (wheels / "requirements.txt").write_text(f"{PROBE}=={PROBE_VERSION}\n")
    wheels.chmod(0o755)
    yield projects
    as_member(USER, f"{VENV}/bin/aifactory-env", "remove", TEAM_ENV, "--project", TEAM, projects=projects)
    subprocess.run(
        ["sudo", "-u", USER, "rm", "-rf", os.path.expanduser(f"~{USER}/.local/share/jupyter/kernels/{TEAM_ENV}")]
    )
    shutil.rmtree(projects, ignore_errors=True)
    for user in ("alice", "bob"):
        subprocess.run(["gpasswd", "-d", user, TEAM], capture_output=True)
    subprocess.run(["groupdel", TEAM], capture_output=True)


def plant_python(user: str, prefix: Path, projects: Path) -> subprocess.CompletedProcess:
    """As ``user``: a venv-looking folder at ``prefix`` whose Python leaves a mark, then runs."""
    script = (
        f'mkdir -p "$1/bin" && echo "home = /usr/bin" > "$1/pyvenv.cfg" && '
        f'printf \'#!/bin/sh\\ntouch "$HOME/{PLANTED_MARK}"; exec /usr/bin/python3 "$@"\\n\' > "$1/bin/python" && '
        'chmod 755 "$1/bin/python"'
    )
    return as_member(user, "sh", "-c", script, "sh", str(prefix), projects=projects)


def start_kernel(user: str, name: str, projects: Path) -> subprocess.CompletedProcess:
    """The kernel ``name`` of ``user``'s, started as JupyterLab starts it (its kernelspec's argv),
    its Python asked to print a word instead of becoming a kernel."""
    spec = Path(os.path.expanduser(f"~{user}")) / ".local/share/jupyter/kernels" / name / "kernel.json"
    argv = json.loads(spec.read_text())["argv"]
    argv = argv[: argv.index("-m")] + ["-c", "print('KERNEL-STARTED')"]
    return as_member(user, "timeout", "60", *argv, projects=projects)


@pytest.mark.slow
def test_a_teammate_cannot_put_his_python_in_place_of_a_team_environment(team: Path):
    """bob renamed alice's envs/team and put his own team/bin/python in its place; alice's
    kernel (and its Dask workers) ran bob's Python as alice. Now envs/ is sticky (no member
    renames another's), and the kernel's launcher refuses an environment that is not its maker's
    alone, saying what to do, even where a site's project folder lets a member replace envs/."""
    made = as_member(
        USER,
        f"{VENV}/bin/aifactory-env", "create", TEAM_ENV, "--project", TEAM,
        "--file", str(team / "wheels" / "requirements.txt"), "--no-index", "--find-links", str(team / "wheels"),
        projects=team,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    envs = team / TEAM / "envs"
    assert envs.stat().st_mode & 0o7777 == 0o3770
    mark = Path(os.path.expanduser(f"~{USER}")) / PLANTED_MARK
    mark.unlink(missing_ok=True)

    # The rename itself is refused: envs/ is sticky.
    renamed = as_member("bob", "mv", str(envs / TEAM_ENV), str(envs / "team.old"), projects=team)
    assert renamed.returncode != 0 and "Operation not permitted" in renamed.stderr, renamed
    assert "KERNEL-STARTED" in start_kernel(USER, TEAM_ENV, team).stdout  # her kernel starts as before

    # A project folder that is not sticky (a site that made it 2770): bob replaces envs/ whole.
    (team / TEAM).chmod(0o2770)
    moved = as_member("bob", "mv", str(envs), str(team / TEAM / "envs.old"), projects=team)
    assert moved.returncode == 0, moved.stderr
    assert plant_python("bob", envs / TEAM_ENV, team).returncode == 0
    started = start_kernel(USER, TEAM_ENV, team)
    assert not mark.exists(), "alice's kernel ran bob's Python"
    assert started.returncode != 0
    assert "not starting the kernel" in started.stderr and "bob's, not alice's" in started.stderr, started.stderr
    # Put back for the fixture's clean-up (alice removes what she made).
    as_member("bob", "rm", "-rf", str(envs), projects=team)
    as_member("bob", "mv", str(team / TEAM / "envs.old"), str(envs), projects=team)
