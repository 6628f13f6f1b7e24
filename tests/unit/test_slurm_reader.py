"""One SLURM reader (issue #24): squeue and sacct are asked in the formats of
aifactory_workbench.slurm.formats and nowhere else, the fixture recorder prints those same
formats, and core-hours are one rule."""

import ast
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from aifactory_workbench.slurm import formats
from aifactory_workbench.slurm.client import outcome_argv, squeue_argv
from aifactory_workbench.slurm.parsers import JobInfo, parse_outcome, parse_rows, parse_sacct
from aifactory_workbench.spawners.estimate import usage_hours

from .fakes import RUNNING
from .recorded_slurm import FakeSlurm

ROOT = Path(__file__).parent.parent.parent
DATA = ROOT / "tests" / "data"
#: The packages outside slurm/ (the folders the package-dir mapping names).
CALLERS = ("hub", "spawners", "job", "lab")


def slurm_commands_written_in(path: Path) -> list[int]:
    """The lines where ``path`` writes an squeue or sacct command itself (a list or tuple that starts with one)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in ("squeue", "sacct"):
                found.append(node.lineno)
    return found


def test_only_slurm_writes_squeue_and_sacct_commands():
    written = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in CALLERS
        for path in (ROOT / package).rglob("*.py")
        for line in slurm_commands_written_in(path)
    ]
    assert written == [], "ask squeue/sacct through slurm.client (squeue_argv, sacct_argv, Slurm's methods)"


def test_the_scan_finds_a_command_written_by_hand(tmp_path):
    (tmp_path / "x.py").write_text('argv = ["squeue", "-h", "-o", "%L"]\n')
    assert slurm_commands_written_in(tmp_path / "x.py") == [1]


@pytest.mark.parametrize("name", sorted(formats.BY_NAME))
def test_the_recorder_prints_the_formats_the_parsers_read(name):
    """record.sh runs slurm/formats.py as a plain script (no install) and writes no list itself."""
    printed = subprocess.run(
        [sys.executable, str(ROOT / "slurm" / "formats.py"), name], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == formats.BY_NAME[name].option
    script = (DATA / "record.sh").read_text()
    assert f"$(format {name})" in script and formats.BY_NAME[name].option not in script


def test_the_recorded_fixtures_are_in_todays_formats():
    """A format changed without re-recording fails here (the fixtures are not edited by hand)."""
    lines = (DATA / "squeue.txt").read_text().splitlines()
    assert all(len(line.split(formats.SQUEUE_JOBS.sep)) == len(formats.SQUEUE_JOBS.fields) for line in lines)
    for fixture in ("sacct.txt", "sacct_ends.txt"):
        assert parse_rows((DATA / fixture).read_text(), formats.SACCT_RECORDS)
    assert parse_rows((DATA / "workbench_jobs.txt").read_text(), formats.SACCT_WORKBENCH_JOBS)


def test_the_squeue_jobs_format_has_every_field_of_jobinfo_in_order():
    assert formats.SQUEUE_JOBS.names == tuple(f.name for f in fields(JobInfo))


def test_the_time_left_is_read_from_the_jobs_format():
    slurm = FakeSlurm().hold(RUNNING)
    assert slurm.time_left("7") == 90 * 60 and slurm.commands() == [squeue_argv("-j", "7")]
    assert FakeSlurm().time_left("7") is None and FakeSlurm(down=True).time_left("7") is None


def test_the_probe_jobs_outcome_is_read_by_field_name():
    assert outcome_argv("9")[-2:] == ["-o", formats.SACCT_OUTCOME.option]
    assert parse_outcome("CANCELLED by 0|mn5-g01|0:15\n") == ("CANCELLED", "mn5-g01", "0:15")
    assert parse_outcome("") == ("", "", "") and parse_outcome("no|such|shape|here\n") == ("", "", "")


@pytest.mark.parametrize("fixture", ["sacct.txt", "sacct_ends.txt"])
def test_core_hours_are_one_rule_for_records_and_usage(fixture):
    output = (DATA / fixture).read_text()
    records = parse_sacct(output).values()
    jobs = [row for row in parse_rows(output, formats.SACCT_RECORDS) if "." not in row["JobID"]]
    hours = (round(sum(r.core_hours for r in records), 2), round(sum(r.gpu_hours for r in records), 2))
    assert usage_hours(jobs) == hours and hours[0] > 0
