"""The doctor with SLURM's and the system's answers given by a test (tests/unit/test_doctor.py,
test_proxy.py): what ``Doctor.run_as`` would have run is kept, nothing is run."""

from __future__ import annotations

from pathlib import Path

from aifactory_workbench.hub.doctor import Doctor
from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.slurm.client import CommandResult
from tests.unit.defaults import site_file
from tests.unit.recorded_slurm import check_format


class Commands:
    """Stands in for Doctor.run_as: the first answer whose key is in the command line, else
    success with no output; every call is kept. Like the recorded SLURM, it refuses a SLURM
    command asked in a format that is not one of slurm.formats'."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[str], str | None]] = []

    def __call__(self, user: str, argv: list[str], stdin: str | None = None) -> CommandResult:
        check_format(argv)
        self.calls.append((user, list(argv), stdin))
        line = " ".join(argv)
        for key, (code, out, err) in self.answers.items():
            if key in line:
                return CommandResult(list(argv), code, out, err)
        return CommandResult(list(argv), 0, "", "")


def doctor(tmp_path: Path, text: str = "{}", probe_user: str = "", **answers: tuple[int, str, str]) -> Doctor:
    made = Doctor(load_site_config(str(site_file(tmp_path, text))), "aifactory-hub", probe_user)
    made.run_as = Commands(answers)
    return made
