"""``aifactory-site``: what a site's operator runs on the hub's machine.

* ``check`` and ``show``: validate the site file, or print it merged with the defaults, before
  the hub reads it;
* ``install-dask`` (root): write what users' Dask reads from the site file's dask section;
* ``upgrade`` (the hub's account): back up the hub's database, then bring it to this release's
  schema (JupyterHub's ``upgrade-db``); a database that a newer release wrote is left alone;
* ``doctor`` (root): check every assumption the hub makes, with probe jobs on the compute
  nodes, and name the fix for each that fails (``hub/doctor.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import yaml

from aifactory_workbench.hub.dask_config import dask_config_dir, write_dask_config
from aifactory_workbench.hub.database import database_problem, shown_url, upgrade_database
from aifactory_workbench.hub.doctor import Doctor, table
from aifactory_workbench.hub.site import SiteConfig, SiteConfigError, load_site_config

PROG = "aifactory-site"


def install_dask(site: SiteConfig) -> int:
    if os.geteuid() != 0:
        print(f"{PROG} install-dask: run it as root (users' Dask loads that folder)", file=sys.stderr)
        return 1
    directory = dask_config_dir(site)
    path = write_dask_config(site, directory)
    os.chown(directory, 0, 0)
    os.chmod(directory, 0o755)
    print(f"{path}: written from section dask of {site.source}")
    return 0


def upgrade(site: SiteConfig, backups: str | None) -> int:
    if os.geteuid() == 0:
        # Root would write backups into the hub's own folder, where a link it planted could lead.
        print(f"{PROG} upgrade: run it as the hub's account (sudo -u HUB_ACCOUNT {PROG} upgrade ...), not as root",
              file=sys.stderr)  # fmt: skip
        return 1
    url = site.hub.database_url
    problem = database_problem(url)
    if problem:
        print(f"{PROG} upgrade: the database {shown_url(url)} does not answer ({problem})", file=sys.stderr)
        return 1
    try:
        print(upgrade_database(url, Path(backups or Path(site.hub.state_dir) / "backups")))
    except (RuntimeError, OSError) as e:
        print(f"{PROG} upgrade: {e}", file=sys.stderr)
        return 1
    return 0


def doctor(site: SiteConfig, args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print(f"{PROG} doctor: run it as root (it checks the sudo rules and runs commands as the hub's account)",
              file=sys.stderr)  # fmt: skip
        return 1
    checks = list(Doctor(site, args.hub_user, args.probe_user, args.probe_timeout).checks())
    print(table(checks))
    failed = [c.name for c in checks if c.ok is False]
    print(f"\n{len(failed)} of {len(checks)} checks failed" if failed else f"\nall {len(checks)} checks passed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    site_help = "site file (default: $AIFACTORY_SITE_CONFIG or /etc/aifactory/site.yaml)"
    for name, text in (
        ("check", "validate the site file"),
        ("show", "print the site file merged with the defaults"),
        ("install-dask", "(root) write users' jobqueue.yaml from the site file"),
        ("upgrade", "(the hub's account, hub stopped) back up the hub's database, then upgrade its schema"),
        ("doctor", "(root) check what the hub assumes, with a probe job on each partition; exit 1 on a failure"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("file", nargs="?", help=site_help)
        if name == "upgrade":
            command.add_argument("--backups", help="folder for the backup (default: hub.state_dir/backups)")
        if name == "doctor":
            command.add_argument("--hub-user", default="aifactory-hub", help="the hub's Unix account")
            command.add_argument("--probe-user", default="", help="a test user whose probe jobs try each partition")
            command.add_argument("--probe-timeout", type=float, default=120, help="seconds a probe job may take")
    args = parser.parse_args(argv)
    try:
        site = load_site_config(args.file)
    except SiteConfigError as e:
        print(e, file=sys.stderr)
        return 1
    if args.command == "install-dask":
        return install_dask(site)
    if args.command == "upgrade":
        return upgrade(site, args.backups)
    if args.command == "doctor":
        return doctor(site, args)
    if args.command == "show":
        data = dataclasses.asdict(site)
        data.pop("source")
        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        print(f"site config {site.source}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
