"""Issue 37, item 3: every SLURM command's format in the SLURM layer. What the controller and
SLURM's database say of the cluster (sinfo, sacctmgr, scontrol show), as the doctor, the extension
helper, the spawn form and aifactory-workshop ask it, is asked in a format of slurm/formats.py and
read by a parser of slurm/parsers.py; the parsers are fed here with output recorded from the mini
cluster's SLURM 22.05 (``tests/data/record.sh settings``, read only)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aifactory_workbench.slurm import formats
from aifactory_workbench.slurm.admin import SlurmAdmin
from aifactory_workbench.slurm.client import CommandResult, Slurm
from aifactory_workbench.slurm.formats import (
    SACCTMGR_ACCOUNTS,
    SACCTMGR_ASSOCIATIONS,
    SACCTMGR_QOS_LIMITS,
    SACCTMGR_QOS_NAMES,
    SACCTMGR_USERS,
    SINFO_PARTITIONS,
    sacctmgr_argv,
    sinfo_argv,
)
from aifactory_workbench.slurm.parsers import (
    SlurmError,
    parse_association_wall,
    parse_column,
    parse_default_account,
    parse_job_account,
    parse_node_address,
    parse_partition_wall,
    parse_qos_wall,
    parse_rows,
    parse_scontrol_config,
    parse_scontrol_oneliner,
    walltime_limit,
)

from .recorded_slurm import JOB_LINE, check_format

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "tests" / "data"
#: The packages outside slurm/ that ask SLURM (the folders the package-dir mapping names).
CALLERS = ("hub", "spawners", "job", "lab", "root")
HOURS = 3600


def recorded(name: str) -> str:
    return (DATA / name).read_text()


# -- the recorded outputs, each read by its parser ---------------------------------------------
def test_sinfo_lists_the_partitions():
    assert parse_column(recorded("sinfo_partitions.txt"), SINFO_PARTITIONS) == ["gpp", "acc"]
    assert sinfo_argv(SINFO_PARTITIONS) == ["sinfo", "-h", "-o", "%R"]


def test_sacctmgr_lists_the_qos_by_name():
    known = parse_column(recorded("sacctmgr_qos_names.txt"), SACCTMGR_QOS_NAMES)
    assert {"normal", "interactive", "urgent", "part_gpp", "part_acc"} <= set(known)


def test_a_qos_walltime_limit_is_read_for_that_qos_only():
    output = recorded("sacctmgr_qos_wall.txt")
    assert parse_qos_wall(output, "interactive") == 12 * HOURS
    assert parse_qos_wall(output, "normal") is None  # not in the answer: no limit known, none held
    assert parse_qos_wall("", "interactive") is None


def test_every_qos_with_its_limits():
    rows = {row["Name"]: row for row in parse_rows(recorded("sacctmgr_qos_limits.txt"), SACCTMGR_QOS_LIMITS)}
    assert walltime_limit(rows["normal"]["MaxWall"]) == 48 * HOURS
    assert walltime_limit(rows["interactive"]["MaxWall"]) == 12 * HOURS
    assert walltime_limit(rows["part_gpp"]["MaxWall"]) is None and walltime_limit("UNLIMITED") is None


def test_a_users_associations_accounts_and_default_account():
    rows = parse_rows(recorded("sacctmgr_associations.txt"), SACCTMGR_ASSOCIATIONS)
    assert {row["Account"] for row in rows} == {"ehpc01", "ehpc02"}  # the instructor's two projects
    assert all(row["QOS"] == "interactive,normal" and row["DefaultQOS"] == "normal" for row in rows)
    assert sorted(parse_column(recorded("sacctmgr_accounts.txt"), SACCTMGR_ACCOUNTS)) == ["ehpc01", "ehpc02"]
    assert parse_default_account(recorded("sacctmgr_default_account.txt")) == "ehpc01"
    assert parse_default_account("") == ""  # a user SLURM does not know
    assert {"alice", "bob", "instructor"} <= set(parse_column(recorded("sacctmgr_users.txt"), SACCTMGR_USERS))


def test_an_associations_walltime_limit_the_partitions_own_first():
    """The mini cluster's associations set no MaxWall (its one row: no partition, no limit); a
    site's may set one per partition, which goes before the account's."""
    assert parse_association_wall(recorded("sacctmgr_assoc_walls.txt"), "gpp") is None
    both = "gpp|4:00:00\n|8:00:00\n"
    assert parse_association_wall(both, "gpp") == 4 * HOURS and parse_association_wall(both, "acc") == 8 * HOURS
    assert parse_association_wall("|8:00:00\n|1-00:00:00\n", "gpp") == 8 * HOURS  # the smallest set
    with pytest.raises(SlurmError):
        parse_association_wall("gpp|4:00:00|extra\n", "gpp")


def test_a_partitions_max_time_and_its_own_qos():
    gpp, acc = recorded("scontrol_partitions.txt").splitlines()
    assert parse_partition_wall(gpp) == (48 * HOURS, "part_gpp")
    assert parse_partition_wall(acc) == (24 * HOURS, "part_acc")
    # A partition without a QoS of its own, or a limit: scontrol says QoS=N/A, MaxTime=UNLIMITED.
    plain = gpp.replace("QoS=part_gpp", "QoS=N/A").replace("MaxTime=2-00:00:00", "MaxTime=UNLIMITED")
    assert parse_partition_wall(plain) == (None, "")


def test_a_nodes_address():
    assert parse_node_address(recorded("scontrol_node.txt")) == "10.77.0.11"
    assert parse_node_address("") == ""


def test_the_controllers_configuration():
    config = parse_scontrol_config(recorded("scontrol_config.txt"))
    assert config["Epilog"] == "/opt/aifactory/libexec/aifactory-epilog"
    assert config["JobContainerType"] == "job_container/none" and config["EpilogMsgTime"] == "2000 usec"
    assert not [key for key in config if " " in key or key.startswith("Configuration data")]


def test_a_recorded_jobs_account_is_read_after_its_name():
    output = recorded("scontrol_job.txt")
    job = parse_scontrol_oneliner(output)
    assert parse_job_account(output, job["JobId"], job["JobName"]) == job["Account"] == "ehpc01"
    with pytest.raises(SlurmError, match="cannot be read"):
        parse_job_account(output, job["JobId"], "aifw-jupyterlab")  # not the site's job


def test_a_jobs_account_is_read_only_after_the_sites_job_name():
    line = JOB_LINE.format(
        job_id="7",
        name="aifw-jupyterlab",
        user="alice",
        account="ehpc01",
        qos="normal",
        time_limit="1:00:00",
        partition="gpp",
    )
    assert parse_job_account(line, "7", "aifw-jupyterlab") == "ehpc01"
    smuggled = line.replace("JobName=aifw-jupyterlab", "JobName=x Account=ehpc02 UserId=alice(1001)")
    for output, job_id in ((smuggled, "7"), (line, "8")):
        with pytest.raises(SlurmError, match="cannot be read"):
            parse_job_account(output, job_id, "aifw-jupyterlab")


# -- the formats, and who may write one ------------------------------------------------------
def test_sacctmgr_is_asked_parsable_without_a_header_in_a_format_of_slurm_formats():
    argv = sacctmgr_argv(formats.SACCTMGR_QOS_WALL, "qos", "normal")
    assert argv == ["sacctmgr", "-n", "-P", "show", "qos", "normal", "format=Name,MaxWall"]
    with pytest.raises(ValueError):
        sacctmgr_argv(SINFO_PARTITIONS, "qos")
    with pytest.raises(ValueError):
        sinfo_argv(SACCTMGR_QOS_NAMES)


@pytest.mark.parametrize(
    "argv",
    [
        ["sacctmgr", "-n", "-P", "show", "qos", "format=Name,MaxJobs"],
        ["sacctmgr", "-n", "-P", "show", "qos"],  # sacctmgr's own columns
        ["sinfo", "-h", "-o", "%P"],
        ["/usr/bin/sinfo", "-h"],
        ["squeue", "-h", "-o", "%i"],
    ],
)
def test_the_recorded_slurm_refuses_a_format_of_its_own(argv):
    with pytest.raises(AssertionError, match="format|-o"):
        check_format(argv)


def test_the_recorded_slurm_takes_every_format_of_slurm_formats_and_commands_without_one():
    for form in formats.BY_NAME.values():
        if form.command == "sacctmgr":
            check_format(sacctmgr_argv(form, "qos"))
        elif form.command == "sinfo":
            check_format(sinfo_argv(form))
    check_format(["sacctmgr", "-i", "delete", "user", "alice"])  # no table printed
    check_format(["scontrol", "show", "partition", "gpp", "-o"])


class Recorded(Slurm):
    """Answers each command with a recorded output (and checks its format); keeps what it was asked."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers, self.asked = answers, []

    def run_blocking(self, argv, stdin=None, cwd=None) -> CommandResult:
        check_format(argv)
        self.asked.append(list(argv))
        line = " ".join(argv)
        return CommandResult(list(argv), 0, next((out for key, out in self.answers.items() if key in line), ""))


def test_the_extension_helpers_limits_are_asked_in_the_slurm_layers_formats():
    gpp = recorded("scontrol_partitions.txt").splitlines()[0]
    job = JOB_LINE.format(
        job_id="7",
        name="aifw-jupyterlab",
        user="alice",
        account="ehpc01",
        qos="normal",
        time_limit="1:00:00",
        partition="gpp",
    )
    slurm = Recorded(
        {
            "show qos interactive": recorded("sacctmgr_qos_wall.txt"),
            "show partition gpp": gpp,
            "show job 7": job,
            "show assoc": recorded("sacctmgr_assoc_walls.txt"),
        }
    )
    admin = SlurmAdmin(slurm)
    assert admin.qos_max_wall("interactive") == 12 * HOURS
    assert admin.partition_max_time("gpp") == (48 * HOURS, "part_gpp")
    assert admin.job_account("7", "aifw-jupyterlab") == "ehpc01"
    assert admin.association_max_wall("alice", "ehpc01", "gpp") is None
    assert [
        "sacctmgr",
        "-n",
        "-P",
        "show",
        "assoc",
        "where",
        "user=alice",
        "account=ehpc01",
        "format=Partition,MaxWall",
    ] in slurm.asked


def test_the_workshops_accounts_and_users_are_read_in_the_slurm_layers_formats():
    slurm = Recorded(
        {
            "show account": recorded("sacctmgr_accounts.txt"),
            "show assoc": recorded("sacctmgr_accounts.txt"),
            "show user": recorded("sacctmgr_users.txt"),
        }
    )
    admin = SlurmAdmin(slurm)
    assert admin.account_exists("ehpc01") and not admin.account_exists("ehpc0")
    assert admin.associations("instructor") == ["ehpc02", "ehpc01"]
    assert {"alice", "bob", "instructor"} <= admin.users()


def written_commands(path: Path, commands: tuple[str, ...]) -> list[int]:
    """The lines where ``path`` writes one of ``commands`` itself (a list or tuple that starts with one)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in commands:
                found.append(node.lineno)
    return found


def test_only_the_slurm_layer_writes_a_command_that_takes_a_format():
    """squeue, sacct, sacctmgr and sinfo are asked through slurm/ (its formats' argv, its client's
    and admin's methods), by the hub, the spawner, the job, the lab and root's helpers alike."""
    written = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in CALLERS
        for path in (ROOT / package).rglob("*.py")
        for line in written_commands(path, ("squeue", "sacct", "sacctmgr", "sinfo"))
    ]
    assert written == [], "ask these through slurm/ (formats' sacctmgr_argv and sinfo_argv, the client, SlurmAdmin)"


def test_the_scan_finds_a_sacctmgr_command_written_by_hand(tmp_path: Path):
    (tmp_path / "x.py").write_text('argv = ["sacctmgr", "-n", "-P", "show", "qos", "format=Name"]\n')
    assert written_commands(tmp_path / "x.py", ("sacctmgr",)) == [1]


def test_every_recorded_setting_is_in_todays_formats():
    """A format changed without re-recording fails here (the fixtures are not edited by hand)."""
    for name, form in formats.BY_NAME.items():
        fixture = DATA / f"{form.command}_{name.removeprefix(form.command + '-').replace('-', '_')}.txt"
        if form.command in ("sacctmgr", "sinfo"):
            assert fixture.exists(), f"record.sh settings records no {fixture.name}"
            assert parse_rows(fixture.read_text(), form), fixture.name
