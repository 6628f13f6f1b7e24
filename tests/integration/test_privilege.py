"""The hub runs unprivileged and reaches SLURM as users only for submit and cancel (and, as
users, lists their environments: test_environments.py)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import time
from pathlib import Path

from aifactory_workbench.root.check_password import NO, REFUSED, YES
from tests.harness import demo_password

from .conftest import CLUSTER, HUB_VENV, LIBEXEC, REPO, VENV, HubProcess, sh, wait_for

HUB_USER = "aifactory-hub"
#: No rule names a pattern (older sudo reads one as text that never matches): fixed arguments, or a
#: root-owned helper that checks its own (the cancel helper: scancel of what the hub cancels).
ALLOWED = {
    "/usr/bin/sbatch --parsable",
    "/usr/bin/sbatch --test-only",
    f"{LIBEXEC}/aifactory-cancel",
    f"{LIBEXEC}/aifactory-env-list --json",  # the form's and home page's list (test_environments.py)
}


AS_HUB = ["setpriv", f"--reuid={HUB_USER}", f"--regid={HUB_USER}", "--init-groups"]


def as_hub(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*AS_HUB, *argv], input=stdin, capture_output=True, text=True, cwd="/tmp")


def test_the_hub_and_its_proxy_do_not_run_as_root(hub: HubProcess):
    status = Path(f"/proc/{hub.process.pid}/status").read_text()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    assert uid == pwd.getpwnam(HUB_USER).pw_uid and uid != 0
    assert sh("pgrep", "-u", HUB_USER, "-f", "configurable-http-proxy").split()


def test_sudo_lets_the_hub_submit_and_cancel_as_users_and_nothing_else():
    listing = sh("sudo", "-l", "-U", HUB_USER)
    rules = listing.split("may run the following commands on")[1].splitlines()[1:]
    (rule, as_root) = [r.strip() for r in rules if r.strip()]
    # As members of aifactory-users, never of aifactory-admins (sudo -l shows the "!" after the "%").
    assert rule.startswith("(%aifactory-users, %!aifactory-admins) NOPASSWD:") and "SETENV" not in listing
    assert {c.strip() for c in rule.split("NOPASSWD:", 1)[1].split(", ")} == ALLOWED
    assert as_root == f"(root) NOPASSWD: {LIBEXEC}/aifactory-check-password, {LIBEXEC}/aifactory-extend-job"
    refused = [
        ["-u", "alice", "--", "id"],
        ["-u", "root", "--", "/usr/bin/scancel", "1"],
        ["-u", "alice", "--", "/usr/bin/scancel", "1"],  # only through the helper
        ["-u", "root", "--", f"{LIBEXEC}/aifactory-cancel", "1"],
        ["-u", "alice", "--", f"{LIBEXEC}/aifactory-env-list", "--json", "--x"],
        ["-u", "alice", "--", "sbatch", "--wrap", "id"],
        ["-u", "alice", "--", "sbatch", "--test-only", "--wrap", "id"],
    ]
    for argv in refused:
        assert as_hub("sudo", "-n", *argv).returncode != 0, argv


def test_the_cancel_helper_lets_the_hub_cancel_one_job_or_a_servers_workers_and_nothing_else():
    """The attack: a compromised hub account asks, as alice, to cancel every job of hers (``-u
    alice``), or jobs by a name that is no server's Dask workers. sudo's rule passes any arguments
    to root's helper; the helper refuses them and SLURM never hears of it."""
    helper = f"{LIBEXEC}/aifactory-cancel"
    submit = ["runuser", "-u", "alice", "--", "sbatch", "--parsable", "--chdir=/tmp", "--output=/dev/null"]
    jobs = [sh(*submit, f"--job-name={name}", "--wrap", "sleep 300").strip() for name in ("mine", "aifw-dask-7")]
    try:
        for args in (["-u", "alice"], ["--user=alice"], ["--name", "mine"], [jobs[0], "-u", "alice"], ["--name=mine"]):
            tried = as_hub("sudo", "-n", "-u", "alice", helper, *args)
            assert tried.returncode == 2 and "refused" in tried.stderr, (args, tried.stderr)
        assert sorted(sh("squeue", "-h", "-j", ",".join(jobs), "-o", "%i").split()) == sorted(jobs)  # both still there
        assert as_hub("sudo", "-n", "-u", "alice", helper, "--name", "aifw-dask-7").returncode == 0
        assert as_hub("sudo", "-n", "-u", "alice", helper, jobs[0]).returncode == 0
        wait_for(lambda: not sh("squeue", "-h", "-j", ",".join(jobs), "-o", "%i").split(), 30, "both cancelled")
    finally:
        sh("scancel", *jobs)


def test_the_hub_cannot_pass_a_variable_to_a_users_command():
    """A compromised hub account tries to run a user's scancel with its own library loaded."""
    cancel = f"{LIBEXEC}/aifactory-cancel"
    injected = as_hub("sudo", "-n", "-u", "alice", "LD_PRELOAD=/tmp/aifw-evil.so", cancel, "1")
    assert injected.returncode != 0 and "not allowed to set the following environment variables" in injected.stderr
    evil = "LD_PRELOAD=/tmp/aifw-evil.so"
    preserved = as_hub("env", evil, "sudo", "-n", "-E", "-u", "alice", cancel, "1")
    assert preserved.returncode != 0 and "not allowed to preserve the environment" in preserved.stderr


def test_only_the_jobs_own_variables_reach_a_submitted_job(tmp_path):
    out = Path(f"/tmp/aifw-env-{tmp_path.name}.txt")
    script = f"#!/bin/bash\n#SBATCH --export=ALL\n#SBATCH --output=/dev/null\n#SBATCH --mem=100M\nenv > {out}\n"
    submit = ["env", "JUPYTERHUB_USER=alice", "AIFW_INJECTED=1", "LD_LIBRARY_PATH=/tmp/evil"]
    job = subprocess.run(
        [
            "setpriv",
            f"--reuid={HUB_USER}",
            f"--regid={HUB_USER}",
            "--init-groups",
            *submit,
            "sudo",
            "-n",
            "-u",
            "alice",
            "/usr/bin/sbatch",
            "--parsable",
        ],
        input=script,
        capture_output=True,
        text=True,
        cwd="/tmp",
    )
    assert job.returncode == 0, job.stderr
    try:
        wait_for(
            lambda: out.exists() and "JUPYTERHUB_USER" in out.read_text(), 60, f"{out} written by the job", fail=False
        )
        names = {line.split("=", 1)[0] for line in out.read_text().splitlines()}
        assert "JUPYTERHUB_USER" in names
        assert "AIFW_INJECTED" not in names and "LD_LIBRARY_PATH" not in names
    finally:
        out.unlink(missing_ok=True)


def test_the_hub_cannot_change_what_users_dask_loads():
    """Dask loads every YAML in the venv's etc/dask (preloads, job prologues): the hub account
    writing there would run code as every user (issue 11, hole 5)."""
    folder = VENV / "etc" / "dask"
    planted = as_hub("sh", "-c", f"echo 'distributed: {{worker: {{preload: [/tmp/evil.py]}}}}' > {folder}/zz-evil.yaml")
    assert planted.returncode != 0 and not (folder / "zz-evil.yaml").exists()
    replace = f"cp {folder}/jobqueue.yaml /tmp/aifw-jq && mv -f /tmp/aifw-jq {folder}/jobqueue.yaml"
    replaced = as_hub("sh", "-c", replace)
    assert replaced.returncode != 0
    for path in (folder, folder / "jobqueue.yaml"):
        assert path.stat().st_uid == 0 and not path.stat().st_mode & 0o022, path


def demo_users() -> dict[str, str]:
    """The demo's Unix users (cluster/users.txt): name -> role."""
    rows = [line.split() for line in (REPO / "cluster" / "users.txt").read_text().splitlines()]
    return {row[0]: row[2] for row in rows if row and not row[0].startswith("#")}


def make_variable(name: str) -> str:
    """A variable of the Makefile as make itself expands it (nothing is run: -n)."""
    database = sh("make", "-s", "-n", "-p", "-C", str(REPO), "hub-stop")
    return re.search(rf"^{name} :?= (.*)$", database, re.M).group(1).strip()


def test_one_demo_user_cannot_read_anothers_home():
    """bob lists alice's home (issue 21, hole 8): homes are made 0700, and fixed at start."""
    for user in demo_users():
        home = Path(pwd.getpwnam(user).pw_dir)
        assert home.stat().st_mode & 0o777 == 0o700, (user, oct(home.stat().st_mode))
    alice = pwd.getpwnam("alice").pw_dir
    listing = subprocess.run(["runuser", "-u", "bob", "--", "ls", "-a", alice], capture_output=True, text=True)
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing.stdout


def test_a_demo_home_made_before_is_made_private_when_the_cluster_starts():
    """A machine where an older minicluster.sh made bob's home 0755: the start's user step
    (`minicluster.sh users`, run by `start`) closes it."""
    home = Path(pwd.getpwnam("bob").pw_dir)
    home.chmod(0o755)
    try:
        made = subprocess.run(["bash", str(CLUSTER), "users"], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        assert home.stat().st_mode & 0o777 == 0o700
    finally:
        home.chmod(0o700)


def test_the_hub_account_cannot_read_password_hashes(hub: HubProcess):
    """A compromised hub reads root's hash (issue 21, hole 10): passwords are checked by a
    root-owned helper, and the hub is in no group that reads /etc/shadow."""
    read = as_hub("cat", "/etc/shadow")
    assert read.returncode != 0 and "Permission denied" in read.stderr
    assert HUB_USER not in sh("getent", "group", "shadow").strip().split(":")[-1].split(",")
    groups = re.search(r"^Groups:(.*)$", Path(f"/proc/{hub.process.pid}/status").read_text(), re.M).group(1).split()
    assert str(grp.getgrnam("shadow").gr_gid) not in groups  # the running hub's own groups


def check_password(user: str, password: str) -> subprocess.CompletedProcess:
    """What the hub's authenticator asks (root/check_password.py): yes, no, or refused."""
    return as_hub("sudo", "-n", str(LIBEXEC / "aifactory-check-password"), user, stdin=password)


def test_the_password_helper_answers_yes_or_no_for_members_only():
    assert check_password("alice", demo_password("alice")).returncode == YES
    assert check_password("alice", "not-her-password").returncode == NO
    # Root, the daemons and the hub's own account are never asked about, whatever the password.
    for account in ("root", "daemon", HUB_USER, "aifw-no-such-user"):
        answer = check_password(account, "x")
        assert answer.returncode == REFUSED and "refused" in answer.stderr, (account, answer)
    for name in ("../etc", "alice bob", "-h"):  # sudo passes any arguments: the helper takes user names only
        outside = check_password(name, "x")
        assert outside.returncode == REFUSED and "refused" in outside.stderr, (name, outside)
    helper = LIBEXEC / "aifactory-check-password"
    for path in (helper, helper.parent):
        assert path.stat().st_uid == 0 and not path.stat().st_mode & 0o022, path


def test_the_hub_cannot_run_jobs_as_an_admin():
    """The hub account submits jobs as users; not as the hub's admins (issue 21, hole 10): they
    are in the admins group, which the sudo rule excludes even for members of both groups."""
    admins = [user for user, role in demo_users().items() if role == "admin"]
    assert admins and "instructor" not in admins
    staff = "aifw-staff"
    subprocess.run(
        ["useradd", "-M", "-s", "/usr/sbin/nologin", "-G", "aifactory-users,aifactory-admins", staff],
        check=True,
        capture_output=True,
    )
    try:
        for user in (*admins, staff):
            refused = as_hub("sudo", "-n", "-u", user, "/usr/bin/sbatch", "--test-only")
            assert refused.returncode == 1 and "a password is required" in refused.stderr, (user, refused)
        allowed = as_hub("sudo", "-n", "-l", "-u", "instructor", "/usr/bin/sbatch", "--test-only")
        assert allowed.returncode == 0, allowed.stderr
    finally:
        subprocess.run(["userdel", staff], check=False, capture_output=True)


def test_make_hub_stop_kills_nothing_but_the_hubs_own_process():
    """The hub account writes root's pid where `make hub-stop` reads the hub's (issue 21, hole 9);
    a stale pid file names a process that is no longer the hub."""
    victim = subprocess.Popen(["sleep", "300"])  # root's
    pid_file = Path(make_variable("HUB_PID"))
    hubs_own = Path("/var/lib/aifactory/hub/jupyterhub.pid")  # where the hub writes its pid (hub.state_dir)
    saved = {p: (p.read_text(), p.stat()) if p.is_file() else None for p in (pid_file, hubs_own)}
    try:
        for path in (pid_file, hubs_own):
            as_hub("sh", "-c", f"mkdir -p {path.parent} && echo {victim.pid} > {path}")
            if not path.is_file():  # the hub may not write it: root's own file, gone stale
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{victim.pid}\n")
        stop = subprocess.run(["make", "-s", "-C", str(REPO), "hub-stop"], capture_output=True, text=True)
        assert stop.returncode == 0, stop.stderr
        time.sleep(0.5)
        assert victim.poll() is None, "make hub-stop killed root's process"
    finally:
        victim.kill()
        for path, was in saved.items():
            path.unlink(missing_ok=True)
            if was is not None:  # as it was, and whose it was (a demo hub must write its own again)
                text, info = was
                path.write_text(text)
                os.chown(path, info.st_uid, info.st_gid)


def test_make_hub_stop_stops_the_hub_it_started():
    """The other side of the check above: a jupyterhub of the hub account, whose pid root wrote
    as it started it, is stopped (a stand-in: the demo's hub-start would start a real hub)."""
    pid_file = Path(make_variable("HUB_PID"))
    saved = pid_file.read_text() if pid_file.is_file() else None
    sleeper = ["/usr/bin/python3", "-c", "import time; time.sleep(300)"]
    stand_in = subprocess.Popen([*AS_HUB, *sleeper, str(HUB_VENV / "bin" / "jupyterhub"), "-f", "x.py"], cwd="/tmp")
    try:
        pid_file.write_text(f"{stand_in.pid}\n")
        stop = subprocess.run(["make", "-s", "-C", str(REPO), "hub-stop"], capture_output=True, text=True)
        assert stop.returncode == 0 and "hub stopped" in stop.stdout, stop
        assert stand_in.wait(timeout=10) == -15 and not pid_file.exists()
    finally:
        stand_in.kill()
        if saved is not None:
            pid_file.write_text(saved)


def test_the_hub_cannot_plant_a_link_where_root_writes_the_demo_hubs_log():
    """`make hub-start` appends the hub's output as root (issue 21, hole 9): a link the hub
    account planted there would have root write to any file."""
    log = Path(make_variable("HUB_LOG"))
    victim = Path("/tmp/aifw-roots-file")
    planted = as_hub("ln", "-sfn", str(victim), str(log))
    try:
        assert planted.returncode != 0 and not log.is_symlink()
        folder = log.parent.stat()
        assert folder.st_uid == 0 and not folder.st_mode & 0o022, log.parent
    finally:
        if log.is_symlink():
            log.unlink()
