"""Fresh installs of the hub's venv and the users' stack (issue 35, item 2).

Each is made anew, beside the installed ones, from the lock `make install` wrote for it (its
exact packages): Debian's ``python3 -m venv``, then ``uv pip sync`` with its bytecode compiled, as
`make install` does. Timed from nothing to
installed, first with an empty uv cache (everything downloaded, the hub's venv first), then with
a warm one; then each venv's size on disk, and what the three venvs take together (uv links
every file from its cache, so files they share are counted once).

Usage: /opt/aifactory/dev-venv/bin/python -m benchmarks.installs [--find-links /opt/wheels]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from uv import find_uv_bin

PREFIX = Path("/opt/aifactory")
#: The installs measured, by the venv `make install` keeps each in.
INSTALLS = {
    "the hub's": PREFIX / "hub-venv",
    "the users' stack": PREFIX / "venv",
    "the developer's": PREFIX / "dev-venv",
}


def fresh(lock: Path, target: Path, cache: Path, find_links: str, link_mode: str) -> float:
    """Seconds to make a venv at ``target`` holding exactly ``lock``'s packages."""
    start = time.monotonic()
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(target)], check=True)
    sync = [
        find_uv_bin(),
        "pip",
        "sync",
        "--quiet",
        "--compile-bytecode",
        "--python",
        str(target / "bin" / "python"),
        str(lock),
    ]
    subprocess.run(
        [*sync, "--find-links", find_links, "--link-mode", link_mode],
        check=True,
        env=os.environ | {"UV_CACHE_DIR": str(cache)},
    )
    return time.monotonic() - start


def size(*folders: Path) -> str:
    """What the folders take on disk together, a file linked twice counted once (du)."""
    shown = subprocess.run(["du", "-sc", "--block-size=1M", *map(str, folders)], capture_output=True, text=True)
    return f"{int(shown.stdout.splitlines()[-1].split()[0]) / 1024:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--find-links", default=os.environ.get("PIP_FIND_LINKS", "/opt/wheels"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aifw-installs-", dir=PREFIX.parent))
    try:
        cold = work / "cold-cache"
        made = {}
        for cache, state in ((cold, "empty uv cache"), (Path.home() / ".cache" / "uv", "warm uv cache")):
            for name, venv in INSTALLS.items():
                target = work / f"{venv.name}-{'cold' if cache == cold else 'warm'}"
                link_mode = "copy" if venv == INSTALLS["the hub's"] else "hardlink"  # as `make install`
                seconds = fresh(venv / ".lock.txt", target, cache, args.find_links, link_mode)
                made[name] = target
                print(f"{name} ({state}): {seconds:.1f} s, {size(target)}")
        print(f"the three together on disk (linked from one cache): {size(*made.values())}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
