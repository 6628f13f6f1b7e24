"""``aifactory-cancel``: SLURM's scancel for the hub, as a user, through one sudo rule.

The rule names this helper and no arguments (a pattern in a rule needs sudo 1.9.10 or later,
and older sudo reads it as text that never matches): this helper lets through what the hub
cancels and nothing else (one job by its id, or a server's Dask workers by their job name,
:func:`aifactory_workbench.slurm.client.cancel_arguments_ok`), then runs the scancel whose path
``aifactory-site install`` wrote into it. It runs as the user, with sudo's reset environment, and
replaces itself with scancel: SLURM decides, as for anything the user runs, which jobs are theirs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from aifactory_workbench.slurm.client import SECURE_PATH, cancel_arguments_ok

#: Its exit status when the arguments are not what the hub cancels (scancel's own are 0 and 1).
REFUSED = 2


def main(scancel: str, argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not cancel_arguments_ok(args):
        print("aifactory-cancel: refused: usage: aifactory-cancel JOBID | --name aifw-dask-JOBID", file=sys.stderr)
        return REFUSED
    os.environ["PATH"] = SECURE_PATH  # sudo reset the rest
    os.execv(scancel, [scancel, *args])
