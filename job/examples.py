"""Runs in the JupyterLab job before JupyterLab: the site's example notebooks, once, into
``~/examples`` (``aifactory-examples SOURCE``).

Only on a user's first start: a later start never overwrites what the user changed, and
examples the user deleted do not come back (``~/.aifactory/examples-copied`` records the
copy; remove it, and ``~/examples``, to get them afresh).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

MARKER = Path(".aifactory") / "examples-copied"
#: Build leftovers that are not examples.
SKIP = shutil.ignore_patterns("*.egg-info", "__pycache__", ".ipynb_checkpoints")


def copy_examples(source: Path, home: Path) -> str:
    """Copy ``source`` to ``home/examples`` unless done before; say what happened."""
    target, marker = home / "examples", home / MARKER
    if marker.exists():
        return "examples were copied on an earlier start; left as they are"
    if target.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("~/examples was there already: nothing copied\n")
        return f"{target} exists already; nothing copied"
    if not source.is_dir():
        return f"no examples at {source}"
    # Copies are the user's own files, writable by them whatever the source's modes.
    shutil.copytree(source, target, ignore=SKIP, copy_function=shutil.copyfile)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"copied from {source}\n")
    return f"example notebooks copied to {target}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: aifactory-examples SOURCE_FOLDER", file=sys.stderr)
        return 2
    print(f"AI Factory Workbench: {copy_examples(Path(args[0]), Path.home())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
