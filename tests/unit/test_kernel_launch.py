"""The kernel's launcher checks an environment before it runs its Python (lab/kernel.py): a
project's shared environment that a teammate replaced or made writable is refused, by name."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import pytest

from aifactory_workbench.lab import kernel


def make_venv(prefix: Path) -> Path:
    """The parts of a venv the launcher checks: pyvenv.cfg, bin/python (a link), lib/."""
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (prefix / "bin" / "python").symlink_to(sys.executable)
    for path in (prefix, prefix / "bin", prefix / "lib", prefix / "lib" / "python3.11"):
        path.chmod(0o755)
    return prefix


ME = getpass.getuser()


def test_an_environment_of_its_maker_alone_passes(tmp_path: Path):
    prefix = make_venv(tmp_path / "team")
    assert kernel.environment_of(str(prefix / "bin" / "python")) == prefix
    assert kernel.environment_problem(prefix, ME) is None


@pytest.mark.parametrize("part", ["", "bin", "pyvenv.cfg", "lib/python3.11/site-packages"])
def test_a_part_others_may_change_is_refused(tmp_path: Path, part: str):
    prefix = make_venv(tmp_path / "team")
    target = prefix / part
    target.chmod(target.stat().st_mode | 0o020)
    problem = kernel.environment_problem(prefix, ME)
    assert problem is not None and str(target) in problem and "changed by others" in problem


def test_an_environment_of_someone_else_is_refused_with_what_to_do(tmp_path: Path):
    prefix = make_venv(tmp_path / "team")
    with pytest.raises(SystemExit) as refused:
        kernel.check_environment(prefix, "alice-who-made-it")
    said = str(refused.value)
    assert f"{ME}'s, not alice-who-made-it's" in said and "aifactory-env remove, then create" in said


def test_a_missing_python_is_refused(tmp_path: Path):
    prefix = make_venv(tmp_path / "team")
    (prefix / "bin" / "python").unlink()
    assert "is missing" in kernel.environment_problem(prefix, ME)


def test_an_environments_kernel_goes_through_the_check_even_without_modules(tmp_path: Path):
    prefix = make_venv(tmp_path / "team")
    spec = kernel.kernelspec(str(prefix / "bin" / "python"), "Team", [], (prefix, "alice"))
    launcher = spec["argv"][: spec["argv"].index("--")]
    assert launcher[1:] == ["launch", "--env", str(prefix), "--owner", "alice"]
    assert kernel.kernelspec(sys.executable, "Site", [])["argv"][0] == sys.executable  # a site kernel: as before


def test_launch_refuses_before_running_anything(tmp_path: Path, monkeypatch):
    prefix = make_venv(tmp_path / "team")
    ran = []
    monkeypatch.setattr(os, "execvpe", lambda *a: ran.append(a))
    with pytest.raises(SystemExit):
        kernel.main(["launch", "--env", str(prefix), "--owner", "someone-else", "--", str(prefix / "bin" / "python")])
    assert ran == []
    kernel.main(["launch", "--env", str(prefix), "--owner", ME, "--", str(prefix / "bin" / "python")])
    assert ran and ran[0][1] == [str(prefix / "bin" / "python")]


def test_modules_load_with_the_lmod_the_job_names(tmp_path: Path, monkeypatch):
    """Issue 35, item 7: in a JupyterLab job, Lmod's set-up file is the site's (singleuser.lmod_init,
    exported by the job script); elsewhere Lmod's default. Run for real with bash."""
    import subprocess

    init = tmp_path / "lmod-init"
    init.write_text('module() { echo "loaded $*"; }\n')
    monkeypatch.setenv(kernel.LMOD_INIT_ENV, str(init))
    argv, env = kernel.with_modules(["tools/1"], ["echo", "kernel"])
    assert subprocess.run(argv, env=env, capture_output=True, text=True).stdout.split("\n")[:2] == [
        "loaded load tools/1",
        "kernel",
    ]
    monkeypatch.delenv(kernel.LMOD_INIT_ENV)
    assert kernel.with_modules(["tools/1"], ["true"])[1][kernel.LMOD_INIT_ENV] == kernel.LMOD_INIT
