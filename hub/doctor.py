"""``aifactory-site doctor``: the preflight an operator runs, as root on the hub's machine,
before opening the service and again after any change.

Each check tests one assumption the hub makes and, when it fails, names the fix. The probe
jobs test the compute nodes as a JupyterLab job meets them: submitted the way the hub submits
(the hub account, through its sudo rule, as a test user the operator names), one on each
partition the site offers, they show that the venv is there, that the user's home is the same
folder there, that the node reaches the hub at ``hub.connect_ip``, that the hub's machine
reaches a port the job opens (as the proxy must), and how far the node's clock is off.

What the doctor does in a user's home it does as that user: root follows no link a user owns.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aifactory_workbench.hub.database import shown_url
from aifactory_workbench.hub.site import SiteConfig, SiteConfigError
from aifactory_workbench.hub.tls import front_certificate_problems, internal_certificate_problems
from aifactory_workbench.root.dask_config import check_dask_config
from aifactory_workbench.root.site_install import EPILOG, PROFILE, SUDOERS, venv
from aifactory_workbench.slurm.client import ENV_LIST, EXTEND_HELPER, CommandResult, Slurm, outcome_argv
from aifactory_workbench.slurm.parsers import SlurmError, SlurmUnavailable, parse_outcome
from aifactory_workbench.slurm.values import is_unix_user

#: The clock difference between the hub's machine and a node beyond which a check fails:
#: job times, token expiry and TLS certificates' validity are read on both.
CLOCK_SKEW_LIMIT = 2.0
#: The probe job's name: sacct and the operator page show what it was.
PROBE_JOB_NAME = "aifw-doctor-probe"
#: The probe's exit codes, read when it could not report (its report goes through the home).
PROBE_NO_HOME = 3


@dataclass
class Check:
    """One line of the doctor's table: ``ok`` None means not applicable here."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


# What the probe job runs, with the venv's Python: it writes its report into the private folder
# the doctor made in the user's home (so the home is shared), then answers one connection from
# the hub's machine that brings the nonce in that folder (no other tenant knows it).
PROBE = r"""
import json, os, socket, sys, time
folder, hub_host, hub_port, login_host, login_port = sys.argv[1:6]
try:
    with open(os.path.join(folder, "nonce")) as f:
        nonce = f.read().strip().encode()
except OSError:
    sys.exit(NO_HOME)
report = {"node": socket.gethostname(), "python": sys.executable}
def reach(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
        return ""
    except (OSError, ValueError) as e:
        return str(e) or type(e).__name__
try:
    import aifactory_workbench.lab.notebook
    report["venv"] = ""
except Exception as e:
    report["venv"] = f"{type(e).__name__}: {e}"
report["hub"] = reach(hub_host, hub_port)
report["login_dask"] = reach(login_host, login_port) if login_host else "no address"
server = socket.create_server(("", 0))
report["address"] = socket.gethostbyname(report["node"])
report["port"] = server.getsockname()[1]
path = os.path.join(folder, "report.json")
with open(path + ".tmp", "w") as f:
    json.dump(report, f)
os.rename(path + ".tmp", path)
server.settimeout(120)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        connection, _ = server.accept()
    except OSError:
        break
    with connection:
        connection.settimeout(5)
        try:
            if connection.recv(256).strip() == nonce:
                connection.sendall(json.dumps({"time": time.time()}).encode())
                break
        except OSError:
            pass
""".replace("NO_HOME", str(PROBE_NO_HOME))


# What the hub's account answers about its database: "ok", or "down"/"schema" and why.
_ASK_DATABASE = (
    "import sys\n"
    "from aifactory_workbench.hub.database import database_problem, schema_problem\n"
    "down = database_problem(sys.argv[1])\n"
    "schema = '' if down else schema_problem(sys.argv[1])\n"
    "print(f'down {down}' if down else f'schema {schema}' if schema else 'ok')\n"
)


class Doctor:
    """The checks, in the order an operator would mend them."""

    def __init__(self, site: SiteConfig, hub_user: str, probe_user: str = "", probe_timeout: float = 120) -> None:
        self.site = site
        self.hub_user = hub_user
        self.probe_user = probe_user
        self.probe_timeout = probe_timeout
        # Commands as the hub account: runuser takes the same "-u USER --" as the hub's sudo.
        self.as_hub = Slurm(sudo=("runuser", "-u"))
        self.login_dask = ""
        self.login_listener: socket.socket | None = None

    def run_as(self, user: str, argv: list[str], stdin: str | None = None) -> CommandResult:
        """One command as ``user``, through the one place that runs SLURM's commands, from /
        (a probe job's working folder, which every user may enter); a failure is a result
        here, with SLURM's words, not an exception."""
        full = self.as_hub.as_user(user, argv)
        try:
            return self.as_hub.run_blocking(full, stdin, cwd="/")
        except (SlurmError, SlurmUnavailable) as e:
            return CommandResult(full, 1, "", str(e))

    def checks(self) -> Iterator[Check]:
        yield Check("site file", True, f"{self.site.source} is valid")
        yield self.slurm_as_hub()
        yield self.munge()
        yield self.sudo_rules()
        yield self.database()
        yield self.front_certificate()
        yield self.internal_certificate()
        yield self.oidc()
        yield self.dask_config()
        yield self.epilog()
        yield from self.probes()

    def slurm_as_hub(self) -> Check:
        name = "SLURM answers the hub account"
        try:
            out = self.as_hub.run_blocking(self.as_hub.as_user(self.hub_user, ["sinfo", "-h", "-o", "%R"])).stdout
        except (SlurmError, SlurmUnavailable) as e:
            return Check(
                name,
                False,
                str(e),
                "the hub's machine needs slurm.conf and munge's key of the cluster, and slurmctld must answer it",
            )
        return Check(name, True, f"partitions: {', '.join(sorted(set(out.split())))}")

    def munge(self) -> Check:
        try:
            made = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=True).stdout
            subprocess.run(["unmunge"], input=made, capture_output=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError) as e:
            return Check("munge", False, str(e), "start munged (systemctl start munge); its key must be the cluster's")
        return Check("munge", True, "a credential made here is accepted here")

    def sudo_rules(self) -> Check:
        name = "the hub's sudo rules"
        fix = f"as root: aifactory-site install {self.site.source} (it installs {SUDOERS} after visudo -c)"
        listed = subprocess.run(["sudo", "-n", "-l", "-U", self.hub_user], capture_output=True, text=True, timeout=30)
        rules = listed.stdout.partition("may run the following commands")[2]
        runas = [line.strip()[1:].split(")")[0] for line in rules.splitlines() if line.strip().startswith("(")]
        groups = {p.strip()[1:] for entry in runas if entry != "root" for p in entry.split(",") if "!" not in p}
        if listed.returncode != 0 or not groups or "sbatch" not in rules:
            return Check(name, False, f"{self.hub_user} may not run sbatch as anyone", fix)
        if "aifactory-check-password" not in rules:
            return Check(name, False, f"{self.hub_user} may not ask the password helper", fix)
        if self.site.singleuser.extend_minutes and EXTEND_HELPER not in rules:
            return Check(name, False, f"{self.hub_user} may not ask the helper that extends sessions", fix)
        if ENV_LIST.name not in rules:
            return Check(name, False, f"{self.hub_user} may not list users' environments (form, home page)", fix)
        unknown = sorted(groups - set(self.site.hub.allowed_groups))
        if unknown:
            return Check(
                name,
                False,
                f"{self.hub_user} submits as members of {', '.join(unknown)}, which "
                "hub.allowed_groups does not let sign in",
                fix,
            )
        who = f"{self.hub_user} submits as members of {', '.join(sorted(groups))}"
        if not self.probe_user:
            return Check(name, True, f"{who} (name a test user, --probe-user, to try it)")
        script = f"#!/bin/bash\n#SBATCH --partition={self.site.slurm.partition}\ntrue\n"
        tried = self.run_as(self.hub_user, ["sudo", "-n", "-u", self.probe_user, "--", "sbatch", "--test-only"], script)
        if tried.returncode != 0:
            return Check(
                name,
                False,
                f"{self.hub_user} cannot ask sbatch as {self.probe_user}: {(tried.stderr or tried.stdout).strip()}",
                fix,
            )
        return Check(name, True, f"{who} ({self.probe_user} tried)")

    def database(self) -> Check:
        """Asked as the hub's account: PostgreSQL may know the hub by its Unix name alone."""
        url = self.site.hub.database_url
        asked = self.run_as(self.hub_user, [sys.executable, "-c", _ASK_DATABASE, url])
        kind, _, problem = asked.stdout.strip().partition(" ")
        if asked.returncode != 0 or kind not in ("down", "schema", "ok"):
            problem, kind = (asked.stderr.strip().splitlines() or ["no answer"])[-1], "down"
        if kind == "ok":
            return Check("the hub's database", True, f"{shown_url(url)} answers, at this release's schema")
        fix = (
            "start the database, or correct hub.db_url"
            if kind == "down"
            else "with the hub stopped, as the hub's account: aifactory-site upgrade"
        )
        return Check("the hub's database", False, problem, fix)

    def front_certificate(self) -> Check:
        hub = self.site.hub
        host = hub.public_url.split("//", 1)[-1].split("/")[0].split(":")[0]
        if not hub.ssl_cert:
            return Check("the https certificate", None, "no ssl_cert: a front server ends TLS, or plain http")
        hosts = [host, f"*.{host}"] if hub.user_subdomains else [host]
        problems = front_certificate_problems(hub.ssl_cert, hub.ssl_key, hosts)
        if problems:
            return Check(
                "the https certificate",
                False,
                "; ".join(problems),
                f"a certificate for {' and '.join(hosts)} (hub.ssl_cert, hub.ssl_key)",
            )
        return Check("the https certificate", True, f"{hub.ssl_cert} names {' and '.join(hosts)}")

    def internal_certificate(self) -> Check:
        hub = self.site.hub
        if not hub.internal_ssl:
            return Check("the hub's internal certificate", None, "internal_ssl is off")
        problems = internal_certificate_problems(hub.internal_certs_dir, hub.connect_ip, "hub.connect_ip")
        if problems:
            return Check(
                "the hub's internal certificate",
                False,
                "; ".join(problems),
                "remove the internal-ssl folder named there, with the hub stopped: the hub makes it again",
            )
        return Check("the hub's internal certificate", True, f"names {hub.connect_ip} (or is made at first start)")

    def oidc(self) -> Check:
        auth = self.site.auth
        if auth.method != "oidc":
            return Check("OpenID Connect", None, f"sign-in is {auth.method}")
        from aifactory_workbench.hub.oidc import discover

        try:
            discover(auth.oidc_issuer)
        except (OSError, ValueError) as e:
            return Check(
                "OpenID Connect",
                False,
                f"{auth.oidc_issuer}: {e}",
                "correct auth.oidc_issuer, or let this machine reach the provider",
            )
        return Check("OpenID Connect", True, f"{auth.oidc_issuer} publishes its endpoints")

    def dask_config(self) -> Check:
        try:
            check_dask_config(self.site)
        except SiteConfigError as e:
            return Check(
                "users' Dask config", False, str(e), f"as root: aifactory-site install-dask {self.site.source}"
            )
        return Check("users' Dask config", True, "root's, and what the site file says")

    def epilog(self) -> Check:
        """A job SLURM kills (SIGKILL once KillWait has passed) runs no trap of its script: its
        private folder in the node's /tmp, with its TLS key, stays unless the site's Epilog
        (root's, as the job ends) removes it, or each job has a /tmp of its own. (Each job also
        sweeps its user's leftovers on its node as it starts: that needs nothing of the site.)"""
        name = "SLURM's epilog"
        ours = venv().parent / "libexec" / EPILOG
        fix = f"in slurm.conf on every node: Epilog={ours}, then scontrol reconfigure"
        try:
            shown = self.as_hub.run_blocking(self.as_hub.as_user(self.hub_user, ["scontrol", "show", "config"]))
        except (SlurmError, SlurmUnavailable) as e:
            return Check(name, False, f"scontrol show config: {e}", fix)
        config = {}
        for line in shown.stdout.splitlines():
            key, equals, value = line.partition("=")
            if equals:
                config[key.strip()] = value.strip()
        if config.get("JobContainerType", "") == "job_container/tmpfs":
            return Check(name, True, "each job's /tmp is its own (job_container/tmpfs), gone as the job ends")
        named = [p.strip() for p in config.get("Epilog", "(null)").split(",") if p.strip() not in ("", "(null)")]
        lost = "a job SLURM kills leaves its private folder (TLS key) in /tmp on its node until the next job there"
        if not named:
            return Check(name, False, f"slurm.conf names no Epilog: {lost}", fix)
        if str(ours) not in named and not any(self.runs_ours(Path(p)) for p in named):
            return Check(name, False, f"Epilog={','.join(named)} does not run {ours}: {lost}", fix)
        problem = root_script_problem(ours)
        if problem:
            return Check(name, False, f"{ours} {problem}", f"as root: aifactory-site install {self.site.source}")
        return Check(name, True, f"Epilog={','.join(named)} removes a job's private folder in /tmp as it ends")

    @staticmethod
    def runs_ours(script: Path) -> bool:
        """A site's own epilog (root's) that calls the workbench's."""
        try:
            return EPILOG in script.read_text(errors="replace")[:100_000]
        except OSError:
            return False

    def partitions(self) -> list[str]:
        site = self.site
        offered = [site.slurm.partition, site.dask.partition, *(p.get("partition", "") for p in site.form.presets)]
        return sorted({p for p in offered if p})

    def probes(self) -> Iterator[Check]:
        if not self.probe_user:
            yield Check("probe jobs", None, "name a test user (--probe-user USER) to probe each partition's nodes")
            return
        if not is_unix_user(self.probe_user):
            yield Check("probe jobs", False, f"{self.probe_user!r} is not a Unix user name", "name a test user")
            return
        # Where a Dask scheduler started in a login shell on this machine listens (the site's
        # profile script chooses it): a socket there stands in for one, which probes connect to.
        problem = self.listen_as_login_dask()
        if problem:
            fix = f"as root: aifactory-site install {self.site.source} (its {PROFILE} chooses the address)"
            yield Check("Dask from a login shell", False, problem, fix)
        try:
            for partition in self.partitions():
                yield from self.probe(partition)
        finally:
            if self.login_listener:
                self.login_listener.close()

    def listen_as_login_dask(self) -> str:
        """Listen where a login shell's Dask scheduler would; '' or what is wrong."""
        shown = 'printf "\\n%s%s" aifw-dask-host= "$DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST"'
        said = self.run_as(self.probe_user, ["bash", "-lc", shown]).stdout
        self.login_dask = said.rpartition("aifw-dask-host=")[2].strip()
        if not self.login_dask:
            return (
                f"a login shell of {self.probe_user} gives Dask's scheduler no address: it would advertise "
                "one that compute nodes may not reach"
            )
        try:
            self.login_listener = socket.create_server((self.login_dask, 0))
        except OSError as e:
            return f"a login shell gives Dask's scheduler {self.login_dask}, not this machine's: {e}"
        return ""

    def probe(self, partition: str) -> Iterator[Check]:
        name = f"probe on {partition}"
        made = self.run_as(
            self.probe_user,
            ["mktemp", "-d", "-p", os.path.expanduser(f"~{self.probe_user}"), ".aifactory-doctor-XXXXXXXX"],
        )
        folder = made.stdout.strip()
        if made.returncode != 0 or not folder:
            yield Check(
                name,
                False,
                f"{self.probe_user} cannot make a folder in their home: {made.stderr.strip()}",
                "a test user with a home on the shared file system",
            )
            return
        nonce = secrets.token_hex(16)
        try:
            self.run_as(self.probe_user, ["sh", "-c", 'umask 077 && cat > "$1"', "sh", f"{folder}/nonce"], nonce)
            yield from self._probe(name, partition, folder, nonce)
        finally:
            self.run_as(self.probe_user, ["rm", "-rf", "--", folder])

    def _probe(self, name: str, partition: str, folder: str, nonce: str) -> Iterator[Check]:
        site = self.site
        python = str(Path(site.singleuser.venv) / "bin" / "python")
        port = self.login_listener.getsockname()[1] if self.login_listener else 0
        script = (
            f"#!/bin/bash\n#SBATCH --job-name={PROBE_JOB_NAME}\n#SBATCH --partition={partition}\n"
            "#SBATCH --time=00:05:00\n#SBATCH --cpus-per-task=1\n#SBATCH --mem=512M\n#SBATCH --output=/dev/null\n"
            f"exec {shlex.quote(python)} -I -c {shlex.quote(PROBE)} {shlex.quote(folder)} "
            f"{shlex.quote(site.hub.connect_ip)} {site.hub.hub_port} {shlex.quote(self.login_dask)} {port}\n"
        )
        submitted = self.run_as(
            self.hub_user, ["sudo", "-n", "-u", self.probe_user, "--", "sbatch", "--parsable"], script
        )
        job = submitted.stdout.strip().split(";")[0]
        if submitted.returncode != 0 or not job.isdigit():
            yield Check(
                name,
                False,
                f"sbatch as {self.probe_user}: {(submitted.stderr or submitted.stdout).strip()}",
                "see the sudo rules' check above, and the partition's limits",
            )
            return
        try:
            yield from self._follow(name, job, folder, nonce, python)
        finally:
            self.run_as(self.probe_user, ["scancel", job])

    def _follow(self, name: str, job: str, folder: str, nonce: str, python: str) -> Iterator[Check]:
        deadline = time.monotonic() + self.probe_timeout
        report: dict = {}
        while time.monotonic() < deadline:
            read = self.run_as(self.probe_user, ["cat", f"{folder}/report.json"])
            if read.returncode == 0:
                report = json.loads(read.stdout)
                break
            state, node, exit_code = self.job_state(job)
            if state and state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                yield self.probe_ended(name, job, state, node, exit_code, python, folder)
                return
            time.sleep(0.5)
        if not report:
            yield Check(
                name,
                False,
                f"job {job} did not report within {self.probe_timeout:.0f} s (still queued?)",
                "run the doctor when the partition has a free core, or give --probe-timeout",
            )
            return
        node = report["node"]
        yield Check(f"{name}: job {job} on {node}", True, "ran as the test user; the home is the same folder there")
        venv = report["venv"]
        yield Check(
            f"{name}: the venv on {node}",
            not venv,
            venv or f"{report['python']} imports the workbench",
            f"install the venv where {node} reads {self.site.singleuser.venv} (the shared file system)",
        )
        hub = f"{self.site.hub.connect_ip}:{self.site.hub.hub_port}"
        yield Check(
            f"{name}: {node} reaches the hub",
            not report["hub"],
            report["hub"] or f"at {hub}",
            f"hub.connect_ip must be an address of the hub's machine that {node} reaches, and the hub "
            f"must listen there (hub.hub_ip)",
        )
        if self.login_dask:
            where = f"{self.login_dask} (what a login shell gives Dask's scheduler)"
            yield Check(
                f"{name}: {node} reaches Dask on this machine",
                not report["login_dask"],
                f"{where}: {report['login_dask']}" if report["login_dask"] else where,
                f"the address /etc/profile.d/aifactory-dask.sh chooses must be one {node} reaches",
            )
        yield from self.reach_node(name, node, report["address"], report["port"], nonce)

    def reach_node(self, name: str, node: str, address: str, port: int, nonce: str) -> Iterator[Check]:
        try:
            with socket.create_connection((address, port), timeout=10) as connection:
                asked = time.time()
                connection.sendall(nonce.encode() + b"\n")
                answer = json.loads(connection.recv(256).decode())
                skew = answer["time"] - (asked + time.time()) / 2
        except (OSError, ValueError, KeyError) as e:
            yield Check(
                f"{name}: the proxy reaches {node}",
                False,
                f"{address}:{port}: {e}",
                f"let the hub's machine reach {node}'s ports (JupyterLab listens on any)",
            )
            return
        yield Check(f"{name}: the proxy reaches {node}", True, f"{address}:{port} answered")
        ok = abs(skew) <= CLOCK_SKEW_LIMIT
        yield Check(
            f"{name}: {node}'s clock",
            ok,
            f"{skew:+.2f} s from this machine's",
            "" if ok else "run NTP (chrony) on every node and on this machine",
        )

    def job_state(self, job: str) -> tuple[str, str, str]:
        """State, node and exit code from accounting (the job may have left squeue)."""
        return parse_outcome(self.run_as(self.probe_user, outcome_argv(job)).stdout)

    def probe_ended(
        self, name: str, job: str, state: str, node: str, exit_code: str, python: str, folder: str
    ) -> Check:
        code = exit_code.split(":")[0]
        if code in ("126", "127"):
            return Check(
                f"{name}: the venv on {node}",
                False,
                f"job {job} on {node}: {python} cannot run there",
                f"install the venv where {node} reads {self.site.singleuser.venv} (the shared file system)",
            )
        if code == str(PROBE_NO_HOME):
            return Check(
                f"{name}: the home on {node}",
                False,
                f"job {job} on {node} did not find {folder}",
                f"mount the homes on {node} as on this machine",
            )
        return Check(
            name,
            False,
            f"job {job} ended {state} (exit {exit_code}) on {node or 'no node'}",
            "sacct -j JOB and the node's slurmd log say why",
        )


def root_script_problem(path: Path) -> str:
    """What is wrong with a script root runs (slurmd runs the epilog as root): '' when it is
    root's file, which only root may change."""
    try:
        info = path.lstat()
    except OSError as e:
        return f"is missing ({e.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "is not a plain file"
    if info.st_uid != 0 or info.st_mode & 0o022:
        return f"may be changed by others than root (owner uid {info.st_uid}, mode {oct(info.st_mode & 0o777)})"
    if not info.st_mode & 0o100:
        return "is not executable"
    return ""


def table(checks: list[Check]) -> str:
    """The checks as a table: check, result, and what to do where one failed."""
    mark = {True: "ok", False: "FAILED", None: "-"}
    rows = [("check", "result", "detail / fix")]
    for check in checks:
        text = check.detail + (f" -> fix: {check.fix}" if check.ok is False and check.fix else "")
        rows.append((check.name, mark[check.ok], text))
    first = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{first}}  {b:<6}  {c}" for a, b, c in rows)
