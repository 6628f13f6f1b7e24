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

import errno
import grp
import json
import os
import pwd
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aifactory_workbench.hub.database import is_postgresql, shown_url
from aifactory_workbench.hub.site import SiteConfig, SiteConfigError, is_ip_address
from aifactory_workbench.hub.tls import front_certificate_problems, internal_certificate_problems
from aifactory_workbench.root.dask_config import check_dask_config
from aifactory_workbench.root.site_install import EPILOG, PROFILE, PROXY_UNIT, SUDOERS, SYSTEMD_PATH, UNIT, venv
from aifactory_workbench.slurm.client import EXTEND_HELPER, CommandResult, Slurm, outcome_argv
from aifactory_workbench.slurm.formats import (
    SACCTMGR_DEFAULT_ACCOUNT,
    SACCTMGR_QOS_NAMES,
    SINFO_PARTITIONS,
    sacctmgr_argv,
    sinfo_argv,
)
from aifactory_workbench.slurm.job_fields import JOB_FIELDS, USER_OPTIONS, JobSettings, sbatch_options
from aifactory_workbench.slurm.parsers import (
    SlurmError,
    SlurmUnavailable,
    parse_column,
    parse_default_account,
    parse_node_address,
    parse_outcome,
    parse_sbatch_parsable,
    parse_scontrol_config,
)
from aifactory_workbench.slurm.values import is_unix_user

#: The clock difference between the hub's machine and a node beyond which a check fails:
#: job times, token expiry and TLS certificates' validity are read on both.
CLOCK_SKEW_LIMIT = 2.0
#: The probe job's name: sacct and the operator page show what it was.
PROBE_JOB_NAME = "aifw-doctor-probe"
#: The probe's exit codes, read when it could not report (its report goes through the home).
PROBE_NO_HOME = 3
PROBE_NO_PORT = 4  # no port free in singleuser.port_range
#: What a probe job asks for besides the site's partition, account, QoS, reservation and features.
PROBE_RESOURCES = {"cpus": 1, "memory": "512M", "gpus": 0, "walltime": "00:05:00"}
#: The oldest sudo that reads the hub's rules (``command_timeout``: 1.8.20).
MIN_SUDO = (1, 8, 20)
#: The most users whose homes the doctor looks at (members of hub.allowed_groups, by name).
HOMES_SAMPLE = 200


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
folder, hub_host, hub_port, login_host, login_port, low, high = sys.argv[1:8]
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
def listen(low, high):
    for port in range(low, high + 1) if low else [0]:
        try:
            return socket.create_server(("", port))
        except OSError:
            pass
    sys.exit(NO_PORT)
server = listen(int(low), int(high))
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
""".replace("NO_HOME", str(PROBE_NO_HOME)).replace("NO_PORT", str(PROBE_NO_PORT))


# What the hub's account runs first: the venv's Python, which imports JupyterHub and the workbench.
_ASK_VENV = "import jupyterhub, aifactory_workbench.hub.database\nprint('ok')"

# Whether the hub's account may listen where the hub and its proxy do: errno for each HOST PORT
# (0: it may; EADDRINUSE: it may, but something, the running hub perhaps, listens there now).
_ASK_BIND = (
    "import socket, sys\n"
    "for host, port in zip(sys.argv[1::2], sys.argv[2::2]):\n"
    "    try:\n"
    "        family, kind, _, _, address = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM,"
    " flags=socket.AI_PASSIVE)[0]\n"
    "        with socket.socket(family, kind) as s:\n"
    "            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "            s.bind(address)\n"
    "        print(0)\n"
    "    except socket.gaierror:\n"
    "        print(-1)\n"
    "    except OSError as e:\n"
    "        print(e.errno)\n"
)

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
        self.as_hub = Slurm(sudo=("runuser", "-u"), bin_dir=site.slurm.bin_dir)
        #: The hub's own client: its command lines through sudo, as the hub runs them.
        self.hub_slurm = Slurm(bin_dir=site.slurm.bin_dir)
        self.login_dask = ""
        self.login_listener: socket.socket | None = None
        #: The Python the hub's unit runs (this venv's), and the PATH it runs with.
        self.hub_python = sys.executable
        self.unit_path = SYSTEMD_PATH
        self.venv_runs = False

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
        yield self.hub_venv()
        yield self.slurm_as_hub()
        yield self.munge()
        yield self.sudo_rules()
        yield self.site_qos()
        yield self.database()
        yield self.pg_dump()
        yield self.proxy()
        yield self.proxy_token()
        yield self.ports()
        yield self.public_names()
        yield self.front_certificate()
        yield self.internal_certificate()
        yield self.oidc()
        yield self.dask_config()
        yield self.homes()
        yield self.epilog()
        yield from self.probes()

    def hub_venv(self) -> Check:
        """First: every check that asks as the hub's account runs this Python."""
        name = "the hub's venv"
        python = self.hub_python
        asked = self.run_as(self.hub_user, [python, "-I", "-c", _ASK_VENV])
        self.venv_runs = asked.returncode == 0 and asked.stdout.strip() == "ok"
        if self.venv_runs:
            return Check(name, True, f"{self.hub_user} runs {python} and imports JupyterHub and the workbench")
        said = (asked.stderr.strip().splitlines() or [f"exit {asked.returncode}"])[-1]
        root = Path(python).parent.parent
        blocked = blocked_folders(Path(python), self.hub_user)
        if blocked:
            fix = f"let {self.hub_user} pass the folders above it: chmod o+x {' '.join(blocked)}"
        elif "ModuleNotFoundError" in said:
            fix = f"install the workbench into {root} again (make install, as root)"
        else:
            fix = f"let {self.hub_user} read and run the venv: chmod -R o+rX {root}"
        return Check(name, False, f"{self.hub_user} cannot run {python}: {said}", fix)

    def not_asked(self, name: str) -> Check | None:
        """A check that runs the venv's Python as the hub's account is not asked when it does not run."""
        if self.venv_runs:
            return None
        return Check(name, None, f"not asked: {self.hub_user} cannot run the hub's venv (see its check above)")

    def slurm_as_hub(self) -> Check:
        name = "SLURM answers the hub account"
        try:
            asked = self.as_hub.run_blocking(self.as_hub.as_user(self.hub_user, sinfo_argv(SINFO_PARTITIONS)))
            partitions = parse_column(asked.stdout, SINFO_PARTITIONS)
        except (SlurmError, SlurmUnavailable) as e:
            return Check(
                name,
                False,
                str(e),
                "the hub's machine needs slurm.conf and munge's key of the cluster, and slurmctld must answer it",
            )
        return Check(name, True, f"partitions: {', '.join(sorted(set(partitions)))}")

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
        version = sudo_version()
        if version < MIN_SUDO:
            shown = ".".join(map(str, version)) or "unknown"
            return Check(name, False, f"sudo {shown} is older than 1.8.20 (command_timeout)", "update sudo")
        listed = subprocess.run(["sudo", "-n", "-l", "-U", self.hub_user], capture_output=True, text=True, timeout=30)
        rules = listed.stdout.partition("may run the following commands")[2]
        runas = [line.strip()[1:].split(")")[0] for line in rules.splitlines() if line.strip().startswith("(")]
        groups = {p.strip()[1:] for entry in runas if entry != "root" for p in entry.split(",") if "!" not in p}
        if listed.returncode != 0 or not groups:
            return Check(name, False, f"{self.hub_user} may run nothing as the site's users", fix)
        unknown = sorted(groups - set(self.site.hub.allowed_groups))
        if unknown:
            return self.groups_mismatch(name, sorted(groups), unknown)
        member = self.probe_user or first_member(groups)
        refused = [(w, a) for w, a in self.sudo_commands() if not sudo_allows(self.hub_user, w, member, a)]
        if refused:
            whom, argv = refused[0]  # whom as the rule's own pair says: "root", or "user" (a member)
            who = "root" if whom == "root" else member or "a user"
            return Check(name, False, f"sudo does not let {self.hub_user} run {shlex.join(argv)} as {who}", fix)
        unsafe = [problem for _, argv in self.sudo_commands() for problem in root_alone_problems(Path(argv[0]))]
        if unsafe:
            return Check(name, False, f"a command sudo's rules allow is not root's alone: {unsafe[0]}", fix)
        who = f"{self.hub_user} submits as members of {', '.join(sorted(groups))}; each rule runs"
        if not self.probe_user:
            return Check(name, True, f"{who} (name a test user, --probe-user, to try it)")
        script = f"#!/bin/bash\n#SBATCH --partition={self.site.slurm.partition}\ntrue\n"
        tried = self.run_as(self.hub_user, self.hub_slurm.as_user(self.probe_user, ["sbatch", "--test-only"]), script)
        if tried.returncode != 0:
            said = (tried.stderr or tried.stdout).strip()
            return Check(name, False, f"{self.hub_user} cannot ask sbatch as {self.probe_user}: {said}", fix)
        return Check(name, True, f"{who} ({self.probe_user} tried)")

    def sudo_commands(self) -> list[tuple[str, list[str]]]:
        """What the hub runs through sudo here (no extension helper where the site extends nothing)."""
        wanted = self.hub_slurm.sudo_rules_allow()
        return [(w, a) for w, a in wanted if self.site.singleuser.extend_minutes or not a[0].endswith(EXTEND_HELPER)]

    def groups_mismatch(self, name: str, groups: list[str], unknown: list[str]) -> Check:
        """The sudo rules name a group (install's --users-group) that hub.allowed_groups does not:
        either is what to change, and installing again as before changes neither."""
        allowed = self.site.hub.allowed_groups
        source = self.site.source
        detail = (
            f"the sudo rules let {self.hub_user} submit as members of {', '.join(groups)} "
            f"(aifactory-site install --users-group {groups[0]}), but hub.allowed_groups in {source} lets "
            f"{', '.join(allowed) or 'no group'} sign in: {', '.join(unknown)} may not"
        )
        fix = f"to serve {unknown[0]}: add it to hub.allowed_groups in {source}, then restart the hub"
        if allowed:
            fix += (
                f"; to serve {allowed[0]} instead: as root, aifactory-site install {source} --users-group {allowed[0]}"
            )
        return Check(name, False, detail, fix)

    def site_qos(self) -> Check:
        """Each QoS the site file names is one SLURM knows (sbatch refuses a job that names another)."""
        name = "the site's QoS"
        named = self.qos_keys()
        asked = self.run_as(self.hub_user, sacctmgr_argv(SACCTMGR_QOS_NAMES, "qos"))
        said = (asked.stderr or asked.stdout).strip()
        try:
            known = sorted(set(parse_column(asked.stdout, SACCTMGR_QOS_NAMES))) if asked.returncode == 0 else None
        except SlurmError as e:
            known, said = None, str(e)
        if known is None:
            return Check(name, False, f"sacctmgr show qos: {said}", "slurmdbd must answer the hub's machine")
        missing = [f"{key}: {qos}" for key, qos in named if qos not in known]
        if missing:
            return Check(
                name,
                False,
                f"{'; '.join(missing)}: no such QoS in SLURM (sacctmgr show qos: {', '.join(known) or 'none'})",
                f"in {self.site.source}, name one of {', '.join(known) or 'the QoS SLURM has'}; or, as SLURM's "
                "administrator, add that QoS (sacctmgr add qos NAME) and give it to the projects' associations",
            )
        shown = ", ".join(f"{key}: {qos}" for key, qos in named)
        return Check(name, True, f"{shown or 'none named'} (SLURM knows each)")

    def qos_keys(self) -> list[tuple[str, str]]:
        """(site key, QoS) for each QoS the site file names."""
        site = self.site
        named = [("slurm.qos", site.slurm.qos), ("dask.qos", site.dask.qos)]
        named += [(f"form.presets[{p.get('name')}].qos", p["qos"]) for p in site.form.presets if "qos" in p]
        return [(key, qos) for key, qos in named if qos]

    def database(self) -> Check:
        """Asked as the hub's account: PostgreSQL may know the hub by its Unix name alone."""
        skipped = self.not_asked("the hub's database")
        if skipped:
            return skipped
        url = self.site.hub.database_url
        asked = self.run_as(self.hub_user, [self.hub_python, "-c", _ASK_DATABASE, url])
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

    def pg_dump(self) -> Check:
        """The backup before a schema change: ``aifactory-site upgrade``, which the hub's unit runs
        before every start, calls pg_dump (hub/database.py) from the unit's PATH."""
        name = "pg_dump for the database's backup"
        if not is_postgresql(self.site.hub.database_url):
            return Check(name, None, "the database is SQLite: its backup needs no other program")
        fix = "as root: apt install postgresql-client (of the database server's release or newer)"
        found = shutil.which("pg_dump", path=self.unit_path)
        if not found:
            return Check(
                name,
                False,
                f"no pg_dump on the hub unit's PATH ({self.unit_path}): the upgrade that every start of the hub "
                "runs backs the database up with it before a new release changes the schema",
                fix,
            )
        said = self.run_as(self.hub_user, [found, "--version"])
        if said.returncode != 0:
            blocked = blocked_folders(Path(found), self.hub_user)
            problem = (said.stderr.strip().splitlines() or [f"exit {said.returncode}"])[-1]
            if blocked:
                fix = f"let {self.hub_user} pass the folders above it: chmod o+x {' '.join(blocked)}"
            return Check(name, False, f"{self.hub_user} cannot run {found}: {problem}", fix)
        return Check(name, True, f"{found}: {said.stdout.strip()}")

    def proxy(self) -> Check:
        """JupyterHub starts configurable-http-proxy (hub.proxy_command) as the hub's account."""
        name = "the proxy"
        command = Path(self.site.hub.proxy_command)
        where = f"hub.proxy_command in {self.site.source}"
        if not command.exists():
            return Check(
                name,
                False,
                f"{command} is not there",
                f"install it (make install: npm install --prefix /opt/aifactory/node configurable-http-proxy@5), "
                f"or set {where} to where it is",
            )
        blocked = blocked_folders(command, self.hub_user)
        if blocked:
            return Check(
                name,
                False,
                f"{self.hub_user} cannot reach {command}: it may not pass {', '.join(blocked)}",
                f"as root: chmod o+x {' '.join(blocked)}",
            )
        said = self.run_as(self.hub_user, ["env", f"PATH={self.unit_path}", str(command), "--version"])
        if said.returncode == 0:
            return Check(name, True, f"{command} {said.stdout.strip()} runs as {self.hub_user}")
        problem = (said.stderr.strip().splitlines() or [f"exit {said.returncode}"])[-1]
        if said.returncode == 126:
            fix = f"as root: chmod o+rx {command.resolve()}"
        elif "node" in problem:
            fix = f"install Node.js where the hub unit's PATH ({self.unit_path}) finds node"
        else:
            fix = f"install configurable-http-proxy again, or set {where} to one that runs"
        return Check(name, False, f"{self.hub_user} cannot run {command}: {problem}", fix)

    def proxy_token(self) -> Check:
        """With the proxy on its own (hub.proxy_token_file), the token it shares with the hub:
        root's, read by the hub's account, by no one else (whoever holds it rewrites the routes)."""
        name = "the proxy's token"
        path = self.site.hub.proxy_token_file
        if not path:
            return Check(name, None, 'hub.proxy_token_file "": the hub starts the proxy as its child')
        fix = f"as root: aifactory-site install {self.site.source} (it makes the token root's, 0640, the hub's group)"
        try:
            info = os.stat(path)
        except OSError as e:
            return Check(name, False, f"hub.proxy_token_file {path}: {e.strerror}", fix)
        if info.st_uid != 0 or info.st_mode & 0o027:
            shown = f"{stat.filemode(info.st_mode)} {pwd.getpwuid(info.st_uid).pw_name}"
            return Check(name, False, f"{path} is {shown}: only root may write it and only the hub read it", fix)
        if self.run_as(self.hub_user, ["test", "-r", path]).returncode != 0:
            return Check(name, False, f"{self.hub_user} cannot read {path} (hub.proxy_token_file)", fix)
        return Check(name, True, f"{path}: root's, read by {self.hub_user} and no one else")

    def ports(self) -> Check:
        """The hub's account may listen where the proxy and the hub do: a port below 1024 needs
        CAP_NET_BIND_SERVICE, which the hub's unit does not give unless the site adds it."""
        name = "the hub's ports"
        skipped = self.not_asked(name)
        if skipped:
            return skipped
        hub = self.site.hub
        wanted = [("hub.port", hub.ip, hub.port), ("hub.hub_port", hub.hub_ip, hub.hub_port)]
        wanted.append(("hub.proxy_api_port", "127.0.0.1", hub.proxy_api_port))
        argv = [self.hub_python, "-I", "-c", _ASK_BIND, *(str(v) for _, host, port in wanted for v in (host, port))]
        answers = self.run_as(self.hub_user, argv).stdout.split()
        if len(answers) != len(wanted):
            return Check(name, False, f"{self.hub_user} could not try its ports", "see the hub's venv check above")
        problems, busy = [], []
        for (key, host, port), answer in zip(wanted, answers, strict=True):
            code = int(answer)
            if code == errno.EACCES and unit_grants("CAP_NET_BIND_SERVICE", self.listening_unit(key)):
                code = 0
            if code == errno.EADDRINUSE:
                busy.append(str(port))
            elif code:
                problems.append((key, host, port, code))
        if problems:
            key, host, port, code = problems[0]
            return Check(name, False, *self.port_problem(key, host, port, code))
        shown = ", ".join(f"{port} ({key})" for key, _, port in wanted)
        note = f"; in use now: {', '.join(busy)} (the running hub's?)" if busy else ""
        return Check(name, True, f"{self.hub_user} may listen on {shown}{note}")

    def listening_unit(self, key: str) -> Path:
        """The unit whose process listens at the port of ``key``: the proxy's for hub.port when
        it runs on its own, else the hub's."""
        return PROXY_UNIT if key == "hub.port" and self.site.hub.proxy_on_its_own else UNIT

    def port_problem(self, key: str, host: str, port: int, code: int) -> tuple[str, str]:
        """What is wrong with one port the hub's account cannot listen on, and the fix."""
        if code == errno.EACCES:
            public = self.site.hub.public_url or "the public URL"
            return (
                f"{key} {port} is below 1024 and {self.hub_user} may not listen there (no CAP_NET_BIND_SERVICE)",
                f"set {key} to 1024 or above in {self.site.source} and let a front server or a port redirect "
                f"serve {public}; or give the unit the right: systemctl edit {self.listening_unit(key).name}, "
                "[Service] AmbientCapabilities=CAP_NET_BIND_SERVICE",
            )
        if code in (-1, errno.EADDRNOTAVAIL):
            return (
                f"{key}'s address {host or '(all)'} is not one of this machine's",
                f"set the address for {key} in {self.site.source} to one of this machine's",
            )
        return (f"{key} {port} on {host or '(all)'}: {os.strerror(code)}", f"choose another {key}")

    def homes(self) -> Check:
        """Users' notebooks, keys and tokens live in their homes: no other user may read them."""
        name = "users' homes"
        groups = self.site.hub.allowed_groups
        names = sorted({member for group in groups for member in group_members(group)})[:HOMES_SAMPLE]
        entries = [entry for entry in (user_entry(n) for n in names) if entry is not None]
        if not entries:
            return Check(name, None, f"{', '.join(groups) or 'hub.allowed_groups'} has no members to look at")
        found = open_homes(entries)
        if found:
            return Check(
                name,
                False,
                f"others may read these homes: {'; '.join(found)}",
                "as root: chmod 700 each of them; new homes: HOME_MODE 0700 in /etc/login.defs "
                "(and DIR_MODE=0700 in /etc/adduser.conf)",
            )
        return Check(name, True, f"the homes of {len(entries)} members of {', '.join(groups)} are their users' alone")

    def public_names(self) -> Check:
        """The names users type resolve here: the public host and, with per-user origins, any
        name under it (a wildcard record), to the same addresses (the proxy's)."""
        name = "the public names (DNS)"
        hub = self.site.hub
        host = urlsplit(hub.public_url).hostname or ""
        if not host or is_ip_address(host):
            return Check(name, None, f"hub.public_url names {'an address' if host else 'no host'}: no name to resolve")
        wanted = [host, f"aifw-doctor-{secrets.token_hex(4)}.{host}"] if hub.user_subdomains else [host]
        if host == "localhost" or host.endswith(".localhost"):
            return Check(name, True, f"{host}: browsers resolve each name under .localhost to their machine (RFC 6761)")
        found = {wanted_name: addresses_of(wanted_name) for wanted_name in wanted}
        missing = [n for n, addresses in found.items() if not addresses]
        records = f"{host} and *.{host}" if hub.user_subdomains else host
        fix = f"DNS records for {records}, each to the proxy's address (hub.user_subdomains: a wildcard record)"
        if missing:
            return Check(name, False, f"{', '.join(missing)}: no address here", fix)
        if len({tuple(addresses) for addresses in found.values()}) > 1:
            said = "; ".join(f"{n}: {', '.join(a)}" for n, a in found.items())
            return Check(name, False, f"the names resolve to different addresses: {said}", fix)
        return Check(name, True, f"{records} resolve to {', '.join(found[host])}")

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
        config = parse_scontrol_config(shown.stdout)
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

    def offers(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Each partition the site offers, with the first offer of it (the JupyterLab default,
        Dask's workers, a preset: its site key) and the job settings a spawn of it sends: the site's
        slurm.* keys with that offer's (slurm/job_fields.py; sbatch_options writes them)."""
        site = self.site
        base = {f.name: getattr(site.slurm, f.name) for f in JOB_FIELDS}
        # Dask's workers ask for their partition and QoS only (root/dask_config.py), in the user's default account.
        dask = {**base, "partition": site.dask.partition, "qos": site.dask.qos, "account": "", "reservation": ""}
        offered = [("slurm", base), ("dask", {**dask, "constraint": ""})]
        for preset in site.form.presets:
            chosen = {k: v for k, v in preset.items() if k in USER_OPTIONS}
            offered.append((f"form.presets[{preset.get('name')}]", {**base, **chosen}))
        first: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, settings in offered:
            if settings["partition"]:
                first.setdefault(settings["partition"], (key, settings))
        return dict(sorted(first.items()))

    def default_account(self) -> str:
        """The test user's default SLURM account (what a spawn with slurm.account "" is charged to)."""
        asked = self.run_as(self.hub_user, sacctmgr_argv(SACCTMGR_DEFAULT_ACCOUNT, "user", self.probe_user))
        try:
            return parse_default_account(asked.stdout) if asked.returncode == 0 else ""
        except SlurmError:
            return ""

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
        account = self.default_account()
        try:
            for partition, (key, settings) in self.offers().items():
                if not (settings["account"] or account):
                    yield Check(
                        f"probe on {partition}",
                        False,
                        f"{self.probe_user} has no default SLURM account (sacctmgr show user {self.probe_user})",
                        f"name a test user of a project, or give {self.probe_user} one: "
                        f"sacctmgr add user {self.probe_user} account=PROJECT",
                    )
                    continue
                job = JobSettings(**{**settings, "account": settings["account"] or account, **PROBE_RESOURCES})
                yield from self.probe(partition, key, job)
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

    def probe(self, partition: str, key: str, job: JobSettings) -> Iterator[Check]:
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
            yield from self._probe(name, key, job, folder, nonce)
        finally:
            self.run_as(self.probe_user, ["rm", "-rf", "--", folder])

    def _probe(self, name: str, key: str, settings: JobSettings, folder: str, nonce: str) -> Iterator[Check]:
        """The probe job, with the options a spawn of ``key`` sends (its partition, account, QoS,
        reservation, features), on the least resources."""
        site = self.site
        python = str(Path(site.singleuser.venv) / "bin" / "python")
        port = self.login_listener.getsockname()[1] if self.login_listener else 0
        options = [f"--job-name={PROBE_JOB_NAME}", *sbatch_options(settings), "--output=/dev/null"]
        script = (
            "#!/bin/bash\n"
            + "".join(f"#SBATCH {option}\n" for option in options)
            + f"exec {shlex.quote(python)} -I -c {shlex.quote(PROBE)} {shlex.quote(folder)} "
            f"{shlex.quote(site.hub.connect_ip)} {site.hub.hub_port} {shlex.quote(self.login_dask)} {port} "
            f"{' '.join(map(str, site.singleuser.port_range or (0, 0)))}\n"
        )
        submitted = self.run_as(
            self.hub_user, self.hub_slurm.as_user(self.probe_user, ["sbatch", "--parsable"]), script
        )
        try:
            job = parse_sbatch_parsable(submitted.stdout) if submitted.returncode == 0 else ""
        except SlurmError:
            job = ""
        if not job:
            said = (submitted.stderr or submitted.stdout).strip()
            asked = " ".join(o for o in options if o.startswith(("--partition", "--account", "--qos", "--res")))
            yield Check(
                name, False, f"sbatch as {self.probe_user} ({asked}): {said}", self.refusal_fix(key, settings, said)
            )
            return
        ran = f"account {settings.account}, QoS {settings.qos or 'the default'}"
        try:
            yield from self._follow(name, job, folder, nonce, python, ran)
        finally:
            self.run_as(self.probe_user, ["scancel", job])

    def refusal_fix(self, key: str, settings: JobSettings, said: str) -> str:
        """What to change when sbatch refuses a probe as it would refuse that offer's spawns."""
        user, source = self.probe_user, self.site.source
        listed = f"sacctmgr show assoc user={user} format=Account,Partition,QOS"
        refused = said.lower()
        if "invalid qos" in refused or ("qos" in refused and "not permitted" in refused):
            named = f"{key}.qos" if f"{key}.qos" in dict(self.qos_keys()) else "slurm.qos"
            may = f"a QoS that account {settings.account} may use on {settings.partition}"
            return f"in {source}, {named}: {may} ({listed})"
        if "invalid account" in refused:
            return (
                f'in {source}, slurm.account: an account of the users ("" for each one\'s default), or give '
                f"{user} the account {settings.account} ({listed})"
            )
        return (
            "see the sudo rules' check above, the partition's limits (scontrol show partition) and the QoS's "
            f"(sacctmgr show qos {settings.qos or 'normal'})"
        )

    def _follow(self, name: str, job: str, folder: str, nonce: str, python: str, ran: str) -> Iterator[Check]:
        deadline = time.monotonic() + self.probe_timeout
        report: dict[str, Any] = {}
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
        yield Check(
            f"{name}: job {job} on {node}",
            True,
            f"ran as the test user ({ran}); the home is the same folder there",
        )
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
        yield from self.reach_node(name, node, self.node_address(node, report["address"]), report["port"], nonce)

    def node_address(self, node: str, resolved: str) -> str:
        """Where the proxy reaches ``node``: SLURM's NodeAddr (as the hub asks it), else what the
        node's own name resolves to there."""
        asked = self.run_as(self.hub_user, ["scontrol", "show", "node", node, "-o"])
        return (parse_node_address(asked.stdout) if asked.returncode == 0 else "") or resolved

    def port_words(self) -> str:
        """The ports JupyterLab listens on, for a firewall's rule."""
        low_high = self.site.singleuser.port_range
        return (
            f"ports {low_high[0]}-{low_high[1]} (singleuser.port_range)"
            if low_high
            else ("any port (or set singleuser.port_range and open that range)")
        )

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
                f"let the hub's machine reach {node} at SLURM's NodeAddr ({address}: the proxy's route) on "
                + self.port_words(),
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
        if code == str(PROBE_NO_PORT):
            low, high = self.site.singleuser.port_range
            return Check(
                f"{name}: a port on {node}",
                False,
                f"job {job} on {node} found no free port in {low}-{high} (singleuser.port_range)",
                "widen singleuser.port_range: each JupyterLab and probe on a node needs one",
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


def addresses_of(host: str) -> list[str]:
    """The addresses ``host`` resolves to on this machine, sorted ([] when none)."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):
        return []


def sudo_version() -> tuple[int, ...]:
    """sudo's version ("Sudo version 1.9.13p3": (1, 9, 13)); () when it cannot be read."""
    try:
        said = subprocess.run(["sudo", "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    words = said.split()
    found = words[2].split("p")[0].split(".") if words[:2] == ["Sudo", "version"] and len(words) > 2 else []
    return tuple(int(n) for n in found if n.isdigit())


def first_member(groups: Iterable[str]) -> str:
    """A member of one of these groups (by name, first of each group), "" when none has one."""
    for group in sorted(groups):
        try:
            members = sorted(grp.getgrnam(group).gr_mem)
        except KeyError:
            continue
        if members:
            return members[0]
    return ""


def sudo_allows(hub_user: str, whom: str, member: str, argv: list[str]) -> bool:
    """Whether sudo lets ``hub_user`` run ``argv`` (as root, or as ``member`` of the users' groups:
    True when there is no member to ask about), asked of sudo itself (``sudo -l``), nothing run."""
    runas = "root" if whom == "root" else member
    if not runas:
        return True
    asked = ["sudo", "-n", "-l", "-U", hub_user, "-u", runas, *argv]
    return subprocess.run(asked, capture_output=True, timeout=30).returncode == 0


def root_alone_problems(command: Path) -> list[str]:
    """What about a command a sudo rule allows, and its interpreter (its ``#!`` line), anyone
    but root could change: the file or a folder above it, links resolved."""
    paths = [command]
    try:
        with command.open("rb") as f:
            first = f.readline(512)
    except OSError as e:
        return [f"{command}: {e.strerror}"]
    if first.startswith(b"#!") and first[2:].split():
        paths.append(Path(first[2:].split()[0].decode(errors="replace")))
    problems = []
    for path in paths:
        real = path.resolve()
        for item in (real, *real.parents):
            try:
                info = item.stat()
            except OSError as e:
                problems.append(f"{item}: {e.strerror}")
                break
            if info.st_uid != 0 or info.st_mode & 0o022:
                problems.append(f"{item} (of {path}) may be changed by uid {info.st_uid} or its group/others")
                break
    return problems


def blocked_folders(path: Path, user: str) -> list[str]:
    """The folders above ``path`` that ``user`` may not pass (no x for them), from / down."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return []
    groups = set(os.getgrouplist(user, entry.pw_gid))
    blocked = []
    for folder in reversed(path.parents):
        try:
            info = folder.stat()
        except OSError:
            continue
        bit = 0o100 if info.st_uid == entry.pw_uid else 0o010 if info.st_gid in groups else 0o001
        if not info.st_mode & bit:
            blocked.append(str(folder))
    return blocked


def unit_grants(capability: str, unit: Path = UNIT) -> bool:
    """Whether the systemd unit (the hub's), or a drop-in of the site's, gives it ``capability``."""
    for path in [unit, *sorted(Path(f"{unit}.d").glob("*.conf"))]:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        if any(line.startswith("AmbientCapabilities=") and capability in line for line in lines):
            return True
    return False


def group_members(group: str) -> list[str]:
    try:
        return list(grp.getgrnam(group).gr_mem)
    except KeyError:
        return []


def user_entry(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def open_homes(entries: Iterable[pwd.struct_passwd]) -> list[str]:
    """'NAME (HOME MODE: who)' for each home that others than its user may read or enter: any
    other user (o+r, o+x), or a group that is not the user's own (g+r, g+x)."""
    found = []
    for entry in entries:
        try:
            info = os.stat(entry.pw_dir)
        except OSError:
            continue
        mode = info.st_mode & 0o777
        who = []
        if mode & 0o050 and shared_group(info.st_gid, entry.pw_name):
            who.append(f"group {group_name(info.st_gid)}")
        if mode & 0o005:
            who.append("every user")
        if who:
            found.append(f"{entry.pw_name} ({entry.pw_dir} {mode:o}: {' and '.join(who)})")
    return found


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def shared_group(gid: int, user: str) -> bool:
    """Whether group ``gid`` is more than ``user``'s own (a private group of that name, no other member)."""
    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return True
    return group.gr_name != user or bool(set(group.gr_mem) - {user})


def table(checks: list[Check]) -> str:
    """The checks as a table: check, result, and what to do where one failed."""
    mark = {True: "ok", False: "FAILED", None: "-"}
    rows = [("check", "result", "detail / fix")]
    for check in checks:
        text = check.detail + (f" -> fix: {check.fix}" if check.ok is False and check.fix else "")
        rows.append((check.name, mark[check.ok], text))
    first = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{first}}  {b:<6}  {c}" for a, b, c in rows)
