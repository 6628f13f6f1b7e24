"""A workshop's users and accounts, made and removed by root: the seats' Unix users (each with a
password and a home of its own), what a workshop made (:class:`Made`, so that it takes over
nothing), the processes of a seat, and running commands as a given user (:func:`as_user`)."""

from __future__ import annotations

import contextlib
import csv
import grp
import io
import json
import os
import pwd
import secrets
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aifactory_workbench.hub.workshop_file import WorkshopError, WorkshopFile
from aifactory_workbench.slurm.admin import SlurmAdmin
from aifactory_workbench.spawners.seats import seat_name


def run(*argv: str, stdin: str | None = None) -> str:
    """A system command (user accounts, git, tar) as an argument list; its error is the message."""
    result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise WorkshopError(f"{' '.join(argv[:3])}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def as_user(name: str) -> dict[str, Any]:
    """subprocess's arguments that run a command as Unix user ``name`` (its groups, umask 077,
    a plain environment, from /): what it reads and writes, it does with its own rights, so
    a link it planted leads nowhere it could not go itself."""
    info = pwd.getpwnam(name)
    env = {"PATH": "/usr/bin:/bin", "HOME": info.pw_dir, "USER": name, "LOGNAME": name, "LC_ALL": "C.UTF-8"}
    return {
        "user": info.pw_uid,
        "group": info.pw_gid,
        "extra_groups": os.getgrouplist(name, info.pw_gid),
        "umask": 0o077,
        "env": env,
        "cwd": "/",
    }


def processes_of(uid: int) -> list[int]:
    """The live processes (not zombies) that run with ``uid``, real or effective."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
        except (OSError, ValueError):
            continue  # a process that just ended
        uids = [int(x) for x in status.get("Uid", "").split()[:2]]
        if entry.name.isdigit() and uid in uids and not status.get("State", "").strip().startswith("Z"):
            found.append(int(entry.name))
    return found


def kill_processes_of(user: str) -> None:
    """Every process of ``user`` on this machine, killed until none is left (a process outside
    SLURM, which scancel does not reach, could otherwise swap a folder for a link while its
    home is archived; the mini cluster's nodes share this machine's process table)."""
    uid = pwd.getpwnam(user).pw_uid
    for _ in range(50):
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise WorkshopError(f"the processes of {user} do not end: {', '.join(map(str, processes_of(uid)))}")


@dataclass
class Made:
    """What a workshop made (``made.json`` in its state folder, root's), recorded as it is made:
    ``end`` removes these and nothing else, and a second ``create`` may reuse them."""

    path: Path
    users: list[str] = field(default_factory=list)
    account: str = ""
    reservation: str = ""

    @classmethod
    def load(cls, path: Path) -> Made:
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, **{k: data[k] for k in ("users", "account", "reservation") if k in data})

    def save(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.with_suffix(".tmp").write_text(json.dumps(data))
        os.replace(self.path.with_suffix(".tmp"), self.path)

    @property
    def anything(self) -> bool:
        return bool(self.users or self.account or self.reservation)


def refuse_what_exists(spec: WorkshopFile, made: Made, account: str, slurm: SlurmAdmin) -> None:
    """A workshop takes over nothing it did not make: not an account (whose QoS it would set
    and whose members' associations end would delete), a reservation (remade), a user
    (given a new password, then removed with its home), nor a seat's group, home or SLURM
    user. Checked before anything is made."""
    theirs = []
    if not spec.account and account != made.account and slurm.account_exists(account):
        theirs.append(f"SLURM account {account!r} (account: {account} runs the workshop in it)")
    if spec.name != made.reservation and slurm.reservation(spec.name) is not None:
        theirs.append(f"reservation {spec.name!r}")
    homes = Path(dict(line.split("=", 1) for line in run("useradd", "-D").split()).get("HOME", "/home"))
    slurm_users = slurm.users()
    for seat in (seat_name(spec.name, n) for n in range(1, spec.seats + 1)):
        if seat in made.users:
            continue
        if user_exists(seat):
            theirs.append(f"user {seat!r}")
        elif group_exists(seat):
            theirs.append(f"group {seat!r}")
        elif (homes / seat).exists():
            theirs.append(f"home folder {homes / seat}")
        elif seat in slurm_users:
            theirs.append(f"SLURM user {seat!r}")
    if theirs:
        raise WorkshopError(
            f"workshop {spec.name} would take over what exists and was not made by this workshop: "
            f"{'; '.join(theirs)}. Name the workshop otherwise; nothing was made."
        )


#: What a seat's password is made of: read off a printed slip and typed by a student, so no two
#: characters a font may show alike (l, 1, I; 0, O) and no punctuation; lower case alone.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def seat_password() -> str:
    """A new seat's password: 15 characters of :data:`PASSWORD_ALPHABET` (74 bits), in three
    groups of five joined by '-', as a slip shows it."""
    groups = ("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(5)) for _ in range(3))
    return "-".join(groups)


def make_seats(spec: WorkshopFile, sheet: Path, made: Made, group: str) -> dict[str, str]:
    """Seat users in the users' group ``group`` ("" for none), each with a random password (kept on a second create)
    and a home of its own (0700: seats are strangers to each other)."""
    known = {}
    if sheet.exists():
        known = {row["user"]: row["password"] for row in csv.DictReader(io.StringIO(sheet.read_text()))}
    passwords = {}
    for number in range(1, spec.seats + 1):
        seat = seat_name(spec.name, number)
        if not user_exists(seat):
            argv = ["useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash"]
            run(*argv, "-c", f"workshop {spec.name} seat {number}", *(["-G", group] if group else []), seat)
            made.save(users=sorted({*made.users, seat}))
            known.pop(seat, None)
        passwords[seat] = known.get(seat) or seat_password()
        run("chpasswd", stdin=f"{seat}:{passwords[seat]}\n")
    return passwords
