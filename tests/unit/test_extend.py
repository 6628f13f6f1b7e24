"""More time for a running session (issue #27, part 2): the root helper's decision, its ledger
and its I/O against the fake SLURM, the site key, the hub's mapping of the helper's answer, the
lab's owner check and request, and the Dask workers' cap following the new end."""

import asyncio
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from traitlets.config import Config

from aifactory_workbench.hub.configure import SERVER_ROLE_SCOPES, spawner_settings, update_server_token
from aifactory_workbench.hub.extend import HELPER_TIMEOUT, HTTP_STATUS, NOT_INSTALLED, extension_answer, parse_minutes
from aifactory_workbench.hub.site import SiteConfigError, load_site_config
from aifactory_workbench.lab import notebook
from aifactory_workbench.lab.session import extend_request, is_owner
from aifactory_workbench.root import extend_job
from aifactory_workbench.root.extend_job import (
    LIMIT,
    NO_SUCH_JOB,
    NOT_RUNNING,
    OFF,
    POLICY,
    Extension,
    Ledger,
    Policy,
    Refusal,
    decide,
    extend,
    parse_args,
)
from aifactory_workbench.root.site_install import extend_helper_text
from aifactory_workbench.slurm.client import SECURE_PATH, CommandResult, Slurm
from aifactory_workbench.slurm.formats import SQUEUE_EXTEND
from aifactory_workbench.slurm.parsers import SlurmError, parse_one_job
from aifactory_workbench.spawners.jobscript import SessionTimes, render

from .defaults import DEFAULTS, JOB_NAME, request, site_file
from .fakes import RUNNING
from .recorded_slurm import FakeSlurm

POLICY_1H = Policy(step=60, total=240)
#: The helper reads only root's files and keeps its ledger in a folder of root's alone.
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the helper's files are root's: run as root")
#: alice's JupyterLab job as squeue prints it in SQUEUE_EXTEND: 10 minutes, 5:12 used.
JOB = {
    "job_id": "7",
    "user": "alice",
    "state": "RUNNING",
    "partition": "gpp",
    "qos": "interactive",
    "time_limit": "10:00",
    "time_used": "5:12",
    "name": JOB_NAME,
}


def decided(job=JOB, qos_max=12 * 3600, partition_max=48 * 3600, **kw):
    limits = [(f"the QoS {job and job['qos']}", qos_max), (f"the partition {job and job['partition']}", partition_max)]
    args = {
        "user": "alice",
        "minutes": 30,
        "policy": POLICY_1H,
        "job_name": JOB_NAME,
        "limits": limits,
        "added_before": 0,
    }
    return decide(job, **(args | kw))


def test_a_running_session_of_the_user_is_extended_within_every_limit():
    found = decided()
    assert found == Extension("7", 600, 2400, 2400 - 312, 30)
    assert found.as_data() == {
        "job_id": "7",
        "old_limit": "00:10:00",
        "new_limit": "00:40:00",
        "seconds_left": 2088,
        "added_minutes": 30,
    }


@pytest.mark.parametrize(
    ("job", "kw", "status", "said"),
    [
        (JOB, {"policy": None}, OFF, "singleuser.extend: off"),
        (None, {}, NO_SUCH_JOB, "alice has no running JupyterLab job"),
        (JOB | {"user": "bob"}, {}, NO_SUCH_JOB, "alice has no running JupyterLab job"),  # bob's job in alice's name
        (JOB | {"name": "aifw-dask-7"}, {}, NO_SUCH_JOB, "no running JupyterLab job"),  # a Dask worker job
        (JOB | {"name": "my-own-job"}, {}, NO_SUCH_JOB, "no running JupyterLab job"),  # not started by the hub
        (JOB | {"state": "PENDING"}, {}, NOT_RUNNING, "job 7 is pending, not running"),
        (JOB, {"minutes": 0}, POLICY, "from 1 min to 1 h per extension"),
        (JOB, {"minutes": 61}, POLICY, "from 1 min to 1 h per extension"),
        (JOB, {"added_before": 220}, POLICY, "at most 4 h of extensions per session (3 h 40 min added already)"),
        (JOB, {"qos_max": 30 * 60}, LIMIT, "the QoS interactive allows at most 30 min"),
        (JOB | {"time_limit": "11:40:00"}, {}, LIMIT, "the QoS interactive allows at most 12 h"),
        (JOB | {"partition": "acc"}, {"partition_max": 20 * 60}, LIMIT, "the partition acc allows at most 20 min"),
        (JOB | {"time_limit": "UNLIMITED"}, {}, LIMIT, "no time limit to extend"),
    ],
)
def test_every_refusal_names_its_reason(job, kw, status, said):
    found = decided(job, **kw)
    assert isinstance(found, Refusal) and found.status == status and said in found.message


def test_no_limit_is_no_limit_and_the_total_may_be_reached_exactly():
    assert isinstance(decided(qos_max=None, partition_max=None, minutes=60, added_before=180), Extension)


def test_the_helper_takes_exactly_user_job_and_minutes():
    assert parse_args(["alice", "7", "30"]) == ("alice", "7", 30)
    for bad in (
        ["alice", "7"],
        ["Alice", "7", "30"],
        ["alice", "7;id", "30"],
        ["alice", "7", "-5"],
        ["alice", "٧", "1"],
    ):
        assert parse_args(bad) is None, bad
    assert parse_args(["alice", "7", "1234567"]) is None


def test_a_job_name_holding_the_separator_or_a_line_break_is_read_whole_or_not_at_all():
    line = "7|alice|RUNNING|gpp|interactive|10:00|5:12|"
    assert parse_one_job(line + "x|bob|y\n", "7", SQUEUE_EXTEND)["name"] == "x|bob|y"
    assert parse_one_job(line + "x\n7|alice|RUNNING|gpp|interactive|10:00|0:01|aifw\n", "7", SQUEUE_EXTEND) is None
    assert parse_one_job(line + "n\n", "8", SQUEUE_EXTEND) is None and parse_one_job("", "7", SQUEUE_EXTEND) is None


# -- the ledger: root's folder, never a link -------------------------------------------------
@as_root
def test_the_ledger_keeps_minutes_per_job_and_refuses_a_folder_others_may_enter(tmp_path):
    folder = tmp_path / "ledger"
    ledger = Ledger(folder)
    assert ledger.added("7") == 0
    ledger.write("7", 30)
    assert ledger.added("7") == 30 and (folder / "7").stat().st_mode & 0o777 == 0o600
    ledger.close()
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)
    with pytest.raises(PermissionError, match="root's alone"):
        Ledger(folder)


@as_root
def test_the_ledger_follows_no_link_planted_in_it_or_as_it(tmp_path):
    target = tmp_path / "target"
    target.write_text("0\n")
    folder = tmp_path / "ledger"
    folder.mkdir(mode=0o700)
    (folder / "7").symlink_to(target)
    ledger = Ledger(folder)
    with pytest.raises(OSError):
        ledger.added("7")  # O_NOFOLLOW: ELOOP
    (folder / ".8.new").symlink_to(target)
    with pytest.raises(OSError):
        ledger.write("8", 30)
    ledger.close()
    assert target.read_text() == "0\n"
    linked = tmp_path / "linked"
    linked.symlink_to(folder)
    with pytest.raises(OSError):
        Ledger(linked)


@as_root
def test_old_ledger_entries_are_forgotten(tmp_path):
    ledger = Ledger(tmp_path / "ledger")
    ledger.write("7", 30)
    ledger.write("8", 30)
    os.utime(tmp_path / "ledger" / "7", (0, 0))
    ledger.forget_old(extend_job.LEDGER_DAYS * 86400 + 1)
    assert sorted(os.listdir(tmp_path / "ledger")) == ["8"]
    ledger.close()


# -- the helper's I/O against the fake SLURM ------------------------------------------------------
@pytest.fixture
def cluster():
    slurm = FakeSlurm().hold(RUNNING, name=JOB_NAME)
    slurm.time_limits["7"] = "10:00"
    return slurm


@pytest.fixture
def policy_file(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    return Path(site_file(folder, "singleuser: {extend: {step: 60, total: 60}}"))


@as_root
def test_the_helper_extends_alices_job_and_counts_it(cluster, policy_file, tmp_path):
    found = extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")
    assert isinstance(found, Extension) and found.new == 40 * 60
    assert ["scontrol", "update", "JobId=7", "TimeLimit=00:40:00"] in cluster.commands()
    assert cluster.time_limits["7"] == "00:40:00"
    again = extend(cluster, "alice", "7", 60, str(policy_file), tmp_path / "ledger")
    assert (
        isinstance(again, Refusal) and "at most 1 h of extensions per session (30 min added already)" in again.message
    )
    assert cluster.time_limits["7"] == "00:40:00"  # nothing changed


@as_root
def test_the_helper_changes_nothing_it_refuses(cluster, policy_file, tmp_path):
    cluster.hold(replace(RUNNING, job_id="8", user="bob"), name=JOB_NAME)
    cluster.hold(replace(RUNNING, job_id="9"), name="aifw-dask-7")
    cluster.time_limits["7"] = "11:50:00"
    for user, job in (("alice", "8"), ("alice", "9"), ("alice", "7"), ("alice", "404")):
        found = extend(cluster, "alice", job, 30, str(policy_file), tmp_path / "ledger")
        assert isinstance(found, Refusal), (user, job)
    assert not [a for a in cluster.commands() if a[:2] == ["scontrol", "update"]]


@as_root
def test_past_the_qos_the_refusal_names_it(cluster, policy_file, tmp_path):
    cluster.time_limits["7"] = "11:50:00"
    found = extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")
    assert found == Refusal(LIMIT, "the QoS interactive allows at most 12 h")


def refused_and_unchanged(cluster, found, message: str) -> None:
    """Refused with ``message``, job 7's limit as it was, and no ``scontrol update`` run."""
    assert found == Refusal(LIMIT, message)
    assert cluster.time_limits["7"] == "04:50:00"
    assert not [a for a in cluster.commands() if a[:2] == ["scontrol", "update"]]


@as_root
def test_past_the_partitions_qos_the_refusal_names_it_and_nothing_changes(cluster, policy_file, tmp_path):
    """The attack: the job's QoS allows 2 days, the partition's QoS only 4 h."""
    cluster.qos_of["7"] = "normal"
    cluster.qos_max_wall["part_gpp"] = "04:00:00"
    cluster.time_limits["7"] = "04:50:00"
    found = extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")
    refused_and_unchanged(cluster, found, "the partition gpp's QoS part_gpp allows at most 4 h")


@as_root
@pytest.mark.parametrize("partition", ["gpp", ""])  # the partition's own association, or the account's
def test_past_the_association_the_refusal_names_it_and_nothing_changes(cluster, policy_file, tmp_path, partition):
    cluster.qos_of["7"] = "normal"
    cluster.assoc_max_wall[("alice", "ehpc01", partition)] = "04:00:00"
    cluster.assoc_max_wall[("alice", "ehpc01", "acc")] = "1-00:00:00"  # another partition's: not this job's
    cluster.time_limits["7"] = "04:50:00"
    found = extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")
    refused_and_unchanged(cluster, found, "your association allows at most 4 h")


@as_root
def test_the_partitions_own_association_goes_before_the_accounts(cluster, policy_file, tmp_path):
    cluster.qos_of["7"] = "normal"
    cluster.assoc_max_wall[("alice", "ehpc01", "")] = "04:00:00"
    cluster.assoc_max_wall[("alice", "ehpc01", "gpp")] = "1-00:00:00"
    cluster.time_limits["7"] = "04:50:00"
    found = extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")
    assert isinstance(found, Extension) and cluster.time_limits["7"] == "05:20:00"


@as_root
def test_a_job_name_cannot_smuggle_in_another_account(cluster, policy_file, tmp_path):
    cluster.qos_of["7"] = "normal"
    cluster.assoc_max_wall[("alice", "ehpc01", "")] = "04:00:00"
    cluster.time_limits["7"] = "04:50:00"
    line = cluster._job_line("7").replace("JobName=" + JOB_NAME, f"JobName={JOB_NAME} Account=rich UserId=x")
    cluster._job_line = lambda job_id: line
    with pytest.raises(SlurmError, match="account of job 7 cannot be read"):  # main: refused, UNAVAILABLE
        extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")
    assert cluster.time_limits["7"] == "04:50:00"


@as_root
def test_with_extend_off_the_helper_refuses_before_asking_slurm(cluster, tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    off = site_file(folder, "singleuser: {extend: off}")
    found = extend(cluster, "alice", "7", 30, str(off), tmp_path / "ledger")
    assert found.status == OFF and cluster.commands() == []


@as_root
def test_the_helper_reads_no_site_file_others_may_change(cluster, policy_file, tmp_path):
    policy_file.chmod(0o666)
    with pytest.raises(SiteConfigError, match="not root's alone"):
        extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")
    policy_file.chmod(0o644)
    link = policy_file.parent / "link.yaml"
    link.symlink_to(policy_file)
    with pytest.raises(SiteConfigError, match="not root's alone"):
        extend(cluster, "alice", "7", 30, str(link), tmp_path / "ledger")


@as_root
def test_main_answers_one_json_line_and_a_status(cluster, policy_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(extend_job, "Slurm", lambda **kw: cluster)
    assert extend_job.main(str(policy_file), str(tmp_path / "ledger"), ["alice", "7", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["new_limit"] == "00:40:00"
    assert extend_job.main(str(policy_file), str(tmp_path / "ledger"), ["bob", "7", "30"]) == NO_SUCH_JOB
    assert "bob has no running JupyterLab job" in json.loads(capsys.readouterr().out)["message"]
    assert extend_job.main(str(policy_file), str(tmp_path / "ledger"), ["alice", "7"]) == extend_job.USAGE


@as_root
def test_a_held_ledger_makes_the_helper_refuse_within_its_bound_not_wait(cluster, policy_file, tmp_path, monkeypatch):
    """The attack: the hub gives up on a helper that waits on the lock, then the helper extends."""
    import fcntl
    import threading
    import time

    monkeypatch.setattr(extend_job, "LOCK_WAIT", 1.0, raising=False)
    (tmp_path / "ledger").mkdir(mode=0o700)
    holder = os.open(tmp_path / "ledger", os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another extension under way
    found = []
    started = time.monotonic()
    worker = threading.Thread(
        target=lambda: found.append(extend(cluster, "alice", "7", 30, str(policy_file), tmp_path / "ledger")),
        daemon=True,
    )
    worker.start()
    worker.join(5)
    waited = time.monotonic() - started
    os.close(holder)  # lets a helper that waited on go on (before the fix)
    worker.join(5)
    assert found and found[0] == Refusal(extend_job.BUSY, "another extension of this job is being made")
    assert 1.0 <= waited < 5 and cluster.time_limits["7"] == "10:00"


@as_root
def test_the_helpers_slurm_calls_are_few_and_short(cluster, policy_file, tmp_path, monkeypatch):
    """The worst case the hub waits for (below) counts on at most SLURM_CALLS calls of SLURM_TIMEOUT."""
    made = []
    monkeypatch.setattr(extend_job, "Slurm", lambda **kw: made.append(kw) or cluster)
    cluster.assoc_max_wall[("alice", "ehpc01", "gpp")] = "1-00:00:00"
    assert extend_job.main(str(policy_file), str(tmp_path / "ledger"), ["alice", "7", "30"]) == 0
    assert made == [{"timeout": extend_job.SLURM_TIMEOUT}]
    assert len(cluster.commands()) <= extend_job.SLURM_CALLS


def test_the_hub_waits_longer_than_the_helper_can_take():
    """So the hub never says "refused" of an extension the helper then makes."""
    worst = extend_job.LOCK_WAIT + extend_job.SLURM_CALLS * extend_job.SLURM_TIMEOUT
    assert worst + 10 < HELPER_TIMEOUT  # and the time to start Python under sudo
    assert extend_job.SLURM_TIMEOUT <= 10 and extend_job.LOCK_WAIT <= 10
    asked = []

    class Recording(Slurm):
        async def execute(self, argv, name, **kw):
            asked.append((argv, kw["timeout"]))
            return CommandResult(argv, 0, "{}")

    asyncio.run(Recording().extend_job("/helper", "alice", "7", 30, timeout=HELPER_TIMEOUT))
    assert asked == [(["sudo", "-n", "/helper", "alice", "7", "30"], HELPER_TIMEOUT)]


def test_root_runs_the_helpers_with_a_fixed_path_whatever_the_hub_sets(tmp_path):
    """The attack: the hub's account puts its own scontrol first in PATH, and sudo passes PATH on."""
    from aifactory_workbench.root.site_install import Accounts, render, values, visudo

    config = Path(__file__).parents[2] / "config"
    rules = render((config / "sudoers.in").read_text(), values(load_site_config(config / "site.yaml"), Accounts()))
    assert f'Defaults!AIFW_EXTEND, AIFW_PASSWORD, AIFW_CANCEL secure_path="{SECURE_PATH}"' in rules.splitlines()
    (tmp_path / "sudoers").write_text(rules)
    assert visudo(tmp_path / "sudoers") == ""


@as_root
def test_the_helper_sets_its_own_path_before_it_asks_slurm(cluster, policy_file, tmp_path, monkeypatch):
    """And the helper does not count on sudo for it: its SLURM commands are found in root's folders only."""
    monkeypatch.setenv("PATH", f"{tmp_path}/evil:/usr/bin")
    seen = []
    monkeypatch.setattr(extend_job, "Slurm", lambda **kw: seen.append(os.environ["PATH"]) or cluster)
    extend_job.main(str(policy_file), str(tmp_path / "ledger"), ["alice", "7", "30"])
    assert seen == [SECURE_PATH] and "evil" not in SECURE_PATH


def test_the_installed_wrapper_names_the_site_file_and_the_ledger():
    text = extend_helper_text(replace(DEFAULTS, source="/etc/aifactory/site.yaml"), "/var/lib/aifactory-extend")
    assert text.startswith("#!") and " -I\n" in text.splitlines()[0] + "\n"
    assert "main('/etc/aifactory/site.yaml', '/var/lib/aifactory-extend')" in text
    assert "main('', " in extend_helper_text(DEFAULTS)  # no site file: the defaults


# -- the site key ----------------------------------------------------------------------------
def test_the_site_key_is_off_or_a_step_and_a_total(tmp_path):
    assert DEFAULTS.singleuser.extend_minutes == (60, 240)
    assert load_site_config(site_file(tmp_path, "singleuser: {extend: off}")).singleuser.extend_minutes is None
    assert load_site_config(site_file(tmp_path, "singleuser: {extend: 'off'}")).singleuser.extend_minutes is None
    on = load_site_config(site_file(tmp_path, "singleuser: {extend: {step: 30, total: 30}}"))
    assert on.singleuser.extend_minutes == (30, 30)
    for bad in ("{step: 60}", "{step: 90, total: 60}", "{step: 0, total: 60}", "on", "{step: 60, total: 60, x: 1}"):
        with pytest.raises(SiteConfigError, match="singleuser.extend"):
            load_site_config(site_file(tmp_path, f"singleuser: {{extend: {bad}}}"))
    with pytest.raises(SiteConfigError, match="did you mean 'singleuser.extend'"):
        load_site_config(site_file(tmp_path, "singleuser: {extnd: off}"))


def test_the_step_reaches_the_spawner_the_job_and_the_server_token(tmp_path):
    assert spawner_settings(DEFAULTS)["extend_minutes"] == (60, "singleuser.extend")
    off = load_site_config(site_file(tmp_path, "singleuser: {extend: off}"))
    assert spawner_settings(off)["extend_minutes"] == (0, "singleuser.extend")
    script = render(request(), ["jupyterhub-singleuser"], export=[], times=SessionTimes((15, 5), 300, 60))
    assert 'export AIFACTORY_EXTEND_MINUTES="60"' in script
    c = Config()
    update_server_token(c, DEFAULTS)
    assert c.JupyterHub.load_roles == [{"name": "server", "scopes": [*SERVER_ROLE_SCOPES, "servers!server"]}]
    assert "custom:gallery:publish" in SERVER_ROLE_SCOPES  # aifactory-publish keeps working
    c = Config()
    update_server_token(c, off)
    assert c.JupyterHub.load_roles == [{"name": "server", "scopes": SERVER_ROLE_SCOPES}]
    assert "server_token_scopes" not in c.WorkbenchSpawner


# -- the hub's answer --------------------------------------------------------------------------
NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def test_the_hub_answers_the_new_limit_and_when_the_session_ends():
    line = json.dumps(decided().as_data())
    status, body = extension_answer(CommandResult([], 0, line + "\n"), NOW)
    assert status == 200 and body["new_limit"] == "00:40:00" and body["ends_at"] == "2026-12-04T21:34:48+00:00"
    assert body["seconds_left"] == 2088 and body["time_left_text"] == "35 min"  # the pages show this text


@pytest.mark.parametrize("code", sorted(set(HTTP_STATUS) - {0}))
def test_each_refusal_is_a_4xx_or_503_naming_it(code):
    status, body = extension_answer(
        CommandResult([], code, json.dumps({"message": "the QoS x allows at most 1 h"})), NOW
    )
    assert status == HTTP_STATUS[code] and 400 <= status < 600
    assert body == {"status": status, "message": "the QoS x allows at most 1 h"}


def test_a_helper_that_did_not_run_is_a_fault_of_the_installation():
    for result in (CommandResult([], 1, "", "sudo: a password is required"), CommandResult([], 0, "not json")):
        assert extension_answer(result, NOW) == (503, {"status": 503, "message": NOT_INSTALLED})


def test_the_api_takes_whole_minutes_only():
    assert parse_minutes({"minutes": 30}) == 30
    for bad in ({}, {"minutes": "30"}, {"minutes": 1.5}, {"minutes": True}, {"minutes": 0}, [30], None):
        with pytest.raises(Exception, match="whole number"):
            parse_minutes(bad)


# -- JupyterLab's side -----------------------------------------------------------------------
class Person:
    def __init__(self, username):
        self.username = username


def test_only_the_owner_may_extend_from_jupyterlab():
    env = {"JUPYTERHUB_USER": "alice"}
    assert is_owner(Person("alice"), env)
    assert not is_owner(Person("bob"), env)  # a colleague the session is shared with
    assert not is_owner(None, env) and not is_owner(Person(""), {})


def test_jupyterlab_asks_the_hub_with_its_own_token_for_its_own_server():
    env = {
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api/",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_API_TOKEN": "s3cret",
    }
    asked = extend_request(env, 60)
    assert asked.url == "http://hub:8081/hub/api/aifactory/extend/alice/" and asked.method == "POST"
    assert asked.headers["Authorization"] == "token s3cret" and json.loads(asked.body) == {"minutes": 60}


def test_dask_workers_are_capped_at_the_time_left_now_not_at_start_up(monkeypatch):
    lefts = iter([10 * 60, 40 * 60])

    class Clock:
        def time_left(self, job_id):
            return next(lefts)

    monkeypatch.setattr(notebook, "Slurm", Clock)
    assert notebook.worker_walltime("7", "01:00:00") == "00:08:00"
    assert notebook.worker_walltime("7", "01:00:00") == "00:38:00"  # after an extension


def test_the_root_helper_imports_no_hub_process_code():
    """Run as root on each extension: the site file's rules and the SLURM client, nothing of
    JupyterHub's, the spawners' or the lab's."""
    import subprocess
    import sys

    code = "import sys, aifactory_workbench.root.extend_job\nprint(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    ours = {m for m in loaded if m.startswith("aifactory_workbench.")}
    assert ours <= {
        "aifactory_workbench.hub",
        "aifactory_workbench.job",  # its constants (the Dask workers' job name)
        "aifactory_workbench.root",
        "aifactory_workbench.root.extend_job",
        "aifactory_workbench.hub.site",
        "aifactory_workbench.slurm",
        "aifactory_workbench.slurm.admin",  # the walltime limits' queries
        "aifactory_workbench.slurm.client",
        "aifactory_workbench.slurm.display",  # its refusals' durations, worded as every page words them
        "aifactory_workbench.slurm.formats",
        "aifactory_workbench.slurm.job_fields",
        "aifactory_workbench.slurm.parsers",
        "aifactory_workbench.slurm.values",
    }, ours
    assert not {m for m in loaded if m.split(".")[0] in ("jupyterhub", "tornado", "traitlets", "sqlalchemy")}
