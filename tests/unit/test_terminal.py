"""A JupyterLab terminal's shell (job/terminal.py): a login shell's start-up files, and then
this environment's commands first on PATH (Debian's /etc/profile set PATH afresh, and the
workbench's commands were "command not found" in the terminal; issue 22, item 2)."""

from __future__ import annotations

import os
import subprocess
import sys

from aifactory_workbench.job.terminal import BIN_ENV, shell_argv


def run_in_terminal(tmp_path, commands: str, env: dict[str, str]) -> str:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb", **env}
    shell = subprocess.run(
        shell_argv("/bin/bash"), input=commands, env=full, capture_output=True, text=True, timeout=30, cwd=home
    )
    return shell.stdout


def test_the_environments_commands_come_first_after_the_login_files(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # A user's ~/.profile, as Debian's /etc/profile does, sets PATH afresh; it is still read.
    (home / ".profile").write_text("PATH=/usr/local/bin:/usr/bin:/bin\nexport FROM_PROFILE=yes\n")
    bindir = os.path.dirname(sys.executable)
    out = run_in_terminal(
        tmp_path, 'echo "PATH=$PATH"; echo "PROFILE=$FROM_PROFILE"; command -v python\n', {BIN_ENV: bindir}
    )
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert lines["PATH"].split(":")[0] == bindir, out
    assert lines["PATH"].split(":").count(bindir) == 1, out
    assert lines["PROFILE"] == "yes", out
    assert os.path.join(bindir, "python") in out, out


def test_only_the_first_of_bashs_login_files_is_read(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bash_profile").write_text("export WHICH=bash_profile\n")
    (home / ".profile").write_text("export WHICH=profile\n")
    out = run_in_terminal(tmp_path, 'echo "WHICH=$WHICH"\n', {BIN_ENV: "/opt/nowhere/bin"})
    assert "WHICH=bash_profile" in out.splitlines(), out


def test_other_shells_start_as_login_shells():
    assert shell_argv("/usr/bin/zsh") == ["/usr/bin/zsh", "-l"]
