"""``aifactory-workshop``: a workshop in one file and one command (run as root on the hub's
machine).

    aifactory-workshop create FILE   seats, SLURM account and reservation, materials, seat sheet
    aifactory-workshop status NAME   each seat: running or not, since when, on which node
    aifactory-workshop end NAME      stop and cancel everything, archive the seats' homes for the
                                     instructors, remove seats, account and reservation

``create`` twice updates what changed (passwords are kept); ``end`` twice is harmless.  A
workshop takes over nothing: ``create`` refuses a name whose account, reservation or seat
users exist and were not made by it, and ``end`` removes only what it made (:class:`Made`).
Root never follows a user's link: materials are read, seats' homes archived and instructors'
copies written by those users themselves (:func:`as_user`).  The workshop file (every key and
its rule: :data:`WORKSHOP_KEYS`)::

    name: climate101                 # seats are climate101-01, climate101-02, ...
    title: Climate data with Dask
    start: now                       # or 2026-11-28T09:00
    end: 2026-11-28T17:00
    seats: 20
    instructors: [instructor]        # existing users: they reach their seats' servers
    preset: workshop                 # the site preset that sizes each seat (form.presets)
    materials: /srv/courses/climate  # a git repository or a folder (optional)
    account: ""                      # an existing SLURM account; "" = a new one, named after the workshop
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import grp
import html
import io
import json
import os
import posixpath
import pwd
import secrets
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from aifactory_workbench.hub.site import SiteConfig, SiteConfigError, load_site_config, read_yaml, unknown_key
from aifactory_workbench.slurm.admin import SlurmAdmin
from aifactory_workbench.slurm.parsers import SlurmError
from aifactory_workbench.slurm.values import SLURM_NAME, UNIX_USER, Rule, is_int
from aifactory_workbench.spawners.seats import (
    FORGET_EVERY,
    WORKSHOP_NAME,
    Ended,
    Materials,
    Workshop,
    remove_workshop,
    seat_name,
    write_ended,
    write_workshop,
)

SLURM_TIME = "%Y-%m-%dT%H:%M:%S"
#: A repository of materials, as a bundle on stdout (run as the instructor who reads it).
MIRROR = ('d=$(mktemp -d) && git clone -q --bare -- "$1" "$d/m" >&2 && git -C "$d/m" bundle create - HEAD; '
          'rc=$?; rm -rf "$d"; exit $rc')  # fmt: skip


class WorkshopError(ValueError):
    """The workshop file or the machine is not as it must be; the message says what to change."""


def _is_time() -> Rule:
    def ok(value: Any) -> bool:
        if value == "now" or isinstance(value, datetime.datetime):
            return True
        try:
            datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return False
        return True

    return Rule(ok, "now, or a date and time such as 2026-11-28T09:00")


WORKSHOP_KEYS: dict[str, tuple[Rule, Any]] = {
    "name": (Rule(lambda v: isinstance(v, str) and WORKSHOP_NAME.fullmatch(v) is not None,
                  "2 to 16 lower-case letters and digits, starting with a letter"), None),
    "title": (Rule(lambda v: isinstance(v, str) and 0 < len(v) <= 80 and "<" not in v, "text of 1 to 80 characters"),
              None),
    "start": (_is_time(), "now"),
    "end": (_is_time(), None),
    "seats": (is_int(1, 200), None),
    "instructors": (Rule(lambda v: isinstance(v, list) and v and all(isinstance(u, str) and UNIX_USER.fullmatch(u)
                                                                      for u in v), "a list of Unix user names"), None),
    "preset": (Rule(lambda v: isinstance(v, str) and v != "", "the name of a preset in the site's form.presets"),
               "workshop"),
    "materials": (Rule(lambda v: isinstance(v, str), '"" or a git repository (path or URL) or a folder'), ""),
    "account": (Rule(lambda v: v == "" or (isinstance(v, str) and SLURM_NAME.fullmatch(v) is not None),
                     '"" or an existing SLURM account'), ""),
}  # fmt: skip


@dataclass(frozen=True)
class WorkshopFile:
    name: str
    title: str
    start: datetime.datetime
    end: datetime.datetime
    seats: int
    instructors: tuple[str, ...]
    preset: dict[str, Any]
    materials: str
    account: str  # "" = a new account named after the workshop


def _when(value: Any, now: datetime.datetime) -> datetime.datetime:
    if value == "now":
        return now
    moment = value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=None, second=0, microsecond=0)


def read_workshop_file(path: Path, site: SiteConfig, user_exists: Callable[[str], bool]) -> WorkshopFile:
    """The workshop file, checked whole: every problem named with its key, as the site file's are."""
    data = read_yaml(path, "workshop file", WorkshopError)
    problems = [unknown_key(str(key), list(WORKSHOP_KEYS)) for key in data if key not in WORKSHOP_KEYS]
    values = {}
    for key, (rule, default) in WORKSHOP_KEYS.items():
        value = data.get(key, default)
        if value is None:
            problems.append(f"key '{key}': missing; accepted: {rule.accepted}")
        elif not rule.check(value):
            problems.append(f"key '{key}': value {value!r} is not accepted; accepted: {rule.accepted}")
        values[key] = value
    if not problems:
        now = datetime.datetime.now().replace(second=0, microsecond=0)
        values["start"], values["end"] = _when(values["start"], now), _when(values["end"], now)
        if values["end"] <= max(values["start"], now):
            problems.append(f"key 'end': value {values['end']:%Y-%m-%dT%H:%M} is not accepted; accepted: a time "
                            "after the start and after now")  # fmt: skip
        presets = {p["name"]: p for p in site.form.presets}
        if values["preset"] not in presets:
            problems.append(f"key 'preset': value {values['preset']!r} is not accepted; accepted: one of "
                            f"{', '.join(presets)} (the site's form.presets)")  # fmt: skip
        else:
            values["preset"] = presets[values["preset"]]
        problems += [f"key 'instructors': {u!r} is not a user of this machine" for u in values["instructors"]
                     if not user_exists(u)]  # fmt: skip
    if problems:
        raise WorkshopError(f"workshop file {path} is not valid:\n" + "\n".join(f"  - {p}" for p in problems))
    values["instructors"] = tuple(values["instructors"])
    return WorkshopFile(**values)


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
    return {"user": info.pw_uid, "group": info.pw_gid, "extra_groups": os.getgrouplist(name, info.pw_gid),
            "umask": 0o077, "env": env, "cwd": "/"}  # fmt: skip


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


class Workshops:
    """What ``aifactory-workshop`` does, on this machine, for the site ``site``."""

    def __init__(self, site: SiteConfig, slurm: SlurmAdmin | None = None, out: Callable[[str], None] = print) -> None:
        self.site = site
        self.slurm = slurm or SlurmAdmin()
        self.out = out
        self.registry = Path(site.workshops.registry)
        self.state = Path(site.workshops.state_dir)
        self.materials_dir = Path(site.workshops.materials_dir)

    # -- create ----------------------------------------------------------------------------
    def create(self, path: Path) -> Workshop:
        spec = read_workshop_file(path, self.site, user_exists)
        state = self.state / spec.name
        made = Made.load(state / "made.json")
        account = spec.account or spec.name
        if spec.account and not self.slurm.account_exists(account):
            raise WorkshopError(f"key 'account': SLURM account {account!r} does not exist; \"\" makes a new one")
        self._refuse_what_exists(spec, made, account)
        state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        materials = self._materials(spec) if spec.materials else None
        if not spec.account:
            self.slurm.ensure_account(account, f"workshop {spec.title}")
            made.save(account=account)
        preset = spec.preset
        cores = spec.seats * int(preset.get("cpus", self.site.slurm.cpus))
        partition = preset.get("partition", self.site.slurm.partition)
        self.slurm.ensure_reservation(spec.name, start=f"{spec.start:{SLURM_TIME}}", end=f"{spec.end:{SLURM_TIME}}",
                                      account=account, partition=partition, cores=cores)  # fmt: skip
        made.save(reservation=spec.name)
        passwords = self._seats(spec, state / "seats.csv", made)
        seats = tuple(passwords)
        for seat in seats:
            self.slurm.ensure_user(seat, account)
        hours = (spec.end - spec.start).total_seconds() / 3600
        workshop = Workshop(
            name=spec.name,
            title=spec.title,
            start=f"{spec.start:{SLURM_TIME}}",
            end=f"{spec.end:{SLURM_TIME}}",
            seats=seats,
            instructors=spec.instructors,
            account=account,
            reservation=spec.name,
            preset={
                **{k: v for k, v in preset.items() if k not in ("name", "title", "description")},
                "name": f"workshop-{spec.name}",
                "title": spec.title[:80],
                "description": (
                    f"Workshop seat: {cores} cores reserved for {spec.seats} seats until "
                    f"{spec.end:%H:%M on %d %b}, {cores * hours:.0f} core-hours on account {account}"
                )[:80],
                "partition": partition,
                "account": account,
                "reservation": spec.name,
            },  # fmt: skip
            materials=materials,
        )
        write_workshop(self.registry, workshop)
        self._sheet(workshop, passwords, state)
        self._tell_hub("POST", workshop.name, later="it reads the workshop at its next start")
        self.out(f"workshop {workshop.name}: {len(seats)} seats, reservation {workshop.reservation} "
                 f"({cores} cores of {partition}, {workshop.start} to {workshop.end}), account {account}")  # fmt: skip
        self.out(f"seat sheet: {state / 'seats.csv'} and {state / 'seats.html'} (root only: they hold passwords)")
        return workshop

    def _refuse_what_exists(self, spec: WorkshopFile, made: Made, account: str) -> None:
        """A workshop takes over nothing it did not make: not an account (whose QoS it would set
        and whose members' associations end would delete), a reservation (remade), a user
        (given a new password, then removed with its home), nor a seat's group, home or SLURM
        user. Checked before anything is made."""
        theirs = []
        if not spec.account and account != made.account and self.slurm.account_exists(account):
            theirs.append(f"SLURM account {account!r} (account: {account} runs the workshop in it)")
        if spec.name != made.reservation and self.slurm.reservation(spec.name) is not None:
            theirs.append(f"reservation {spec.name!r}")
        homes = Path(dict(line.split("=", 1) for line in run("useradd", "-D").split()).get("HOME", "/home"))
        slurm_users = self.slurm.users()
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
            raise WorkshopError(f"workshop {spec.name} would take over what exists and was not made by this workshop: "
                                f"{'; '.join(theirs)}. Name the workshop otherwise; nothing was made.")  # fmt: skip

    def _seats(self, spec: WorkshopFile, sheet: Path, made: Made) -> dict[str, str]:
        """Seat users in the users' group, each with a random password (kept on a second create)
        and a home of its own (0700: seats are strangers to each other)."""
        known = {}
        if sheet.exists():
            known = {row["user"]: row["password"] for row in csv.DictReader(io.StringIO(sheet.read_text()))}
        group = self.site.hub.allowed_groups[0] if self.site.hub.allowed_groups else ""
        passwords = {}
        for number in range(1, spec.seats + 1):
            seat = seat_name(spec.name, number)
            if not user_exists(seat):
                argv = ["useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash"]
                run(*argv, "-c", f"workshop {spec.name} seat {number}", *(["-G", group] if group else []), seat)
                made.save(users=sorted({*made.users, seat}))
                known.pop(seat, None)
            passwords[seat] = known.get(seat) or secrets.token_urlsafe(9)
            run("chpasswd", stdin=f"{seat}:{passwords[seat]}\n")
        return passwords

    def _materials(self, spec: WorkshopFile) -> Materials:
        """The materials as a git bundle every seat's job can read (a repository owned by root
        would be refused by the seats' git as "dubious ownership"): a repository is mirrored,
        a folder is committed, again on a later create, so students' pulls merge.

        The first instructor reads them (root would follow their links, and read what they may
        not): a folder comes as a tar stream whose links must stay inside it, a repository as
        a bundle; root takes both as data."""
        bare = self.state / spec.name / "materials.git"
        source, reader = spec.materials, spec.instructors[0]
        source = source if "://" in source else os.path.abspath(source)  # the reader starts in /
        is_repo = "://" in source or (Path(source) / ".git").exists() or (Path(source) / "HEAD").exists()
        git = ["git", "-c", "user.name=AI Factory Workbench", "-c", "user.email=root@localhost"]
        if not bare.exists():
            run(*git, "init", "-q", "--bare", "--initial-branch=main", str(bare))
        with tempfile.TemporaryDirectory() as work:
            if is_repo:
                bundle = Path(work) / "theirs.bundle"
                with bundle.open("wb") as out:
                    self._as_reader(reader, source, ["sh", "-c", MIRROR, "sh", source], stdout=out)
                run(*git, "-C", str(bare), "fetch", "-q", str(bundle), "+HEAD:refs/heads/main")
            else:
                checkout = Path(work) / "checkout"
                run(*git, "clone", "-q", str(bare), str(checkout))
                for item in checkout.iterdir():
                    if item.name != ".git":
                        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
                self._unpack_folder(reader, source, checkout)
                run(*git, "-C", str(checkout), "add", "-A")
                if run(*git, "-C", str(checkout), "status", "--porcelain").strip():
                    run(*git, "-C", str(checkout), "commit", "-q", "-m", f"materials of {spec.name}")
                    run(*git, "-C", str(checkout), "push", "-q", "origin", "HEAD:main")
        self.materials_dir.mkdir(parents=True, exist_ok=True)
        self.materials_dir.chmod(0o755)
        bundle = self.materials_dir / f"{spec.name}.bundle"
        run(*git, "-C", str(bare), "bundle", "create", "-q", str(bundle.with_suffix(".tmp")), "main")
        bundle.with_suffix(".tmp").chmod(0o644)
        os.replace(bundle.with_suffix(".tmp"), bundle)
        return Materials(repo=str(bundle), branch="main", folder=spec.name)

    def _as_reader(self, reader: str, source: str, argv: list[str], stdout: Any) -> None:
        with tempfile.TemporaryFile() as errors:
            code = subprocess.run(argv, stdout=stdout, stderr=errors, **as_user(reader)).returncode
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip()
        if code != 0:
            raise WorkshopError(f"key 'materials': instructor {reader} cannot read {source}: {said}")

    def _unpack_folder(self, reader: str, source: str, into: Path) -> None:
        """The folder ``source`` as ``reader`` reads it, into ``into`` (root's own): files,
        folders and links that stay inside it (one that leaves it is refused, by name); root
        writes no file through a link, so a link is only ever followed by a seat."""
        if not Path(source).is_dir():
            raise WorkshopError(f"key 'materials': {source!r} is neither a git repository nor a folder")
        with tempfile.TemporaryFile() as stream:
            tar_argv = ["tar", "-C", source, "--exclude=./.git", "--hard-dereference", "-cf", "-", "."]
            self._as_reader(reader, source, tar_argv, stdout=stream)
            stream.seek(0)
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                for member in tar:
                    parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                    if not parts or ".git" in parts:
                        continue  # the folder itself; git's own folders are not materials
                    name = PurePosixPath(*parts)
                    if name.is_absolute() or ".." in parts:
                        raise WorkshopError(f"key 'materials': {source}: a name that leaves the folder: {member.name}")
                    target = into.joinpath(*parts)
                    if any(p.is_symlink() or not p.is_dir() for p in [into.joinpath(*parts[:i]) for i in
                                                                        range(1, len(parts))]):  # fmt: skip
                        raise WorkshopError(f"key 'materials': {source}: {name} lies under a link")
                    if member.isdir():
                        target.mkdir(mode=0o755, exist_ok=True)
                    elif member.issym():
                        inside = posixpath.normpath(posixpath.join(str(name.parent), member.linkname))
                        if posixpath.isabs(member.linkname) or inside == ".." or inside.startswith("../"):
                            raise WorkshopError(
                                f"key 'materials': {name} in {source} is a link to {member.linkname}, outside the "
                                "materials folder: only links inside it are copied (copy the file in instead)"
                            )
                        os.symlink(member.linkname, target)
                    elif member.isfile():
                        mode = 0o755 if member.mode & 0o100 else 0o644
                        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                        with os.fdopen(fd, "wb") as out:
                            shutil.copyfileobj(tar.extractfile(member), out)
                    else:
                        raise WorkshopError(f"key 'materials': {name} in {source} is not a file, folder or link")

    def _sheet(self, workshop: Workshop, passwords: dict[str, str], state: Path) -> None:
        url = self.site.hub.public_url or f"http://<this machine>:{self.site.hub.port}/"
        rows = [{"user": seat, "password": passwords[seat], "url": url} for seat in workshop.seats]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["user", "password", "url"])
        writer.writeheader()
        writer.writerows(rows)
        slips = "".join(
            f'<div class="slip"><h2>{html.escape(workshop.title)}</h2><p>Open <b>{html.escape(r["url"])}</b></p>'
            f"<p>User <b>{html.escape(r['user'])}</b><br>Password <b>{html.escape(r['password'])}</b></p></div>"
            for r in rows
        )
        page = (
            f"<!doctype html><meta charset=utf-8><title>Seats of {html.escape(workshop.name)}</title><style>"
            "body{font-family:sans-serif}.slip{border:1px dashed #888;padding:0.5em 1em;margin:0.5em;"
            "break-inside:avoid;display:inline-block;width:20em}h2{font-size:1em}</style>" + slips
        )
        for name, text in (("seats.csv", buffer.getvalue()), ("seats.html", page)):
            fd = os.open(state / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)

    # -- status ----------------------------------------------------------------------------
    def known(self, name: str) -> Workshop | None:
        path = self.registry / f"{name}.yaml"
        return Workshop.from_data(yaml.safe_load(path.read_text())) if path.exists() else None

    def status(self, name: str) -> list[dict[str, str]]:
        workshop = self.known(name)
        if workshop is None:
            raise WorkshopError(f"workshop {name!r} is not known here (never created, or ended)")
        jobs = self.slurm.jobs_of(list(workshop.seats))
        rows = []
        for seat in workshop.seats:
            mine = [j for j in jobs.values() if j.user == seat]
            job = mine[0] if mine else None
            rows.append({
                "seat": seat,
                "state": job.state.lower() if job else "not started",
                "job": job.job_id if job else "",
                "since": job.start_time if job else "",
                "node": job.node if job and job.is_running else "",
            })  # fmt: skip
        return rows

    # -- end -------------------------------------------------------------------------------
    def end(self, name: str) -> None:
        workshop = self.known(name)
        state = self.state / name
        made = Made.load(state / "made.json")
        if workshop is None and not made.anything:
            shutil.rmtree(state, ignore_errors=True)
            self.out(f"workshop {name}: nothing left to end")
            return
        seats = tuple(made.users)  # the seats this workshop made, and no other user
        write_ended(self.registry, Ended.now(name, seats))
        later = f"the hub forgets its seats when it starts (or within {FORGET_EVERY:.0f} s, if it runs)"
        self._tell_hub("DELETE", name, later=later)
        for seat in seats:
            if user_exists(seat):
                self.slurm.cancel_jobs_of(seat)
        deadline = time.monotonic() + 60
        while self.slurm.jobs_of([s for s in seats if user_exists(s)]) and time.monotonic() < deadline:
            time.sleep(1)
        for seat in seats:
            if user_exists(seat):
                kill_processes_of(seat)
        archive = self._archive(replace(workshop, seats=seats)) if workshop else "(none: the workshop was never whole)"
        for seat in seats:
            self.slurm.remove_user(seat)
            if user_exists(seat):
                run("userdel", "-r", seat)
            made.save(users=[u for u in made.users if u != seat])
        if made.account:
            self.slurm.remove_account(made.account)
            made.save(account="")
        if made.reservation:
            self.slurm.remove_reservation(made.reservation)
            made.save(reservation="")
        if workshop and workshop.materials:
            Path(workshop.materials.repo).unlink(missing_ok=True)
        remove_workshop(self.registry, name)
        # Once more, now that no seat can sign in: a hub user made during the end goes too.
        write_ended(self.registry, Ended.now(name, seats))
        shutil.rmtree(state, ignore_errors=True)
        self.out(f"workshop {name} ended: seats, jobs, associations and reservation removed; archive: {archive}")

    def _archive(self, workshop: Workshop) -> str:
        """Every seat's home in one file, a copy in each instructor's ~/workshop-archives.

        Each home is read by its seat (``tar`` as the seat: a link or a folder swapped for one
        leads nowhere the seat could not read itself), root takes the stream as data (files
        and folders only), and each instructor writes their own copy."""
        homes = [(seat, pwd.getpwnam(seat).pw_dir) for seat in workshop.seats if user_exists(seat)]
        if not homes:
            return "(no seat left to archive)"
        filename = f"{workshop.name}-{datetime.date.today().isoformat()}.tar.gz"
        notes = []
        with tempfile.TemporaryFile() as made:
            with tarfile.open(fileobj=made, mode="w:gz") as tar:
                for seat, home in homes:
                    notes += self._add_home(tar, seat, home)
            copies = []
            for instructor in workshop.instructors:
                if not user_exists(instructor):
                    continue
                made.seek(0)
                folder = Path(pwd.getpwnam(instructor).pw_dir) / "workshop-archives"
                write = 'mkdir -p -m 700 -- "$1" && cat > "$1/.$2.part" && mv -f -- "$1/.$2.part" "$1/$2"'
                result = subprocess.run(["sh", "-c", write, "sh", str(folder), filename], stdin=made,
                                        capture_output=True, text=True, **as_user(instructor))  # fmt: skip
                copies.append(str(folder / filename) if result.returncode == 0 else
                              f"{instructor}: no copy ({result.stderr.strip()})")  # fmt: skip
        for note in notes:
            self.out(note)
        return ", ".join(copies) or "(no instructor left to receive it)"

    @staticmethod
    def _add_home(tar: tarfile.TarFile, seat: str, home: str) -> list[str]:
        """``seat``'s home, as the seat reads it, into ``tar`` under ``seat/``; what it could not read, said."""
        with tempfile.TemporaryFile() as errors:
            reading = subprocess.Popen(["tar", "-C", home, "--hard-dereference", "-cf", "-", "."],
                                       stdout=subprocess.PIPE, stderr=errors, **as_user(seat))  # fmt: skip
            try:
                with tarfile.open(fileobj=reading.stdout, mode="r|") as theirs:
                    for member in theirs:
                        parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                        if ".." in parts or PurePosixPath(member.name).is_absolute():
                            continue
                        if member.isfile() or member.isdir():
                            member.name = str(PurePosixPath(seat, *parts))
                            tar.addfile(member, theirs.extractfile(member) if member.isfile() else None)
            except tarfile.TarError as e:
                errors.write(f"{e}\n".encode())
            finally:
                reading.stdout.close()
                code = reading.wait()
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip()
        return [f"archive: {seat}: {said.splitlines()[0]}"] if code != 0 and said else []

    # -- the hub ---------------------------------------------------------------------------
    def _tell_hub(self, method: str, name: str, later: str) -> bool:
        """The running hub gives the instructors their seats (POST) or forgets them (DELETE);
        a hub that is not running does it at its start (``later`` says so). True: it did."""
        hub = self.site.hub
        if not hub.admin_services:
            self.out(f"the hub has no admin service (hub.admin_services): {later}")
            return False
        token = read_token_file(Path(hub.admin_services[0]["token_file"]))
        scheme, context = "http", None
        if hub.internal_ssl:
            certs = hub.internal_certs_dir
            context = ssl.create_default_context(cafile=str(certs / "hub-ca_trust.crt"))
            context.load_cert_chain(
                certs / "hub-internal" / "hub-internal.crt", certs / "hub-internal" / "hub-internal.key"
            )
            scheme = "https"
        url = f"{scheme}://{hub.hub_ip}:{hub.hub_port}/hub/api/aifactory/workshops/{name}"
        request = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=120, context=context) as reply:
                summary = json.loads(reply.read() or b"{}")
        except OSError as e:
            self.out(f"the hub did not answer ({e}): {later}")
            return False
        self.out(f"hub: {summary.get('message', 'updated')}")
        return True


def read_token_file(path: Path) -> str:
    """The admin service's token, from a file the hub's account may own: opened without
    following a link, a regular file, its first line only (root sends it to the hub)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise WorkshopError(f"key 'hub.admin_services': token file {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise WorkshopError(f"key 'hub.admin_services': token file {path} is not a regular file")
        token = f.read(4096).decode(errors="replace").strip().split("\n")[0]
    if not token.isascii() or not token.isprintable():
        raise WorkshopError(f"key 'hub.admin_services': token file {path} does not hold a token")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aifactory-workshop", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["create", "status", "end"])
    parser.add_argument("target", help="create: the workshop file; status, end: the workshop's name")
    parser.add_argument("--site", help="site file (default: $AIFACTORY_SITE_CONFIG or /etc/aifactory/site.yaml)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("aifactory-workshop: run it as root (it makes users, SLURM associations and reservations)",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        workshops = Workshops(load_site_config(args.site))
        if args.command == "create":
            workshops.create(Path(args.target))
        elif args.command == "end":
            workshops.end(args.target)
        else:
            rows = workshops.status(args.target)
            print(f"{'seat':<16} {'state':<12} {'job':<8} {'since':<20} node")
            for r in rows:
                print(f"{r['seat']:<16} {r['state']:<12} {r['job']:<8} {r['since']:<20} {r['node']}")
    except (WorkshopError, SiteConfigError, SlurmError) as e:
        print(f"aifactory-workshop: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
