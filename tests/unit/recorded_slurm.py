"""A SLURM client whose commands are answered with given output: what it asks is the real
client's (its arguments, its formats); only the subprocess is left out.  It refuses an squeue
or sacct whose ``-o`` is not one of :mod:`aifactory_workbench.slurm.formats`'s, so a caller that
writes its own field list fails its tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aifactory_workbench.slurm import formats
from aifactory_workbench.slurm.client import CommandResult, Slurm
from aifactory_workbench.slurm.parsers import JobInfo, SlurmError

#: Every -o value the workbench's formats make.
KNOWN_FORMATS = {f.option for f in vars(formats).values() if isinstance(f, formats.Format)}


def squeue_line(info: JobInfo) -> str:
    """``info`` as squeue prints it in the jobs format."""
    return formats.SQUEUE_JOBS.sep.join(getattr(info, name) for name in formats.SQUEUE_JOBS.names)


def check_format(argv: Sequence[str]) -> None:
    """Fail unless an squeue or sacct command's -o comes from slurm.formats."""
    if argv[0] not in ("squeue", "sacct"):
        return
    option = argv[list(argv).index("-o") + 1]
    assert option in KNOWN_FORMATS, f"{argv[0]} -o {option!r}: a format of its own, not one of slurm.formats'"


class RecordedSlurm(Slurm):
    """Answers every command with ``stdout`` (None: SLURM refuses), and keeps what was asked."""

    def __init__(self, stdout: str | None) -> None:
        super().__init__()
        self.stdout, self.asked = stdout, []

    def answer(self, argv: Sequence[str]) -> CommandResult:
        check_format(argv)
        self.asked.append(list(argv))
        if self.stdout is None:
            raise SlurmError(f"{argv[0]}: error")
        return CommandResult(list(argv), 0, self.stdout)

    async def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        return self.answer(argv)

    def run_blocking(self, argv: Sequence[str], stdin: str | None = None, cwd: str | None = None) -> CommandResult:
        return self.answer(argv)
