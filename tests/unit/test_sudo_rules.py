"""The hub's sudo rules as any sudo reads them: no pattern, each command by the path the hub runs.

sudo before 1.9.10 reads ``^--parsable$`` as those eleven characters: the rule never matches
``sbatch --parsable``, while ``visudo -c`` accepts it. These tests read the rules the way such a
sudo does (a rule's arguments are matched as shell wildcards, fnmatch), so a pattern fails them.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.root.cancel_job import REFUSED
from aifactory_workbench.root.site_install import Accounts, render, values, visudo
from aifactory_workbench.slurm.client import CANCEL_HELPER, Slurm, cancel_arguments_ok, slurm_command

CONFIG = Path(__file__).parents[2] / "config"


def rules(bin_dir: str = "") -> str:
    site = load_site_config(CONFIG / "site.yaml")
    site = replace(site, slurm=replace(site.slurm, bin_dir=bin_dir))
    return render((CONFIG / "sudoers.in").read_text(), values(site, Accounts()))


def aliases(text: str) -> dict[str, list[list[str]]]:
    """Each Cmnd_Alias with its commands, each split into its words."""
    found = re.findall(r"^Cmnd_Alias (\w+) = (.+)$", text, re.MULTILINE)
    return {name: [command.split() for command in commands.split(", ")] for name, commands in found}


def old_sudo_allows(text: str, argv: list[str]) -> bool:
    """Whether a rule allows ``argv`` as sudo 1.9.9 reads it: the same path, and no arguments named
    (any are allowed) or the arguments as shell wildcards."""
    for commands in aliases(text).values():
        for path, *args in commands:
            if path == argv[0] and (not args or fnmatch.fnmatchcase(" ".join(argv[1:]), " ".join(args))):
                return True
    return False


def test_no_rule_uses_a_pattern():
    for name, commands in aliases(rules()).items():
        for command in commands:
            assert not re.search(r"[\^$*?\[\]]", " ".join(command)), (name, command)
            assert command[0].startswith("/"), (name, command)


@pytest.mark.parametrize("bin_dir", ["", "/opt/slurm/bin"])
def test_every_command_the_hub_runs_through_sudo_is_one_an_older_sudo_allows(bin_dir: str):
    text = rules(bin_dir)
    wanted = Slurm(bin_dir=bin_dir).sudo_rules_allow()
    assert {argv[0] for _, argv in wanted} >= {slurm_command("sbatch", bin_dir), str(CANCEL_HELPER)}
    for _, argv in wanted:
        assert old_sudo_allows(text, argv), argv
    assert not old_sudo_allows(text, [slurm_command("sbatch", bin_dir), "--wrap", "id"])
    assert not old_sudo_allows(text, [slurm_command("scancel", bin_dir), "1"])  # only through the helper


def test_the_rules_pass_visudo(tmp_path: Path):
    (tmp_path / "sudoers").write_text(rules("/opt/slurm/bin"))
    assert visudo(tmp_path / "sudoers") == ""


def test_the_hubs_cancels_are_what_the_helper_lets_through():
    slurm = Slurm()
    assert slurm.cancel_argv("alice", "42") == [str(CANCEL_HELPER), "42"]
    assert slurm.cancel_argv("alice", "--name", "aifw-dask-42") == [str(CANCEL_HELPER), "--name", "aifw-dask-42"]
    assert slurm.cancel_argv(None, "42") == ["scancel", "42"]  # a job's own side: no sudo


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-u", "alice"],
        ["--user=alice"],
        ["1", "2"],
        ["1 --user=bob"],
        ["--name", "aifw-jupyterlab"],
        ["--name", "aifw-dask-1", "-u", "alice"],
        ["--name", "aifw-dask-"],
        ["--name=aifw-dask-1"],
        ["٣"],  # a digit, to str.isdigit, that scancel would not read as one
    ],
)
def test_the_cancel_helper_refuses_anything_else_and_runs_nothing(args: list[str], tmp_path: Path):
    """The attack: a compromised hub account asks, as alice, for more than one of her jobs (or
    another user's: scancel's own options). sudo's rule lets any arguments through to the helper."""
    ran = tmp_path / "ran"
    fake = tmp_path / "scancel"
    fake.write_text(f'#!/bin/sh\necho "$@" > {ran}\n')
    fake.chmod(0o755)
    assert not cancel_arguments_ok(args)
    call = f"from aifactory_workbench.root.cancel_job import main; raise SystemExit(main({str(fake)!r}))"
    done = subprocess.run([sys.executable, "-I", "-c", call, *args], capture_output=True, text=True)
    assert done.returncode == REFUSED and "refused" in done.stderr and not ran.exists()


@pytest.mark.parametrize("args", [["42"], ["--name", "aifw-dask-42"]])
def test_the_cancel_helper_runs_scancel_with_exactly_what_the_hub_asked(args: list[str], tmp_path: Path):
    ran = tmp_path / "ran"
    fake = tmp_path / "scancel"
    fake.write_text(f'#!/bin/sh\necho "$@" > {ran}\n')
    fake.chmod(0o755)
    call = f"from aifactory_workbench.root.cancel_job import main; raise SystemExit(main({str(fake)!r}))"
    done = subprocess.run([sys.executable, "-I", "-c", call, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert ran.read_text().split() == args
