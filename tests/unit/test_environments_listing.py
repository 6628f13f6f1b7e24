"""The spawn form's and home page's "Your environments" (issue #26, item 5): the hub runs
``aifactory-env list --json`` as the user through sudo, bounded in time and output, parses the
answer strictly (a bad answer is "could not be listed", never a stack trace) and reuses it for
``form.discovery_cache`` seconds; the wrapper's Python is isolated from the user's files."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.root.site_install import Accounts, Installer
from aifactory_workbench.slurm import client
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.parsers import SlurmError, SlurmUnavailable
from aifactory_workbench.spawners.discovery import MAX_LISTINGS, Discovery
from aifactory_workbench.spawners.environments import listing, parse_environments, site_kernels

CONFIG = Path(__file__).parents[2] / "config"
ENV = {
    "name": "probe-env",
    "path": "/home/alice/.aifactory/envs/probe-env",
    "size": 3 * 1024**2,
    "size_text": "3.0 MiB",
    "kernel": "probe-env",
    "base": "aifactory",
    "scope": "personal",
    "project": "",
    "built": "2026-12-04T21:00:00Z",
    "locked": True,
}


def answer(*envs: dict) -> str:
    return json.dumps({"environments": list(envs)})


def test_the_answer_is_read_field_by_field_with_sizes_and_their_total():
    team = ENV | {"name": "team", "scope": "project", "project": "ehpc01", "size": None, "kernel": ""}
    listed = listing(*parse_environments(answer(ENV, team)))
    assert listed["listed"] and listed["total"] == 3 * 1024**2 and listed["total_text"] == "3.0 MiB"
    shown = [(e["name"], e["size_text"], e["scope"], e["project"]) for e in listed["environments"]]
    assert shown == [("probe-env", "3.0 MiB", "personal", ""), ("team", "size unknown", "project", "ehpc01")]
    assert "path" not in listed["environments"][0]  # the hub shows no path of the user's home
    assert listing(*parse_environments(answer()))["environments"] == []


@pytest.mark.parametrize("text", ["", "not json", "[]", json.dumps({"environments": "x"})])
def test_an_answer_that_is_no_listing_is_refused_whole(text):
    with pytest.raises(ValueError):
        parse_environments(text)


@pytest.mark.parametrize(
    "entry",
    [
        "x",
        ENV | {"size": -1},
        ENV | {"size": "3 MiB"},
        ENV | {"size": True},
        ENV | {"name": "<img src=x onerror=alert(1)>"},
        ENV | {"name": ""},
        ENV | {"name": "Upper"},
        ENV | {"scope": "root"},
        ENV | {"kernel": "a" * 500},
        ENV | {"project": "../etc"},
        ENV | {"built": ["2026"]},
    ],
)
def test_a_lying_or_broken_entry_is_dropped_and_counted(entry):
    assert parse_environments(answer(entry)) == ([], 1, 0)


def test_a_teammates_bad_entries_do_not_blank_the_others_listing():
    """The attack: a project member makes odd folders in the project's shared folder (an
    uppercase name, a size of -1, a bad build date); every member's listing then failed whole,
    "could not be listed", cached. Now each bad entry is dropped on its own, and counted."""
    team = ENV | {"name": "team", "scope": "project", "project": "ehpc01"}
    bad = [team | {"name": "Upper"}, team | {"name": "minus", "size": -1}, team | {"name": "date", "built": "x y"}]
    lister = Lister(answer(ENV, *bad, team))
    listed = asyncio.run(Discovery(lister, ttl=60).environments("alice"))
    assert listed["listed"] and [e["name"] for e in listed["environments"]] == ["probe-env", "team"]
    assert listed["unreadable"] == 3 and listed["unreadable_text"] == "3 entries could not be read."
    assert listed["total"] == 6 * 1024**2 and not listed["problem"]
    one = listing(*parse_environments(answer(ENV, bad[0])))
    assert one["unreadable_text"] == "1 entry could not be read."
    assert listing(*parse_environments(answer(ENV)))["unreadable_text"] == ""


def test_what_the_listing_left_out_is_counted():
    """``list --json`` prints a bounded number of environments: those it left out are counted."""
    listed = listing(*parse_environments(json.dumps({"environments": [ENV], "more": 5, "unreadable": 2})))
    assert listed["more"] == 5 and listed["unreadable"] == 2 and len(listed["environments"]) == 1
    for odd in (-1, True, "5", 10**12):
        listed = listing(*parse_environments(json.dumps({"environments": [ENV], "more": odd, "unreadable": odd})))
        assert listed["more"] == 0 and listed["unreadable"] == 0


def test_a_long_list_is_cut_and_counted():
    many = [ENV | {"name": f"e{i}"} for i in range(130)]
    listed = listing(*parse_environments(answer(*many)))
    assert len(listed["environments"]) == 100 and listed["more"] == 30


class Lister:
    """The SLURM client's ``environments``, played: an answer or a failure, counted."""

    def __init__(self, reply: str | Exception) -> None:
        self.reply, self.asked = reply, 0

    async def environments(self, user: str) -> str:
        self.asked += 1
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.mark.parametrize(
    "reply",
    [SlurmUnavailable("aifactory-env-list did not answer within 5s"), SlurmError("sudo: a password is required"), "{"],
)
def test_a_failed_listing_is_said_and_reused_like_a_good_one(reply):
    lister = Lister(reply)
    discovery = Discovery(lister, ttl=60)
    first = asyncio.run(discovery.environments("alice"))
    assert not first["listed"] and first["problem"].startswith("Your environments could not be listed right now (")
    assert asyncio.run(discovery.environments("alice")) == first and lister.asked == 1


def test_each_user_has_their_own_listing_reused_for_the_ttl():
    lister = Lister(answer(ENV))
    discovery = Discovery(lister, ttl=60)
    for user in ("alice", "alice", "bob"):
        assert asyncio.run(discovery.environments(user))["environments"][0]["name"] == "probe-env"
    assert lister.asked == 2


class SlowLister(Lister):
    """A listing that takes a while, counting those running at once."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.running = self.most = 0

    async def environments(self, user: str) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        return await super().environments(user)


def test_a_burst_of_pages_for_one_user_runs_one_listing():
    """The attack: a user (or a script of theirs) opens the form 20 times at once; each request
    started its own sudo listing (the cache is filled only when one ends). Now they share one."""
    lister = SlowLister(answer(ENV))
    discovery = Discovery(lister, ttl=60)

    async def burst() -> list[dict]:
        return await asyncio.gather(*(discovery.environments("alice") for _ in range(20)))

    assert all(listed["environments"][0]["name"] == "probe-env" for listed in asyncio.run(burst()))
    assert lister.asked == 1


def test_many_users_listings_run_a_few_at_a_time():
    lister = SlowLister(answer(ENV))
    discovery = Discovery(lister, ttl=60)

    async def everyone() -> list[dict]:
        return await asyncio.gather(*(discovery.environments(f"user{i}") for i in range(12)))

    assert all(listed["listed"] for listed in asyncio.run(everyone()))
    assert lister.asked == 12 and lister.most == 4
    assert MAX_LISTINGS == 4


@pytest.fixture
def fake_sudo(tmp_path, monkeypatch):
    """sudo played by a script that drops "USER --" and runs the rest; the listing a script of the test's."""
    sudo = tmp_path / "sudo"
    sudo.write_text('#!/bin/sh\nshift 2\nexec "$@"\n')
    sudo.chmod(0o755)
    listing_script = tmp_path / "aifactory-env-list"
    monkeypatch.setattr(client, "ENV_LIST", listing_script)

    def answering(code: str) -> Slurm:
        listing_script.write_text(f"#!{sys.executable}\nimport sys, time\n{code}\n")
        listing_script.chmod(0o755)
        return Slurm(sudo=(str(sudo),))

    return answering


def test_the_listing_runs_as_the_user_with_json_only(fake_sudo):
    slurm = fake_sudo("print(repr(sys.argv[1:]))")
    assert asyncio.run(slurm.environments("alice")).strip() == "['--json']"
    with pytest.raises(SlurmError, match="not a valid Unix user name"):
        asyncio.run(slurm.environments("alice; rm -rf ~"))


def test_a_listing_that_hangs_is_given_up_on(fake_sudo, monkeypatch):
    monkeypatch.setattr(client, "ENV_LIST_TIMEOUT", 0.5)
    slurm = fake_sudo("time.sleep(30)")
    with pytest.raises(SlurmUnavailable, match="did not answer within"):
        asyncio.run(asyncio.wait_for(slurm.environments("alice"), 5))


def test_a_listing_that_floods_the_hub_is_cut_at_the_cap(fake_sudo):
    slurm = fake_sudo("sys.stdout.write('x' * 10**7); sys.stdout.flush(); time.sleep(30)")
    with pytest.raises(SlurmError, match="printed more than"):
        asyncio.run(asyncio.wait_for(slurm.environments("alice"), 5))


def test_a_flood_the_hub_cannot_stop_is_not_read_past_the_cap(fake_sudo, tmp_path, monkeypatch):
    """The attack: the listing's writer is not the child the hub kills (sudo runs it as the user,
    and the hub may signal neither), ignores SIGTERM and writes without end. Past the cap the
    hub reads no more (its pipes are closed) and gives up within a short bound, however long
    the command lives: what the hub read stays about the cap (before, it read all it could)."""
    pids = tmp_path / "pids"
    slurm = fake_sudo(
        "import os, subprocess\n"
        f"open({str(pids)!r}, 'w').write(str(os.getpid()) + ' ')\n"
        f"subprocess.Popen(['sh', '-c', 'echo $$ >> {pids}; trap \"\" TERM; exec yes'])\n"
        "time.sleep(30)"
    )
    read = 0  # every byte the hub reads from a pipe is fed to a StreamReader
    feed_data = asyncio.StreamReader.feed_data

    def counted(stream: asyncio.StreamReader, data: bytes) -> None:
        nonlocal read
        read += len(data)
        feed_data(stream, data)

    monkeypatch.setattr(asyncio.StreamReader, "feed_data", counted)

    def not_ours(self):
        raise PermissionError("sudo's child is not the hub's to kill")

    monkeypatch.setattr(asyncio.subprocess.Process, "kill", not_ours)

    def end_them() -> None:  # what the hub could not kill, as sudo's command_timeout would
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    async def flood() -> float:
        started = asyncio.get_running_loop().time()
        with pytest.raises(SlurmError, match="printed more than"):
            await asyncio.wait_for(slurm.environments("alice"), 10)
        took = asyncio.get_running_loop().time() - started
        await asyncio.sleep(1.5)  # nothing is read after the call has given up either
        end_them()
        await asyncio.sleep(0.5)  # the event loop reaps it, unread
        return took

    try:
        took = asyncio.run(flood())
    finally:
        end_them()
    assert took < 5  # STOP_WAIT, and a loaded machine
    assert read <= client.ENV_LIST_MAX_BYTES + 256 * 1024, f"the hub read {read} bytes"


def test_the_site_kernels_are_read_from_the_venv(tmp_path):
    for name, spec in (("aifactory", '{"display_name": "Python (AI Factory)"}'), ("broken", "{")):
        (tmp_path / "share" / "jupyter" / "kernels" / name).mkdir(parents=True)
        (tmp_path / "share" / "jupyter" / "kernels" / name / "kernel.json").write_text(spec)
    assert site_kernels(str(tmp_path)) == [{"name": "aifactory", "display_name": "Python (AI Factory)"}]


def test_the_listings_wrapper_runs_python_isolated_from_the_users_files(tmp_path):
    """The attack: a user's ~/.local site-packages .pth, usercustomize and PYTHONPATH would run
    their code in the hub's listing; the wrapper's ``python -I`` reads none of them (the same
    Python without -I does: the test can fail)."""
    installer = Installer(load_site_config(CONFIG / "site.yaml"), Accounts())
    installer.values["LIBEXEC"] = str(tmp_path / "libexec")
    assert installer.env_list_helper()
    wrapper = tmp_path / "libexec" / client.ENV_LIST.name
    shebang, *_ = wrapper.read_text().splitlines()
    assert shebang == f"#!{sys.prefix}/bin/python -I" and "main(['list', *sys.argv[1:]])" in wrapper.read_text()
    compile(wrapper.read_text(), str(wrapper), "exec")

    home = tmp_path / "home"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    user_site = home / ".local" / "lib" / version / "site-packages"
    user_site.mkdir(parents=True)
    marker = tmp_path / "ran"
    run_code = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"
    (user_site / "x.pth").write_text(run_code)
    (user_site / "usercustomize.py").write_text(run_code)
    (tmp_path / "pp").mkdir()
    (tmp_path / "pp" / "sitecustomize.py").write_text(run_code)
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "pp")}
    probe = "import sys; print(sys.flags.isolated)"
    isolated = subprocess.run([*shebang[2:].split(), "-c", probe], env=env, capture_output=True, text=True)
    assert isolated.stdout.strip() == "1" and not marker.exists()
    subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert marker.exists()  # without -I, the user's code runs
