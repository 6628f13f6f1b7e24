"""``aifactory-site install``: what root sets up on the hub's machine once the package is in
the hub's venv (the wheel is the hub's software install; the users' stack, the wheel with its
``lab`` extra, is a venv of its own, the site file's ``singleuser.venv``), and again after each
upgrade of either. Each step is idempotent and says what it changed:

* the groups (whose members may sign in; the hub's admins and staff, whom the hub runs nothing
  as) and the hub's system account, in no ``shadow`` group;
* the password helper, root's, that the hub asks through sudo (``root/check_password.py``), and
  the helper that extends a running session (``root/extend_job.py``), with the site file's path,
  and the wrappers of ``aifactory-env list --json`` (``lab/envs.py``) and of scancel
  (``root/cancel_job.py``) that the hub runs as a user;
* the sudo rules, with no pattern (any sudo reads them) and SLURM's commands by the paths found
  now (``slurm.bin_dir``), checked with ``visudo -c`` before they are installed;
* the hub's state folder and the gallery, the hub's; users' Dask config, root's;
* the login shells' Dask settings (``/etc/profile.d/aifactory-dask.sh``);
* the site kernel's package lock, and no stock "Python 3" kernel, in the users' venv;
* the systemd units of the hub and of its proxy, which runs on its own with a token it shares
  with the hub (checked with ``systemd-analyze verify``), the hub's
  log folder where systemd is not PID 1 (root's, group ``adm``, 0750, its files 0640 at most) and
  log rotation for the audit log and that log (the rotated copies keep 0640);
* the SLURM epilog that removes a job's private folder when the job ends, even one SLURM killed
  (``LIBEXEC/aifactory-epilog``, for the site's slurm.conf: ``Epilog=``).

Its files come from the package's own data (``share/aifactory/site`` in the hub's venv, the one
this command runs from), and root's helpers run that venv's Python: root's, outside the users'
stack, which whoever installs the users' software may write. Root writes only into folders that
root owns; the hub's folders are made, never followed.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aifactory_workbench.hub.site import SiteConfig
from aifactory_workbench.job import JOB_ENVIRONMENT
from aifactory_workbench.root.dask_config import install_dask_config
from aifactory_workbench.root.extend_job import LEDGER_DIR
from aifactory_workbench.root.proxy_token import proxy_token
from aifactory_workbench.slurm.client import (
    CANCEL_HELPER,
    ENV_LIST,
    EXTEND_HELPER,
    PASSWORD_HELPER,
    SECURE_PATH,
    slurm_command,
)

#: Where the unit goes, and its name (journalctl -u aifactory-hub).
UNIT = Path("/etc/systemd/system/aifactory-hub.service")
#: The proxy's own unit, where the site runs it on its own (hub.proxy_token_file).
PROXY_UNIT = Path("/etc/systemd/system/aifactory-proxy.service")
SUDOERS = Path("/etc/sudoers.d/aifactory-hub")
PROFILE = Path("/etc/profile.d/aifactory-dask.sh")
LOGROTATE = Path("/etc/logrotate.d/aifactory-workbench")
#: The hub's log where systemd is not PID 1 (``aifactory-site start-hub --log``); under systemd
#: the hub's output is the journal's. Root's folder, readable by group ``adm`` only.
LOG_DIR = Path("/var/log/aifactory")
LOG_GROUP = "adm"
#: The SLURM epilog (root's, in LIBEXEC), which the site's slurm.conf names: ``Epilog=``.
EPILOG = "aifactory-epilog"
#: Root's commands, linked onto root's PATH: the operators' and instructors' guides name them
#: bare (``aifactory-workshop create FILE``), and they live in the hub's venv.
ROOT_COMMANDS = ("aifactory-site", "aifactory-workshop")
ROOT_BIN = Path("/usr/local/sbin")
#: The PATH systemd gives a service.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Accounts:
    """The Unix names the install makes and the rules name."""

    hub_user: str = "aifactory-hub"
    hub_home: str = "/var/lib/aifactory"
    users_group: str = "aifactory-users"
    admins_group: str = "aifactory-admins"


def venv() -> Path:
    """The hub's venv: the one this command runs from, root's (its Python runs root's helpers)."""
    return Path(sys.prefix)


def users_venv(site: SiteConfig) -> Path:
    """The users' stack, which jobs run (singleuser.venv): where their kernel, its lock and their
    Dask config are, never root's helpers."""
    return Path(site.singleuser.venv)


def templates() -> Path:
    return venv() / "share" / "aifactory" / "site"


def render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    left = re.search(r"@[A-Z_]+@", template)
    if left:
        raise ValueError(f"{left.group()} has no value")
    return template


def values(site: SiteConfig, accounts: Accounts) -> dict[str, str]:
    return {
        "HUB_USER": accounts.hub_user,
        "HUB_HOME": accounts.hub_home,
        "USERS_GROUP": accounts.users_group,
        "ADMINS_GROUP": accounts.admins_group,
        "LIBEXEC": str(venv().parent / "libexec"),
        "JOB_ENVIRONMENT": " ".join(JOB_ENVIRONMENT),
        "SECURE_PATH": SECURE_PATH,
        "SBATCH": slurm_command("sbatch", site.slurm.bin_dir),
        "VENV": str(venv()),
        "USERS_VENV": str(users_venv(site)),
        "SITE": str(Path(site.source).resolve()),
        "STATE_DIR": site.hub.state_dir,
        "LOG_DIR": str(LOG_DIR),
        "LOG_GROUP": LOG_GROUP,
    }


def site_file_of(site: SiteConfig) -> str:
    """The site file's absolute path ("" when the site runs on the defaults)."""
    return "" if site.source == "defaults" else str(Path(site.source).resolve())


def extend_helper_text(site: SiteConfig, ledger_dir: str = str(LEDGER_DIR)) -> str:
    """The wrapper of :mod:`aifactory_workbench.root.extend_job`, which names the site file and
    the ledger's folder (root's): the helper never takes them from its caller or environment."""
    return (
        f"#!{venv() / 'bin' / 'python'} -I\n"
        "# For the hub, through sudo: more time for a running session (root/extend_job.py)\n"
        "from aifactory_workbench.root.extend_job import main\n\n"
        f"raise SystemExit(main({site_file_of(site)!r}, {ledger_dir!r}))\n"
    )


def write_root_file(path: Path, text: str, mode: int, check: Callable[[Path], str] | None = None) -> bool:
    """Write ``text`` to ``path`` (in a folder root owns) through a new file renamed over it,
    after ``check`` of the new file says '' ; False when it already held exactly that."""
    if path.is_file() and not path.is_symlink() and path.read_text() == text and (path.stat().st_mode & 0o777) == mode:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as f:
            f.write(text)
        os.chmod(temporary, mode)
        problem = check(Path(temporary)) if check else ""
        if problem:
            raise RuntimeError(f"{path}: {problem}")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return True


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def visudo(path: Path) -> str:
    # sudo's own, in sbin, which a user's PATH may lack (the unit tests run as any user).
    done = run([shutil.which("visudo", path="/usr/sbin:/sbin:/usr/bin:/bin") or "visudo", "-cqf", str(path)])
    return "" if done.returncode == 0 else (done.stderr or done.stdout).strip()


def systemd_verify(path: Path) -> str:
    """``systemd-analyze verify`` of a unit file (named as the unit it will be)."""
    with tempfile.TemporaryDirectory() as folder:
        unit = Path(folder) / UNIT.name
        unit.write_text(path.read_text())
        done = run(["systemd-analyze", "verify", str(unit)])
    said = (done.stderr + done.stdout).strip()
    return "" if done.returncode == 0 and not said else said or f"exited {done.returncode}"


def shell_syntax(path: Path) -> str:
    done = run(["bash", "-n", str(path)])
    return "" if done.returncode == 0 else done.stderr.strip()


def log_group() -> int:
    """The group that may read the hub's log: ``adm`` (Debian's readers of logs), else root's."""
    try:
        return grp.getgrnam(LOG_GROUP).gr_gid
    except KeyError:
        return 0


def private_log(descriptor: int) -> bool:
    """Make an open log file root's, of the log group, 0640 at most; True when it changed."""
    info = os.fstat(descriptor)
    mode = info.st_mode & 0o640
    if (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (0, log_group(), mode):
        return False
    os.fchown(descriptor, 0, log_group())
    os.fchmod(descriptor, mode)
    return True


def log_folder(folder: Path) -> bool:
    """The hub's log folder, root's (group ``adm``, 0750), and every file in it 0640 at most: an
    older install left a 0644 log in a 0755 folder (every user's sign-ins, addresses, jobs).
    Only root writes there; still, no link is followed."""
    changed = not folder.is_dir()
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        info = os.fstat(descriptor)
        if (info.st_uid, info.st_gid, info.st_mode & 0o7777) != (0, log_group(), 0o750):
            os.fchown(descriptor, 0, log_group())
            os.fchmod(descriptor, 0o750)
            changed = True
        for name in os.listdir(descriptor):
            try:
                file = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=descriptor)
            except OSError:
                continue  # a link or what cannot be opened: root's folder holds none of its own
            try:
                if stat.S_ISREG(os.fstat(file).st_mode):
                    changed = private_log(file) or changed
            finally:
                os.close(file)
    finally:
        os.close(descriptor)
    return changed


def root_commands(folder: Path) -> bool:
    """A link in ``folder`` (root's) to each of :data:`ROOT_COMMANDS` in this venv; True when one
    changed. A file there that is not such a link is another's: refused, never replaced."""
    changed = False
    for name in ROOT_COMMANDS:
        link, target = folder / name, venv() / "bin" / name
        if link.is_symlink() and os.readlink(link) == str(target):
            continue
        if link.exists() and not link.is_symlink():
            raise RuntimeError(f"{link} is not this install's link: move it away, then install again")
        new = folder / f".{name}.new"
        new.unlink(missing_ok=True)
        new.symlink_to(target)
        os.replace(new, link)
        changed = True
    return changed


def owned_folder(path: Path, owner: str, mode: int) -> bool:
    """Make ``path`` a folder of ``owner`` with ``mode``. Its parent may be the owner's, who could
    swap the folder for a link meanwhile: it is changed through a descriptor opened with
    O_NOFOLLOW, so root changes that folder or nothing."""
    changed = not path.is_dir()
    if changed:
        path.mkdir(mode=mode, parents=True)
    entry = pwd.getpwnam(owner)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        raise RuntimeError(f"{path} is not a folder ({e.strerror}): remove it, then install again") from None
    try:
        info = os.fstat(descriptor)
        if (info.st_uid, info.st_gid, info.st_mode & 0o777) != (entry.pw_uid, entry.pw_gid, mode):
            os.fchown(descriptor, entry.pw_uid, entry.pw_gid)
            os.fchmod(descriptor, mode)
            changed = True
    finally:
        os.close(descriptor)
    return changed


class Installer:
    def __init__(self, site: SiteConfig, accounts: Accounts, systemd_check: bool = True) -> None:
        self.site = site
        self.accounts = accounts
        self.values = values(site, accounts)
        self.systemd_check = systemd_check

    def template(self, name: str) -> str:
        return render((templates() / name).read_text(), self.values)

    def steps(self) -> Iterator[tuple[str, bool]]:
        """(what, whether it changed anything), in order."""
        a = self.accounts
        for group in (a.users_group, a.admins_group):
            yield f"group {group}", self.group(group)
        yield f"account {a.hub_user} (no shadow group)", self.hub_account()
        yield "the password helper", self.password_helper()
        yield "the session extension helper", self.extend_helper()
        yield "the environments' listing", self.env_list_helper()
        yield "the cancel helper", self.cancel_helper()
        yield f"sudo rules {SUDOERS} (visudo -c)", write_root_file(SUDOERS, self.template("sudoers.in"), 0o440, visudo)
        yield f"state folder {self.site.hub.state_dir}", self.state_folders()
        gallery = Path(self.site.gallery.dir)
        yield f"gallery {gallery}", owned_folder(gallery, a.hub_user, 0o755)
        yield "users' Dask config", self.dask_config()
        yield (
            f"login shells' Dask settings {PROFILE}",
            write_root_file(PROFILE, self.template("aifactory-dask.sh.in"), 0o644),
        )
        yield "the site kernel's package lock", self.kernel_lock()
        stock = users_venv(self.site) / "share" / "jupyter" / "kernels" / "python3"
        yield "no stock Python 3 kernel", self.remove_stock_kernel(stock)
        check = systemd_verify if self.systemd_check else None
        yield (
            f"systemd unit {UNIT} (systemd-analyze verify)",
            write_root_file(UNIT, self.template("aifactory-hub.service.in"), 0o644, check),
        )
        yield f"the proxy's unit {PROXY_UNIT} and its token (hub.proxy_token_file)", self.proxy_service(check)
        yield f"the hub's log folder {LOG_DIR} (root:{LOG_GROUP} 0750, files 0640)", log_folder(LOG_DIR)
        yield f"log rotation {LOGROTATE}", write_root_file(LOGROTATE, self.template("aifactory-workbench.in"), 0o644)
        epilog = Path(self.values["LIBEXEC"]) / EPILOG
        yield f"SLURM epilog {epilog} (slurm.conf: Epilog={epilog})", self.epilog(epilog)
        yield f"root's commands in {ROOT_BIN} ({', '.join(ROOT_COMMANDS)})", root_commands(ROOT_BIN)

    def proxy_service(self, check: Callable[[Path], str] | None) -> bool:
        """The proxy's unit and the token it shares with the hub (root/proxy_token.py), where the
        site runs the proxy on its own; nothing where the hub starts it as its child."""
        if not self.site.hub.proxy_on_its_own:
            return False
        token = proxy_token(Path(self.site.hub.proxy_token_file), self.accounts.hub_user)
        return write_root_file(PROXY_UNIT, self.template("aifactory-proxy.service.in"), 0o644, check) or token

    def group(self, name: str) -> bool:
        try:
            grp.getgrnam(name)
            return False
        except KeyError:
            checked(run(["groupadd", "--system", name]))
            return True

    def hub_account(self) -> bool:
        a = self.accounts
        changed = False
        try:
            pwd.getpwnam(a.hub_user)
        except KeyError:
            checked(run(["useradd", "--system", "--home-dir", a.hub_home, "--shell", "/usr/sbin/nologin", a.hub_user]))
            changed = True
        try:
            if a.hub_user in grp.getgrnam("shadow").gr_mem:
                checked(run(["gpasswd", "-d", a.hub_user, "shadow"]))
                changed = True
        except KeyError:
            pass
        return changed

    def password_helper(self) -> bool:
        groups = [self.accounts.users_group, self.accounts.admins_group]
        what = "For the hub, through sudo: is this password right? (root/check_password.py)"
        call = f"from aifactory_workbench.root.check_password import main\n\nraise SystemExit(main({groups!r}))"
        return self.libexec(PASSWORD_HELPER.name, what, call)

    def env_list_helper(self) -> bool:
        what = "For the hub, through sudo as a user: aifactory-env list (lab/envs.py), the only command"
        call = (
            "import os\nimport pwd\nimport sys\n\nfrom aifactory_workbench.lab.envs import main\n\n"
            "# The home of whoever it runs as, whatever sudo's settings left in HOME.\n"
            "os.environ['HOME'] = pwd.getpwuid(os.getuid()).pw_dir\n"
            "raise SystemExit(main(['list', *sys.argv[1:]]))"
        )
        return self.libexec(ENV_LIST.name, what, call)

    def cancel_helper(self) -> bool:
        scancel = slurm_command("scancel", self.site.slurm.bin_dir)
        what = "For the hub, through sudo as a user: scancel of what the hub cancels (root/cancel_job.py)"
        call = f"from aifactory_workbench.root.cancel_job import main\n\nraise SystemExit(main({scancel!r}))"
        return self.libexec(CANCEL_HELPER.name, what, call)

    def libexec(self, name: str, what: str, call: str) -> bool:
        """A root-owned wrapper in LIBEXEC whose Python runs isolated (-I): no user's site-packages,
        .pth or PYTHON* variable is read, whoever it runs as."""
        text = f"#!{venv() / 'bin' / 'python'} -I\n# {what}\n{call}\n"
        return write_root_file(Path(self.values["LIBEXEC"]) / name, text, 0o755)

    def epilog(self, path: Path) -> bool:
        """Root's shell script, which slurmd runs as root on each node of a job that ended."""
        return write_root_file(path, self.template("aifactory-epilog.in"), 0o755, shell_syntax)

    def extend_helper(self) -> bool:
        path = Path(self.values["LIBEXEC"]) / EXTEND_HELPER
        return write_root_file(path, extend_helper_text(self.site), 0o755)

    def state_folders(self) -> bool:
        home = owned_folder(Path(self.accounts.hub_home), self.accounts.hub_user, 0o750)
        state = Path(self.site.hub.state_dir)
        return owned_folder(state, self.accounts.hub_user, 0o700) or home

    def dask_config(self) -> bool:
        return install_dask_config(self.site)[1]

    def kernel_lock(self) -> bool:
        """The users' venv's packages, as pip lists them (the site kernel's lock)."""
        users = users_venv(self.site)
        frozen = checked(
            run([str(users / "bin" / "python"), "-m", "pip", "freeze", "--exclude", "aifactory-workbench"])
        )
        return write_root_file(users / "share" / "aifactory" / "kernel.lock", frozen.stdout, 0o644)

    @staticmethod
    def remove_stock_kernel(stock: Path) -> bool:
        if not stock.exists():
            return False
        shutil.rmtree(stock)
        return True


def unit_service(text: str) -> dict[str, list[str]]:
    """The unit's [Service] settings: each key's values, in order (Environment may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def start_hub_without_systemd(unit: Path, log: Path, pid_file: Path) -> int:
    """What systemd would do with the unit, where it is not PID 1 (the mini cluster): its
    ExecStartPre, then its ExecStart in the background, as its User, in its WorkingDirectory,
    with its Environment; their output appended to ``log`` (in a folder of root's), as the
    journal would keep it, and readable as the journal is: by root and group ``adm`` only. The
    hub's pid goes to ``pid_file``; a failed ExecStartPre's exit status is returned, and nothing
    is started."""
    service = unit_service(unit.read_text())
    user = service["User"][0]
    # As systemd gives it: its own PATH and the unit's Environment, nothing of root's.
    environment = {"PATH": SYSTEMD_PATH, **dict(e.partition("=")[::2] for e in service.get("Environment", []))}
    as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    cwd = service.get("WorkingDirectory", ["/"])[0]
    # The log is no one else's (0640, root's, group adm), an older install's 0644 one included.
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    private_log(descriptor)
    with os.fdopen(descriptor, "ab") as out:
        for line in service.get("ExecStartPre", []):
            done = subprocess.run([*as_user, *shlex.split(line)], cwd=cwd, env=environment, stdout=out, stderr=out)
            if done.returncode != 0:
                return done.returncode
        hub = subprocess.Popen(
            [*as_user, *shlex.split(service["ExecStart"][0])],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{hub.pid}\n")
    return 0


def checked(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(done.args)}: {(done.stderr or done.stdout).strip()}")
    return done
