"""``aifactory-config``: check or show the site config before the hub reads it; as root,
install what users' Dask reads from its dask section."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import yaml

from aifactory_workbench.hub.dask_config import dask_config_dir, write_dask_config
from aifactory_workbench.hub.site import SiteConfigError, load_site_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aifactory-config", description=__doc__)
    parser.add_argument(
        "command",
        choices=["check", "show", "install-dask"],
        help="check: validate; show: print the merged config; install-dask (root): write users' jobqueue.yaml",
    )
    parser.add_argument(
        "file", nargs="?", help="site file (default: $AIFACTORY_SITE_CONFIG or /etc/aifactory/site.yaml)"
    )
    args = parser.parse_args(argv)
    try:
        site = load_site_config(args.file)
    except SiteConfigError as e:
        print(e, file=sys.stderr)
        return 1
    if args.command == "install-dask":
        if os.geteuid() != 0:
            print("aifactory-config install-dask: run it as root (users' Dask loads that folder)", file=sys.stderr)
            return 1
        directory = dask_config_dir(site)
        path = write_dask_config(site, directory)
        os.chown(directory, 0, 0)
        os.chmod(directory, 0o755)
        print(f"{path}: written from section dask of {site.source}")
    elif args.command == "show":
        data = dataclasses.asdict(site)
        data.pop("source")
        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        print(f"site config {site.source}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
