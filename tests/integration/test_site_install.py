"""Issue 23, item 3: `aifactory-site install`, which `make install` ran before this suite. Run
again it changes nothing; the sudo rules pass visudo and the unit passes systemd-analyze; the
unit's own lines start a hub where systemd is not PID 1 (as `make demo` starts it); and root
changes no folder that the hub's account swapped for a link. Issue 34, hole 4: the hub's log
(every user's sign-ins, addresses, jobs and errors) is no ordinary user's to read, nor are its
rotated copies."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest
import requests
import yaml

from aifactory_workbench.root.site_install import UNIT, owned_folder, start_hub_without_systemd, unit_service
from tests.harness import HUB_USER, HUB_VENV, LIBEXEC, VENV, wait_for, write_site

pytestmark = pytest.mark.integration

SITE = "/etc/aifactory/site.yaml"


def test_install_again_changes_nothing_and_what_it_wrote_verifies():
    done = subprocess.run([str(HUB_VENV / "bin" / "aifactory-site"), "install", SITE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 12 and all(line.startswith("as it was") for line in lines), done.stdout
    assert subprocess.run(["visudo", "-cqf", "/etc/sudoers.d/aifactory-hub"]).returncode == 0
    verified = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
    assert verified.returncode == 0 and not (verified.stdout + verified.stderr).strip(), verified.stderr
    service = unit_service(UNIT.read_text())
    assert service["User"] == [HUB_USER] and f"AIFACTORY_SITE_CONFIG={SITE}" in service["Environment"]
    assert service["ExecStartPre"] == [f"{HUB_VENV}/bin/aifactory-site upgrade {SITE}"]
    config = HUB_VENV / "etc" / "aifactory" / "jupyterhub_config.py"
    assert service["ExecStart"] == [f"{HUB_VENV}/bin/jupyterhub -f {config}"] and config.is_file()
    state_dir = yaml.safe_load(Path(SITE).read_text())["hub"].get("state_dir", "/var/lib/aifactory/hub")
    rotation = Path("/etc/logrotate.d/aifactory-workbench").read_text()
    assert f"{state_dir}/audit.log {{" in rotation and f"su {HUB_USER} {HUB_USER}" in rotation
    assert "/var/log/aifactory/hub.log {" in rotation
    # SLURM's epilog (slurm.conf: Epilog=), which slurmd runs as root: root's alone.
    epilog = LIBEXEC / "aifactory-epilog"
    info = epilog.lstat()
    assert (info.st_uid, info.st_mode & 0o777) == (0, 0o755) and epilog.read_text().startswith("#!/bin/bash")


def test_the_hub_and_the_users_stack_are_installs_apart():
    """Issue 35, item 2: the hub's Python imports no science stack and no test tool; the site
    kernel's lock (the users' venv's) names no test tool; root's helpers run the hub's Python."""
    probe = "import importlib.util, sys\nprint(*[m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
    not_the_hubs = ["torch", "cartopy", "sklearn", "pyarrow", "jupyterlab", "dask", "playwright", "pytest"]
    found = subprocess.run(
        [str(HUB_VENV / "bin" / "python"), "-I", "-c", probe, *not_the_hubs], capture_output=True, text=True
    )
    assert found.returncode == 0 and found.stdout.split() == [], found.stdout + found.stderr
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    # requests, the tests' HTTP client, is JupyterLab's too: the other test tools are the tests' alone.
    test_tools = {re.match(r"[A-Za-z0-9_.-]+", d).group().lower() for d in project["optional-dependencies"]["test"]}
    test_tools -= {"requests"}
    lock = (VENV / "share" / "aifactory" / "kernel.lock").read_text().lower().splitlines()
    pinned = {line.split("==")[0] for line in lock if "==" in line}
    assert {"torch", "jupyterlab", "dask"} <= pinned and not pinned & test_tools, sorted(pinned & test_tools)
    for helper in (LIBEXEC / name for name in ("aifactory-check-password", "aifactory-cancel", "aifactory-env-list")):
        assert helper.read_text().splitlines()[0] == f"#!{HUB_VENV}/bin/python -I", helper


def test_root_finds_its_commands_as_the_guides_name_them():
    """Issue 36: `aifactory-workshop create FILE`, as the instructors' guide says it, was
    "command not found" for root: the command lives in the hub's venv alone."""
    root_path = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for command in ("aifactory-workshop", "aifactory-site"):
        ran = subprocess.run([command, "--help"], capture_output=True, text=True, env=root_path)
        assert ran.returncode == 0 and "usage:" in ran.stdout, (command, ran.stderr)
        assert Path(f"/usr/local/sbin/{command}").resolve() == (HUB_VENV / "bin" / command).resolve()


def test_the_units_own_lines_start_a_hub_without_systemd(tmp_path: Path):
    """`make demo` starts the hub this way: the installed unit, on a test's site file."""
    folder = Path(tempfile.mkdtemp(prefix="aifw-unit-", dir="/var/tmp"))
    hub_pid = 0
    try:
        token = folder / "admin.token"
        token.write_text("t" * 64)
        site = write_site(folder, token)
        subprocess.run(["chown", "-R", f"{HUB_USER}:{HUB_USER}", str(folder)], check=True)
        text = UNIT.read_text().replace(SITE, str(site))
        unit = tmp_path / UNIT.name
        unit.write_text(text.replace("WorkingDirectory=/var/lib/aifactory", f"WorkingDirectory={folder}"))
        log, pid = tmp_path / "hub.log", tmp_path / "hub.pid"
        # An older install's log, readable by all: the next start makes it no one else's.
        log.write_text("an older start\n")
        log.chmod(0o644)
        assert start_hub_without_systemd(unit, log, pid) == 0
        info = log.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, grp.getgrnam("adm").gr_gid, 0o640)
        hub_pid = int(pid.read_text())
        health = yaml.safe_load(site.read_text())["hub"]["public_url"] + "hub/health"

        def healthy() -> bool:
            if answers(health):
                return True
            assert Path(f"/proc/{hub_pid}").exists(), log.read_text()[-3000:]
            return False

        wait_for(healthy, 60, "the hub answers /hub/health", fail=False)
        assert answers(health), log.read_text()[-3000:]
        assert Path(f"/proc/{hub_pid}").stat().st_uid == pwd.getpwnam(HUB_USER).pw_uid
        assert "/bin/jupyterhub" in Path(f"/proc/{hub_pid}/cmdline").read_text()
        assert "no schema yet" in log.read_text(), "the unit's ExecStartPre (the upgrade) ran first"
    finally:
        if hub_pid:
            os.killpg(hub_pid, signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_root_changes_no_folder_the_hub_swapped_for_a_link():
    home = Path(tempfile.mkdtemp(prefix="aifw-home-", dir="/var/tmp"))
    roots = Path(tempfile.mkdtemp(prefix="aifw-roots-", dir="/var/tmp"))
    try:
        shutil.chown(home, HUB_USER, HUB_USER)
        subprocess.run(["runuser", "-u", HUB_USER, "--", "ln", "-s", str(roots), str(home / "state")], check=True)
        with pytest.raises(RuntimeError, match="is not a folder"):
            owned_folder(home / "state", HUB_USER, 0o700)
        info = roots.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (0, 0o700)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(roots, ignore_errors=True)


LOG_FOLDER = Path("/var/log/aifactory")
LOGROTATE = Path("/etc/logrotate.d/aifactory-workbench")


def as_bob(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sudo", "-n", "-u", "bob", "--", *argv], capture_output=True, text=True, timeout=30)


def test_bob_cannot_read_the_hubs_log():
    """Issue 34, hole 4: /var/log/aifactory/hub.log was 0644 in a 0755 folder."""
    assert (LOG_FOLDER / "hub.log").is_file(), "make demo (hub-start) writes it"
    read = as_bob("cat", str(LOG_FOLDER / "hub.log"))
    assert read.returncode != 0 and "Permission denied" in read.stderr, read.stdout[-500:]
    info = LOG_FOLDER.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (0, 0o750)
    for path in LOG_FOLDER.iterdir():
        assert path.lstat().st_mode & 0o037 == 0, f"{path} is {oct(path.lstat().st_mode)}"


def test_a_rotated_copy_of_the_hubs_log_is_no_one_elses(tmp_path: Path):
    """The installed rotation of the hub's log, forced (logrotate -f) on a copy of its stanza
    that names a log in a folder of the test's: the rotated copy, the compressed one and the
    log that goes on are 0640, and bob reads none."""
    rotation = LOGROTATE.read_text()
    assert f"{LOG_FOLDER}/hub.log {{" in rotation, rotation
    stanza = rotation[rotation.index(f"{LOG_FOLDER}/hub.log {{") :]
    stanza = stanza[: stanza.index("}") + 1]
    folder = Path(tempfile.mkdtemp(prefix="aifw-logs-", dir="/var/tmp"))
    try:
        folder.chmod(0o755)  # bob may enter: only the files' own modes keep him out
        log = folder / "hub.log"
        log.write_text("alice signed in from 10.0.0.7\n" * 100)
        log.chmod(0o640)
        config = tmp_path / "rotation.conf"
        config.write_text(stanza.replace(f"{LOG_FOLDER}/", f"{folder}/"))
        for _ in range(2):  # the second rotation compresses the first copy (delaycompress)
            done = subprocess.run(
                ["logrotate", "-f", "-s", str(tmp_path / "state"), str(config)], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
            log.write_text("bob signed in from 10.0.0.8\n" * 100)
        files = sorted(folder.iterdir())
        assert len(files) >= 3, files
        for path in files:
            assert path.stat().st_mode & 0o777 == 0o640, f"{path.name} is {oct(path.stat().st_mode)}"
            assert as_bob("cat", str(path)).returncode != 0, f"bob reads {path.name}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
