"""``aifactory-config``: check or show the site config before the hub reads it."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import yaml

from hub.site import SiteConfigError, load_site_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aifactory-config", description=__doc__)
    parser.add_argument("command", choices=["check", "show"], help="check: validate; show: print the merged config")
    parser.add_argument(
        "file", nargs="?", help="site file (default: $AIFACTORY_SITE_CONFIG or /etc/aifactory/site.yaml)"
    )
    args = parser.parse_args(argv)
    try:
        site = load_site_config(args.file)
    except SiteConfigError as e:
        print(e, file=sys.stderr)
        return 1
    if args.command == "show":
        data = dataclasses.asdict(site)
        data.pop("source")
        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        print(f"site config {site.source}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
