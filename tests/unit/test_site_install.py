"""What `aifactory-site install` writes, rendered without installing it (a placeholder left
without a value is refused): the sudo rules accepted by visudo, the unit by systemd-analyze verify;
the rotation of the hub's log, and SLURM's epilog played against what a user may plant in /tmp."""

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.root.site_install import Accounts, render, systemd_verify, unit_service, values, visudo

CONFIG = Path(__file__).parents[2] / "config"
TEMPLATES = {
    "sudoers": CONFIG / "sudoers.in",
    "profile": CONFIG / "profile.d" / "aifactory-dask.sh.in",
    "unit": CONFIG / "systemd" / "aifactory-hub.service.in",
    "logrotate": CONFIG / "logrotate" / "aifactory-workbench.in",
    "epilog": CONFIG / "epilog" / "aifactory-epilog.in",
}


@pytest.fixture
def rendered(tmp_path):
    site = load_site_config(CONFIG / "site.yaml")
    filled = values(site, Accounts())
    out = {}
    for name, template in TEMPLATES.items():
        out[name] = tmp_path / name
        out[name].write_text(render(template.read_text(), filled))
    return out


def test_the_sudo_rules_and_the_unit_verify(rendered):
    assert visudo(rendered["sudoers"]) == ""
    assert systemd_verify(rendered["unit"]) == ""
    service = unit_service(rendered["unit"].read_text())
    assert service["User"] == ["aifactory-hub"] and service["NoNewPrivileges"] == ["no"]
    assert service["ExecStart"][0].split()[0].endswith("/bin/jupyterhub")


def test_a_placeholder_without_a_value_is_refused():
    with pytest.raises(ValueError, match="@NOPE@ has no value"):
        render("User=@NOPE@\n", {"HUB_USER": "x"})


def test_the_hubs_log_is_rotated_and_its_copies_keep_its_mode(rendered):
    """Issue 34, hole 4: its copies are made from the log (copytruncate), as 0640 as it is."""
    text = rendered["logrotate"].read_text()
    stanza = text[text.index("/var/log/aifactory/hub.log {") :]
    assert "copytruncate" in stanza[: stanza.index("}")] and "su " not in stanza[: stanza.index("}")]


@pytest.mark.skipif(os.geteuid() != 0, reason="the epilog runs as root: plants other users' folders")
def test_the_epilog_removes_the_jobs_own_folders_and_follows_no_link(rendered, tmp_path):
    """Issue 34, hole 5: SLURM's epilog, as root, as a job of uid 65534 ends: its folders in /tmp
    go; a link of the user's to a folder elsewhere (as a trap for root) stays a link, and what it
    leads to stays; another user's folder, a file of that name and another job's folder stay."""
    job = str(900_000_000 + secrets.randbelow(99_999_999))
    uid = 65534
    made: list[Path] = []

    def make(name: str, owner: int, kind: str = "dir") -> Path:
        path = Path("/tmp") / name
        if kind == "dir":
            path.mkdir()
            (path / "keyfile.pem").write_text("key")
        elif kind == "file":
            path.write_text("not a folder")
        else:
            path.symlink_to(kind)
        os.lchown(path, owner, owner)
        made.append(path)
        return path

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept").write_text("kept")
    try:
        own = make(f"aifw-job-{job}.AbCdEf1234", uid)
        own2 = make(f"aifw-job-{job}.ZyXwVu9876", uid)
        link = make(f"aifw-job-{job}.LiNkLiNk00", uid, str(elsewhere))
        others = make(f"aifw-job-{job}.OtHeRuSeR0", 0)
        file = make(f"aifw-job-{job}.FiLeFiLe00", uid, "file")
        other_job = make(f"aifw-job-{job}1.AbCdEf1234", uid)
        rendered["epilog"].chmod(0o755)
        env = {"SLURM_JOB_ID": job, "SLURM_JOB_UID": str(uid), "PATH": "/usr/bin:/bin"}
        done = subprocess.run([str(rendered["epilog"])], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert not own.exists() and not own2.exists()
        assert link.is_symlink() and (elsewhere / "kept").exists()
        assert (others / "keyfile.pem").exists() and file.is_file() and (other_job / "keyfile.pem").exists()
        for bad in ({"SLURM_JOB_ID": "*", "SLURM_JOB_UID": str(uid)}, {"SLURM_JOB_ID": job, "SLURM_JOB_UID": "0"}, {}):
            assert subprocess.run([str(rendered["epilog"])], env={**bad, "PATH": "/usr/bin:/bin"}).returncode == 0
        assert (others / "keyfile.pem").exists() and (other_job / "keyfile.pem").exists()
    finally:
        for path in made:
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)


def test_roots_commands_are_linked_once_and_anothers_file_is_never_replaced(tmp_path: Path):
    from aifactory_workbench.root.site_install import ROOT_COMMANDS, root_commands, venv

    assert root_commands(tmp_path) is True and root_commands(tmp_path) is False
    for name in ROOT_COMMANDS:
        assert os.readlink(tmp_path / name) == str(venv() / "bin" / name)
    (tmp_path / ROOT_COMMANDS[0]).unlink()
    (tmp_path / ROOT_COMMANDS[0]).write_text("#!/bin/sh\n")  # a site's own script of that name
    with pytest.raises(RuntimeError, match="not this install's link"):
        root_commands(tmp_path)
    assert (tmp_path / ROOT_COMMANDS[0]).read_text() == "#!/bin/sh\n"
