"""An environment's lock, as both sides read it: ``aifactory-env`` writes and rebuilds from it
in the job, the hub checks and shows what a published one needs.  A lock is a requirements file
of exact pins only (``uv pip freeze``): one ``name==version`` a line, and comments."""

from __future__ import annotations

import re

_PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)")
#: The environment ``aifactory-env build-lock`` makes from a published lock, in the relauncher's
#: home; its name is the lock's hash, so each lock is built once and a relaunch finds it.
GALLERY_ENV_PREFIX = "gallery-"


def normalised(name: str) -> str:
    """A project's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    """Each package's version (names normalised); ValueError names the first line that is not
    an exact pin (an option, a URL, a local path: what another person could not install)."""
    found = {}
    for number, line in enumerate(lock.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.fullmatch(line)
        if match is None:
            raise ValueError(f"line {number} of the lock, {line[:80]!r}, is not an exact pin (name==version)")
        found[normalised(match.group(1))] = match.group(2)
    return found


def human_size(size: float) -> str:
    """A size on disk as the workbench shows it (an environment's, in aifactory-env list and the gallery)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
