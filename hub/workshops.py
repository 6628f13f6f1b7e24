"""``aifactory-workshop``: a workshop in one file and one command (run as root on the hub's
machine).

    aifactory-workshop create FILE   seats, SLURM account and reservation, materials, seat sheet
    aifactory-workshop status NAME   each seat: running or not, since when, on which node
    aifactory-workshop end NAME      stop and cancel everything, archive the seats' homes for the
                                     instructors, remove seats, account and reservation

``create`` twice updates what changed (passwords are kept); ``end`` twice is harmless.  The
workshop file (every key and its rule: :data:`WORKSHOP_KEYS`)::

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
import csv
import datetime
import html
import io
import json
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hub.site import SiteConfig, SiteConfigError, load_site_config, read_yaml, unknown_key
from slurm.admin import SlurmAdmin
from slurm.parsers import SlurmError
from slurm.values import SLURM_NAME, UNIX_USER, Rule, is_int
from spawners.seats import WORKSHOP_NAME, Materials, Workshop, remove_workshop, seat_name, write_workshop

SLURM_TIME = "%Y-%m-%dT%H:%M:%S"


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
        state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        account = spec.account or spec.name
        if spec.account and not self.slurm.account_exists(account):
            raise WorkshopError(f"key 'account': SLURM account {account!r} does not exist; \"\" makes a new one")
        if not spec.account:
            self.slurm.ensure_account(account, f"workshop {spec.title}")
        passwords = self._seats(spec, state / "seats.csv")
        seats = tuple(passwords)
        for seat in seats:
            self.slurm.ensure_user(seat, account)
        preset = spec.preset
        cores = spec.seats * int(preset.get("cpus", self.site.slurm.cpus))
        partition = preset.get("partition", self.site.slurm.partition)
        self.slurm.ensure_reservation(spec.name, start=f"{spec.start:{SLURM_TIME}}", end=f"{spec.end:{SLURM_TIME}}",
                                      account=account, partition=partition, cores=cores)  # fmt: skip
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
            materials=self._materials(spec) if spec.materials else None,
        )
        write_workshop(self.registry, workshop)
        if not spec.account:
            (state / "account-made-here").touch()
        self._sheet(workshop, passwords, state)
        self._tell_hub("POST", workshop.name)
        self.out(f"workshop {workshop.name}: {len(seats)} seats, reservation {workshop.reservation} "
                 f"({cores} cores of {partition}, {workshop.start} to {workshop.end}), account {account}")  # fmt: skip
        self.out(f"seat sheet: {state / 'seats.csv'} and {state / 'seats.html'} (root only: they hold passwords)")
        return workshop

    def _seats(self, spec: WorkshopFile, sheet: Path) -> dict[str, str]:
        """Seat users in the users' group, each with a random password (kept on a second create)."""
        known = {}
        if sheet.exists():
            known = {row["user"]: row["password"] for row in csv.DictReader(io.StringIO(sheet.read_text()))}
        group = self.site.hub.allowed_groups[0] if self.site.hub.allowed_groups else ""
        passwords = {}
        for number in range(1, spec.seats + 1):
            seat = seat_name(spec.name, number)
            if not user_exists(seat):
                argv = ["useradd", "-m", "-s", "/bin/bash", "-c", f"workshop {spec.name} seat {number}"]
                run(*argv, *(["-G", group] if group else []), seat)
                known.pop(seat, None)
            passwords[seat] = known.get(seat) or secrets.token_urlsafe(9)
            run("chpasswd", stdin=f"{seat}:{passwords[seat]}\n")
        return passwords

    def _materials(self, spec: WorkshopFile) -> Materials:
        """The materials as a git bundle every seat's job can read (a repository owned by root
        would be refused by the seats' git as "dubious ownership"): a repository is mirrored,
        a folder is committed, again on a later create, so students' pulls merge."""
        bare = self.state / spec.name / "materials.git"
        source = spec.materials
        is_repo = "://" in source or (Path(source) / ".git").exists() or (Path(source) / "HEAD").exists()
        git = ["git", "-c", "user.name=AI Factory Workbench", "-c", "user.email=root@localhost"]
        if not bare.exists():
            run(*git, "init", "-q", "--bare", "--initial-branch=main", str(bare))
        if is_repo:
            run(*git, "-C", str(bare), "fetch", "-q", source, "+HEAD:refs/heads/main")
        else:
            if not Path(source).is_dir():
                raise WorkshopError(f"key 'materials': {source!r} is neither a git repository nor a folder")
            with tempfile.TemporaryDirectory() as work:
                run(*git, "clone", "-q", str(bare), work)
                for item in Path(work).iterdir():
                    if item.name != ".git":
                        shutil.rmtree(item) if item.is_dir() else item.unlink()
                shutil.copytree(source, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
                run(*git, "-C", work, "add", "-A")
                if run(*git, "-C", work, "status", "--porcelain").strip():
                    run(*git, "-C", work, "commit", "-q", "-m", f"materials of {spec.name}")
                    run(*git, "-C", work, "push", "-q", "origin", "HEAD:main")
        self.materials_dir.mkdir(parents=True, exist_ok=True)
        self.materials_dir.chmod(0o755)
        bundle = self.materials_dir / f"{spec.name}.bundle"
        run(*git, "-C", str(bare), "bundle", "create", "-q", str(bundle.with_suffix(".tmp")), "main")
        bundle.with_suffix(".tmp").chmod(0o644)
        os.replace(bundle.with_suffix(".tmp"), bundle)
        return Materials(repo=str(bundle), branch="main", folder=spec.name)

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
        if workshop is None:
            self.out(f"workshop {name}: nothing left to end")
            return
        self._tell_hub("DELETE", name)  # servers stopped, seats forgotten by the hub
        for seat in workshop.seats:
            if user_exists(seat):
                self.slurm.cancel_jobs_of(seat)
        deadline = time.monotonic() + 60
        while self.slurm.jobs_of([s for s in workshop.seats if user_exists(s)]) and time.monotonic() < deadline:
            time.sleep(1)
        archive = self._archive(workshop)
        for seat in workshop.seats:
            self.slurm.remove_user(seat)
            if user_exists(seat):
                run("userdel", "-r", seat)
        if (state / "account-made-here").exists():
            self.slurm.remove_account(workshop.account)
        self.slurm.remove_reservation(workshop.reservation)
        if workshop.materials:
            Path(workshop.materials.repo).unlink(missing_ok=True)
        remove_workshop(self.registry, name)
        shutil.rmtree(state, ignore_errors=True)
        self.out(f"workshop {name} ended: seats, jobs, associations and reservation removed; archive: {archive}")

    def _archive(self, workshop: Workshop) -> str:
        """Every seat's home in one file, a copy in each instructor's ~/workshop-archives."""
        homes = [(seat, Path(pwd.getpwnam(seat).pw_dir)) for seat in workshop.seats if user_exists(seat)]
        if not homes:
            return "(no seat left to archive)"
        stamp = datetime.date.today().isoformat()
        with tempfile.TemporaryDirectory() as work:
            made = Path(work) / f"{workshop.name}-{stamp}.tar.gz"
            with tarfile.open(made, "w:gz") as tar:
                for seat, home in homes:
                    tar.add(home, arcname=seat)
            copies = []
            for instructor in workshop.instructors:
                if not user_exists(instructor):
                    continue
                info = pwd.getpwnam(instructor)
                folder = Path(info.pw_dir) / "workshop-archives"
                folder.mkdir(mode=0o700, exist_ok=True)
                os.chown(folder, info.pw_uid, info.pw_gid)
                target = folder / made.name
                shutil.copyfile(made, target)
                os.chown(target, info.pw_uid, info.pw_gid)
                target.chmod(0o600)
                copies.append(str(target))
        return ", ".join(copies) or "(no instructor left to receive it)"

    # -- the hub ---------------------------------------------------------------------------
    def _tell_hub(self, method: str, name: str) -> None:
        """The running hub gives the instructors their seats (POST) or forgets them (DELETE);
        a hub that is not running reads the registry when it starts."""
        hub = self.site.hub
        if not hub.admin_services:
            self.out("the hub has no admin service (hub.admin_services): it reads the workshop at its next start")
            return
        token = Path(hub.admin_services[0]["token_file"]).read_text().strip()
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
            self.out(f"the hub did not answer ({e}): it reads the workshop at its next start")
            return
        self.out(f"hub: {summary.get('message', 'updated')}")


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
