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
copies written by those users themselves (:func:`~.workshop_accounts.as_user`).

The parts: the workshop file and its rules (``workshop_file.py``), users and accounts
(``workshop_accounts.py``), materials (``workshop_materials.py``), the seat sheet
(``workshop_sheet.py``, slips from ``seat_slips.html.j2``), the archive of the seats' homes
(``workshop_archive.py``) and the client of the running hub (``hub_client.py``).  This module
runs them in order.  The workshop file, with every key, is shown in ``workshop_file.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml

from aifactory_workbench.hub.hub_client import HubClient, HubClientError
from aifactory_workbench.hub.site import SiteConfig, SiteConfigError, load_site_config
from aifactory_workbench.hub.workshop_file import WorkshopError, read_workshop_file
from aifactory_workbench.hub.workshop_sheet import write_seat_sheet
from aifactory_workbench.root.workshop_accounts import (
    Made,
    kill_processes_of,
    make_seats,
    refuse_what_exists,
    run,
    user_exists,
)
from aifactory_workbench.root.workshop_archive import archive_homes
from aifactory_workbench.root.workshop_materials import publish_materials
from aifactory_workbench.slurm.admin import SlurmAdmin
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.parsers import SlurmError
from aifactory_workbench.slurm.values import parse_memory_mb
from aifactory_workbench.spawners.seats import (
    FORGET_EVERY,
    Ended,
    Workshop,
    remove_workshop,
    write_ended,
    write_workshop,
)

SLURM_TIME = "%Y-%m-%dT%H:%M:%S"


def seats_short_of_memory(seats: int, seat_mb: int, node_memory: dict[str, int]) -> str:
    """What an instructor must know when the reservation's nodes cannot hold every seat at once
    (a reservation of cores holds no memory: SLURM may put all its cores on one node); "" when
    they can, or when it cannot be told."""
    if not seat_mb or not node_memory:
        return ""
    fit = sum(mb // seat_mb for mb in node_memory.values())
    if fit >= seats:
        return ""
    nodes = ", ".join(f"{node} ({mb}M)" for node, mb in sorted(node_memory.items()))
    return (
        f"warning: only {fit} of the {seats} seats can run at once: the reservation's cores are on {nodes}, "
        f"and each seat asks {seat_mb}M (its preset's memory). Give the preset at most "
        f"{sum(node_memory.values()) // seats}M, or make fewer seats."
    )


class Workshops:
    """What ``aifactory-workshop`` does, on this machine, for the site ``site``."""

    def __init__(self, site: SiteConfig, slurm: SlurmAdmin | None = None, out: Callable[[str], None] = print) -> None:
        self.site = site
        self.slurm = slurm or SlurmAdmin(Slurm(bin_dir=site.slurm.bin_dir))
        self.out = out
        self.registry = Path(site.workshops.registry)
        self.state = Path(site.workshops.state_dir)
        self.materials_dir = Path(site.workshops.materials_dir)
        self.hub = HubClient(site.hub)

    # -- create ----------------------------------------------------------------------------
    def create(self, path: Path) -> Workshop:
        spec = read_workshop_file(path, self.site, user_exists)
        state = self.state / spec.name
        made = Made.load(state / "made.json")
        account = spec.account or spec.name
        if spec.account and not self.slurm.account_exists(account):
            raise WorkshopError(f"key 'account': SLURM account {account!r} does not exist; \"\" makes a new one")
        refuse_what_exists(spec, made, account, self.slurm)
        state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        materials = publish_materials(spec, state, self.materials_dir) if spec.materials else None
        if not spec.account:
            self.slurm.ensure_account(account, f"workshop {spec.title}")
            made.save(account=account)
        preset = spec.preset
        per_seat = int(preset.get("cpus", self.site.slurm.cpus))
        cores = spec.seats * per_seat
        partition = preset.get("partition", self.site.slurm.partition)
        self.slurm.ensure_reservation(
            spec.name,
            start=f"{spec.start:{SLURM_TIME}}",
            end=f"{spec.end:{SLURM_TIME}}",
            account=account,
            partition=partition,
            cores=cores,
        )
        made.save(reservation=spec.name)
        seat_mb = parse_memory_mb(str(preset.get("memory", self.site.slurm.memory))) or 0
        short = seats_short_of_memory(spec.seats, seat_mb, self.slurm.reserved_node_memory(spec.name))
        if short:
            self.out(short)
        group = self.site.hub.allowed_groups[0] if self.site.hub.allowed_groups else ""
        passwords = make_seats(spec, state / "seats.csv", made, group)
        seats = tuple(passwords)
        for seat in seats:
            self.slurm.ensure_user(seat, account)
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
                # What one seat gets; what it costs is the form's to say, from the seat's request
                # (the reservation's total here read as the seat's: "7" beside the form's 3.6, issue 36).
                "description": (
                    f"Workshop seat: {per_seat} core{'s' if per_seat != 1 else ''} until "
                    f"{spec.end:%H:%M on %d %b}, in the workshop's reservation"
                )[:80],
                "partition": partition,
                "account": account,
                "reservation": spec.name,
            },
            materials=materials,
        )
        write_workshop(self.registry, workshop)
        write_seat_sheet(
            workshop, passwords, state, self.site.hub.public_url or f"http://<this machine>:{self.site.hub.port}/"
        )
        self._tell_hub("POST", workshop.name, later="it reads the workshop at its next start")
        self.out(
            f"workshop {workshop.name}: {len(seats)} seats, reservation {workshop.reservation} "
            f"({cores} cores of {partition}, {workshop.start} to {workshop.end}), account {account}"
        )
        self.out(f"seat sheet: {state / 'seats.csv'} and {state / 'seats.html'} (root only: they hold passwords)")
        return workshop

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
            rows.append(
                {
                    "seat": seat,
                    "state": job.state.lower() if job else "not started",
                    "job": job.job_id if job else "",
                    "since": job.start_time if job else "",
                    "node": job.node if job and job.is_running else "",
                }
            )
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
        archive = (
            archive_homes(replace(workshop, seats=seats), self.out)
            if workshop
            else "(none: the workshop was never whole)"
        )
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

    # -- the hub ---------------------------------------------------------------------------
    def _tell_hub(self, method: str, name: str, later: str) -> bool:
        """The running hub gives the instructors their seats (POST) or forgets them (DELETE);
        a hub that is not running does it at its start (``later`` says so). True: it did."""
        if not self.hub.configured:
            self.out(f"the hub has no admin service (hub.admin_services): {later}")
            return False
        try:
            summary = self.hub.request(method, f"aifactory/workshops/{name}")
        except OSError as e:
            self.out(f"the hub did not answer ({e}): {later}")
            return False
        self.out(f"hub: {summary.get('message', 'updated')}")
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aifactory-workshop", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["create", "status", "end"])
    parser.add_argument("target", help="create: the workshop file; status, end: the workshop's name")
    parser.add_argument("--site", help="site file (default: $AIFACTORY_SITE_CONFIG or /etc/aifactory/site.yaml)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "aifactory-workshop: run it as root (it makes users, SLURM associations and reservations)", file=sys.stderr
        )
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
    except (WorkshopError, HubClientError, SiteConfigError, SlurmError) as e:
        print(f"aifactory-workshop: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
