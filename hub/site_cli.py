"""``aifactory-site``: what a site's operator runs on the hub's machine.

* ``check`` and ``show``: validate the site file, or print it merged with the defaults, before
  the hub reads it;
* ``install`` (root): set up the hub's machine around the installed package: accounts, sudo
  rules, folders, Dask config, the systemd units, log rotation, SLURM's epilog
  (``root/site_install.py``); ``start-hub`` runs the hub unit's lines where systemd is not PID 1,
  ``start-proxy`` the proxy unit's;
* ``proxy`` (the hub's account; the proxy unit's ``ExecStart``): become configurable-http-proxy,
  run on its own so that a hub restart keeps every open connection (``hub/proxy.py``);
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

from aifactory_workbench.hub.database import database_problem, shown_url, upgrade_database
from aifactory_workbench.hub.doctor import Doctor, table
from aifactory_workbench.hub.proxy import command_problem, run_proxy
from aifactory_workbench.hub.site import SiteConfig, SiteConfigError, load_site_config
from aifactory_workbench.root.dask_config import install_dask_config
from aifactory_workbench.root.site_install import PROXY_UNIT, UNIT, Accounts, Installer, start_hub_without_systemd

PROG = "aifactory-site"


def install_dask(site: SiteConfig) -> int:
    if os.geteuid() != 0:
        print(f"{PROG} install-dask: run it as root (users' Dask loads that folder)", file=sys.stderr)
        return 1
    path, _ = install_dask_config(site)
    print(f"{path}: written from section dask of {site.source}")
    return 0


def upgrade(site: SiteConfig, backups: str | None) -> int:
    if os.geteuid() == 0:
        # Root would write backups into the hub's own folder, where a link it planted could lead.
        print(
            f"{PROG} upgrade: run it as the hub's account (sudo -u HUB_ACCOUNT {PROG} upgrade ...), not as root",
            file=sys.stderr,
        )
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


def install(site: SiteConfig, args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print(f"{PROG} install: run it as root", file=sys.stderr)
        return 1
    accounts = Accounts(args.hub_user, args.hub_home, args.users_group, args.admins_group)
    try:
        for what, changed in Installer(site, accounts, systemd_check=not args.no_systemd_verify).steps():
            print(f"{'changed' if changed else 'as it was':<10} {what}")
    except (RuntimeError, OSError, ValueError) as e:
        print(f"{PROG} install: {e}", file=sys.stderr)
        return 1
    return 0


def doctor(site: SiteConfig, args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print(
            f"{PROG} doctor: run it as root (it checks the sudo rules and runs commands as the hub's account)",
            file=sys.stderr,
        )
        return 1
    checks = list(Doctor(site, args.hub_user, args.probe_user, args.probe_timeout).checks())
    print(table(checks))
    failed = [c.name for c in checks if c.ok is False]
    print(f"\n{len(failed)} of {len(checks)} checks failed" if failed else f"\nall {len(checks)} checks passed")
    return 1 if failed else 0


def proxy(site: SiteConfig) -> int:
    """Become the proxy (returns only on a problem, which names the site key to fix). Never as
    root: the proxy needs no privilege, and would make the hub's certificates root's."""
    if os.geteuid() == 0:
        print(f"{PROG} proxy: run it as the hub's account (the proxy unit's User), not as root", file=sys.stderr)
        return 1
    try:
        run_proxy(site)
    except (SiteConfigError, OSError) as e:
        print(f"{PROG} proxy: {e}", file=sys.stderr)
    return 1


def check(site: SiteConfig) -> int:
    """The file is valid, and what it names for this machine's hub is here (its proxy)."""
    problem = command_problem(site)
    if problem:
        print(f"site config {site.source}: {problem}", file=sys.stderr)
        return 1
    print(f"site config {site.source}: OK")
    return 0


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
        ("install", "(root) accounts, sudo rules, folders, Dask config, the systemd units, log rotation, the epilog"),
        ("proxy", "(the hub's account) run configurable-http-proxy on its own, in the foreground"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("file", nargs="?", help=site_help)
        if name == "upgrade":
            command.add_argument("--backups", help="folder for the backup (default: hub.state_dir/backups)")
        if name in ("doctor", "install"):
            command.add_argument("--hub-user", default=Accounts.hub_user, help="the hub's Unix account")
        if name == "install":
            command.add_argument("--hub-home", default=Accounts.hub_home, help="the hub account's home")
            command.add_argument("--users-group", default=Accounts.users_group, help="the group the hub submits for")
            command.add_argument("--admins-group", default=Accounts.admins_group, help="admins and staff: never run as")
            command.add_argument("--no-systemd-verify", action="store_true", help="skip systemd-analyze verify")
        if name == "doctor":
            command.add_argument("--probe-user", default="", help="a test user whose probe jobs try each partition")
            command.add_argument("--probe-timeout", type=float, default=120, help="seconds a probe job may take")
    for name, what in (("start-hub", "hub"), ("start-proxy", "proxy")):
        start = commands.add_parser(name, help=f"(root, no systemd) run the installed {what} unit's lines")
        start.add_argument("--log", required=True, help=f"the {what}'s output, appended (0640, group adm)")
        start.add_argument("--pid", required=True, help=f"where the {what}'s pid is written (a folder of root's)")
    args = parser.parse_args(argv)
    if args.command in ("start-hub", "start-proxy"):
        unit = UNIT if args.command == "start-hub" else PROXY_UNIT
        return start_hub_without_systemd(unit, Path(args.log), Path(args.pid))
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
    if args.command == "install":
        return install(site, args)
    if args.command == "proxy":
        return proxy(site)
    if args.command == "show":
        data = dataclasses.asdict(site)
        data.pop("source")
        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        return check(site)
    return 0


if __name__ == "__main__":
    sys.exit(main())
