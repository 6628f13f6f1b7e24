"""Issue 23, item 3: `aifactory-site install`, which `make install` ran before this suite. Run
again it changes nothing; the sudo rules pass visudo and the unit passes systemd-analyze; the
unit's own lines start a hub where systemd is not PID 1 (as `make demo` starts it); and root
changes no folder that the hub's account swapped for a link."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests
import yaml

from aifactory_workbench.root.site_install import UNIT, owned_folder, start_hub_without_systemd, unit_service
from tests.harness import HUB_USER, VENV, wait_for, write_site

pytestmark = pytest.mark.integration

SITE = "/etc/aifactory/site.yaml"


def test_install_again_changes_nothing_and_what_it_wrote_verifies():
    done = subprocess.run([str(VENV / "bin" / "aifactory-site"), "install", SITE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 12 and all(line.startswith("as it was") for line in lines), done.stdout
    assert subprocess.run(["visudo", "-cqf", "/etc/sudoers.d/aifactory-hub"]).returncode == 0
    verified = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
    assert verified.returncode == 0 and not (verified.stdout + verified.stderr).strip(), verified.stderr
    service = unit_service(UNIT.read_text())
    assert service["User"] == [HUB_USER] and f"AIFACTORY_SITE_CONFIG={SITE}" in service["Environment"]
    assert service["ExecStartPre"] == [f"{VENV}/bin/aifactory-site upgrade {SITE}"]
    config = VENV / "etc" / "aifactory" / "jupyterhub_config.py"
    assert service["ExecStart"] == [f"{VENV}/bin/jupyterhub -f {config}"] and config.is_file()
    state_dir = yaml.safe_load(Path(SITE).read_text())["hub"].get("state_dir", "/var/lib/aifactory/hub")
    rotation = Path("/etc/logrotate.d/aifactory-workbench").read_text()
    assert f"{state_dir}/audit.log {{" in rotation and f"su {HUB_USER} {HUB_USER}" in rotation


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
        assert start_hub_without_systemd(unit, log, pid) == 0
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
