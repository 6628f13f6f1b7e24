"""Issue 23, item 4: `aifactory-site doctor`, the operator's preflight, on the mini cluster: it
passes in the demo's setup (https front, users' origins, internal TLS) with a probe job on each
partition, and names each broken assumption with its fix: a missing sudo rule, a database that
does not answer, a venv the compute nodes do not have, a `hub.connect_ip` they cannot reach,
and a login shell whose Dask scheduler would advertise an address they may not reach; and
(issue 34, hole 5) a cluster without the epilog that removes a killed job's private folder.
Issue 35, item 6: a QoS SLURM does not have (the probes ask for the site's QoS and an account of
the test user, as a spawn does), a venv the hub's account cannot run (named before the
database is blamed), a users' group that hub.allowed_groups does not name, a proxy that is not
there or the hub's account cannot reach, pg_dump missing for a PostgreSQL database and a port
below 1024; each names the fix that works."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aifactory_workbench.hub.doctor import Check, Doctor
from aifactory_workbench.hub.site import load_site_config
from tests.harness import HUB_USER, HUB_VENV, LIBEXEC, HubProcess, sh

pytestmark = pytest.mark.integration

SUDOERS = Path("/etc/sudoers.d/aifactory-hub")
DASK_PROFILE = Path("/etc/profile.d/aifactory-dask.sh")


def doctor(site_file: Path) -> tuple[int, dict[str, tuple[str, str]]]:
    """Its exit code, and its table: check -> (result, detail and fix)."""
    done = subprocess.run(
        [
            str(HUB_VENV / "bin" / "aifactory-site"),
            "doctor",
            str(site_file),
            "--probe-user",
            "alice",
            "--probe-timeout",
            "90",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in done.stderr, done.stderr
    rows = {}
    for line in done.stdout.splitlines()[1:]:
        parts = [p for p in line.split("  ") if p.strip()]
        if len(parts) >= 3:
            rows[parts[0].strip()] = (parts[1].strip(), "  ".join(parts[2:]).strip())
    return done.returncode, rows


def doctor_without(installed: Path, site_file: Path, tmp_path: Path) -> tuple[int, dict[str, tuple[str, str]]]:
    """The doctor while a file that the install wrote is missing (put back after)."""
    aside = tmp_path / installed.name
    shutil.move(installed, aside)
    try:
        return doctor(site_file)
    finally:
        shutil.move(aside, installed)


def variant(hub: HubProcess, tmp_path: Path, section: str = "hub", **changes) -> Path:
    site = yaml.safe_load(hub.site_file.read_text())
    site.setdefault(section, {}).update(changes)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    return path


def test_the_doctor_passes_in_the_demos_setup_with_a_probe_on_each_partition(demo_module_hub: HubProcess):
    code, rows = doctor(demo_module_hub.site_file)
    failed = {name: row for name, row in rows.items() if row[0] == "FAILED"}
    assert code == 0 and not failed, failed
    for check in (
        "the hub's venv",
        "SLURM answers the hub account",
        "munge",
        "the hub's sudo rules",
        "the site's QoS",
        "the hub's database",
        "the proxy",
        "the hub's ports",
        "users' homes",
        "the https certificate",
        "the hub's internal certificate",
        "users' Dask config",
        "SLURM's epilog",
    ):
        assert rows[check][0] == "ok", (check, rows.get(check))
    for partition, nodes in (("gpp", ("mn5-g01", "mn5-g02")), ("acc", ("mn5-a01",))):
        probed = [name for name in rows if name.startswith(f"probe on {partition}: ")]
        (node,) = {n for n in nodes if any(n in name for name in probed)}
        for what in (
            f"the venv on {node}",
            f"{node} reaches the hub",
            f"the proxy reaches {node}",
            f"{node}'s clock",
            f"{node} reaches Dask on this machine",
        ):
            assert rows[f"probe on {partition}: {what}"][0] == "ok", (what, rows)
        # Reached where the proxy routes to: SLURM's NodeAddr, not what the node calls itself.
        address = re.search(r"NodeAddr=(\S+)", sh("scontrol", "show", "node", node, "-o")).group(1)
        assert rows[f"probe on {partition}: the proxy reaches {node}"][1].startswith(f"{address}:"), rows
    assert rows["the public names (DNS)"][0] == "ok" and "RFC 6761" in rows["the public names (DNS)"][1]
    assert "alice tried" in rows["the hub's sudo rules"][1]
    ran = [row[1] for name, row in rows.items() if name.startswith("probe on gpp: job ")]
    assert ran and "account ehpc01, QoS interactive" in ran[0], rows


def test_a_missing_sudo_rule_is_named_with_its_fix(demo_module_hub: HubProcess, tmp_path: Path):
    code, rows = doctor_without(SUDOERS, demo_module_hub.site_file, tmp_path)
    result, said = rows["the hub's sudo rules"]
    assert code == 1 and result == "FAILED" and "may run nothing as the site's users" in said, rows
    assert "aifactory-site install" in said and rows["probe on gpp"][0] == "FAILED"


def test_a_rule_that_does_not_allow_what_the_hub_runs_is_named_without_a_probe_user(
    demo_module_hub: HubProcess, tmp_path: Path
):
    """Issue 35, item 4: rules that name sbatch and say nothing that sudo matches were "ok"
    without a test user, since the listing names sbatch. An older sudo reads ``^--parsable$`` as
    text; this sudo reads it as the pattern it is, so the rule is played as the older sudo reads
    it, escaped (``\\^--parsable\\$``: those eleven characters)."""
    rules = SUDOERS.read_text()
    try:
        SUDOERS.write_text(rules.replace("/usr/bin/sbatch --parsable,", "/usr/bin/sbatch \\^--parsable\\$,"))
        check = Doctor(load_site_config(str(demo_module_hub.site_file)), HUB_USER).sudo_rules()
    finally:
        SUDOERS.write_text(rules)
    assert check.ok is False and "sudo does not let aifactory-hub run /usr/bin/sbatch --parsable as" in check.detail
    assert "aifactory-site install" in check.fix


def test_a_site_whose_slurm_is_elsewhere_than_the_rules_name_is_named(demo_module_hub: HubProcess, tmp_path: Path):
    """slurm.bin_dir moved (SLURM installed in /opt/slurm/bin) without installing again: the
    rules name /usr/bin/sbatch, which the hub no longer runs."""
    site = variant(demo_module_hub, tmp_path, "slurm", bin_dir="/opt/slurm/bin")
    check = Doctor(load_site_config(str(site)), HUB_USER).sudo_rules()
    assert check.ok is False and "/opt/slurm/bin/sbatch --parsable" in check.detail, check
    assert Doctor(load_site_config(str(demo_module_hub.site_file)), HUB_USER).sudo_rules().ok is True


def test_a_command_the_rules_allow_that_another_account_may_change_is_named(
    demo_module_hub: HubProcess, tmp_path: Path
):
    """Root's helpers run as root: one that the hub's account (or anyone but root) may rewrite,
    or whose interpreter it may, is root for whoever can."""
    helper = LIBEXEC / "aifactory-cancel"
    mode = helper.stat().st_mode & 0o7777
    helper.chmod(mode | 0o002)
    try:
        check = Doctor(load_site_config(str(demo_module_hub.site_file)), HUB_USER).sudo_rules()
    finally:
        helper.chmod(mode)
    assert check.ok is False and f"{helper}" in check.detail and "root's alone" in check.detail, check


def test_a_database_that_does_not_answer_is_named(demo_module_hub: HubProcess, tmp_path: Path):
    site = variant(demo_module_hub, tmp_path, db_url=f"postgresql://aifactory-hub@/jupyterhub?host={tmp_path}")
    code, rows = doctor(site)
    result, said = rows["the hub's database"]
    assert code == 1 and result == "FAILED" and str(tmp_path) in said and "start the database" in said, rows


def test_a_connect_ip_the_nodes_cannot_reach_is_named(demo_module_hub: HubProcess, tmp_path: Path):
    """127.0.0.1 is each node's own loopback, where no hub listens."""
    code, rows = doctor(variant(demo_module_hub, tmp_path, connect_ip="127.0.0.1"))
    unreachable = {name: row for name, row in rows.items() if name.endswith("reaches the hub")}
    assert code == 1 and unreachable and all(row[0] == "FAILED" for row in unreachable.values()), rows
    assert all("hub.connect_ip must be an address" in row[1] for row in unreachable.values())


def test_a_venv_the_nodes_do_not_have_is_named_on_each_node(demo_module_hub: HubProcess, tmp_path: Path):
    """The probe's Python is the site venv's: where a node lacks it, the job ends with 127."""
    code, rows = doctor(variant(demo_module_hub, tmp_path, "singleuser", venv="/opt/aifactory/no-such-venv"))
    missing = {name: row for name, row in rows.items() if ": the venv on " in name}
    assert code == 1 and {name.split(":")[0] for name in missing} == {"probe on gpp", "probe on acc"}, rows
    assert all(
        row[0] == "FAILED" and "/opt/aifactory/no-such-venv/bin/python cannot run there" in row[1]
        for row in missing.values()
    )


def test_a_login_shell_without_the_sites_dask_address_is_named(demo_module_hub: HubProcess, tmp_path: Path):
    """Issue 23, item 5: without the profile script, Dask's scheduler in a login shell advertises
    the route to the internet (192.0.2.2 here), which workers on compute nodes cannot reach."""
    code, rows = doctor_without(DASK_PROFILE, demo_module_hub.site_file, tmp_path)
    result, said = rows["Dask from a login shell"]
    assert (
        code == 1
        and result == "FAILED"
        and "gives Dask's scheduler no address" in said
        and "aifactory-site install" in said
    )


def test_a_cluster_whose_jobs_leave_their_keys_is_named(demo_module_hub: HubProcess, monkeypatch: pytest.MonkeyPatch):
    """Issue 34, hole 5: without SLURM's epilog (or one that runs the workbench's), a job SLURM
    kills leaves its private folder, with its TLS key, in the node's /tmp. The doctor reads the
    cluster's own config (scontrol show config, as the hub's account), here with its Epilog line
    changed as a site's would be."""
    from aifactory_workbench.slurm.client import Slurm

    doctor = Doctor(load_site_config(str(demo_module_hub.site_file)), HUB_USER)
    assert doctor.epilog().ok is True, doctor.epilog()
    real = Slurm.run_blocking
    for epilog, said in (("(null)", "names no Epilog"), ("/etc/slurm/site-epilog.sh", "does not run")):

        def shown(self, argv, stdin=None, cwd=None, epilog=epilog):
            done = real(self, argv, stdin, cwd)
            lines = [f"Epilog = {epilog}" if line.startswith("Epilog ") else line for line in done.stdout.splitlines()]
            return dataclasses.replace(done, stdout="\n".join(lines))

        monkeypatch.setattr(Slurm, "run_blocking", shown)
        check = doctor.epilog()
        assert check.ok is False and said in check.detail, check
        assert "Epilog=/opt/aifactory/libexec/aifactory-epilog" in check.fix


def checks_of(site_file: Path, **settings) -> dict[str, Check]:
    """The doctor's checks (no probe jobs), as the Python API runs them, with ``settings`` of
    its own changed (the hub's Python, the unit's PATH)."""
    made = Doctor(load_site_config(str(site_file)), HUB_USER)
    for key, value in settings.items():
        setattr(made, key, value)
    return {check.name: check for check in made.checks()}


def test_a_qos_slurm_does_not_have_is_named_and_the_probes_ask_for_it(demo_module_hub: HubProcess, tmp_path: Path):
    """Issue 35, item 6: the probes sent neither QoS nor account, so slurm.qos: no-such-qos
    passed every check while every spawn would be refused."""
    code, rows = doctor(variant(demo_module_hub, tmp_path, "slurm", qos="no-such-qos"))
    result, said = rows["the site's QoS"]
    assert code == 1 and result == "FAILED" and "slurm.qos: no-such-qos" in said and "interactive" in said, rows
    result, said = rows["probe on gpp"]
    assert result == "FAILED" and "--qos=no-such-qos" in said and "--account=ehpc01" in said, rows
    assert "slurm.qos" in said and "sacctmgr show assoc user=alice" in said


def test_a_venv_the_hub_account_cannot_run_is_named_before_the_database(demo_module_hub: HubProcess, tmp_path: Path):
    """The venv's Python behind a folder of root's alone: that is what is named, not the
    database (which the hub's account asks through that Python)."""
    hidden = tmp_path / "hidden"
    (hidden / "bin").mkdir(parents=True)
    (hidden / "bin" / "python").symlink_to(HUB_VENV / "bin" / "python")
    hidden.chmod(0o700)
    checks = checks_of(demo_module_hub.site_file, hub_python=str(hidden / "bin" / "python"))
    venv = checks["the hub's venv"]
    assert venv.ok is False and "Permission denied" in venv.detail, venv
    assert venv.fix.startswith(f"let {HUB_USER} pass the folders above it: chmod o+x") and str(hidden) in venv.fix
    assert checks["the hub's database"].ok is None and checks["the hub's ports"].ok is None, checks


def test_a_users_group_that_hub_allowed_groups_does_not_name_says_which_to_change(
    demo_module_hub: HubProcess, tmp_path: Path
):
    """The sudo rules that `aifactory-site install --users-group aifactory-users` wrote, with a
    site file whose hub.allowed_groups names another group: installing again as before loops."""
    site = variant(demo_module_hub, tmp_path, allowed_groups=["aifactory-researchers"])
    check = Doctor(load_site_config(str(site)), HUB_USER).sudo_rules()
    assert check.ok is False and "aifactory-users" in check.detail and "aifactory-researchers" in check.detail, check
    assert "add it to hub.allowed_groups" in check.fix and "--users-group aifactory-researchers" in check.fix


def test_a_proxy_the_hub_account_cannot_run_is_named(demo_module_hub: HubProcess, tmp_path: Path):
    def proxy_check(command: Path):
        site = load_site_config(str(variant(demo_module_hub, tmp_path, proxy_command=str(command))))
        return Doctor(site, HUB_USER).proxy()

    missing = tmp_path / "no-such-proxy"
    check = proxy_check(missing)
    assert check.ok is False and f"{missing} is not there" in check.detail and "hub.proxy_command" in check.fix, check
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    hidden = private / "configurable-http-proxy"
    hidden.write_text("#!/bin/sh\necho 5.0.0\n")
    hidden.chmod(0o755)
    check = proxy_check(hidden)
    assert check.ok is False and f"{HUB_USER} cannot reach {hidden}" in check.detail, check
    assert check.fix.startswith("as root: chmod o+x ") and check.fix.endswith(str(private)), check


def test_pg_dump_missing_for_a_postgresql_database_is_named(demo_module_hub: HubProcess, tmp_path: Path):
    """With PostgreSQL, the upgrade every start runs backs the database up with pg_dump, found
    on the unit's PATH (here one without it)."""
    site = variant(
        demo_module_hub, tmp_path, db_url="postgresql://aifactory-hub@/jupyterhub?host=/run/aifactory-postgres"
    )
    made = Doctor(load_site_config(str(site)), HUB_USER)
    assert made.pg_dump().ok is True, made.pg_dump()
    made.unit_path = str(tmp_path)
    found = made.pg_dump()
    assert found.ok is False and "no pg_dump on the hub unit's PATH" in found.detail, found
    assert "apt install postgresql-client" in found.fix


def test_a_port_below_1024_the_hub_account_may_not_bind_is_named(demo_module_hub: HubProcess, tmp_path: Path):
    checks = checks_of(variant(demo_module_hub, tmp_path, port=443))
    ports = checks["the hub's ports"]
    assert ports.ok is False and "hub.port 443 is below 1024" in ports.detail, ports
    assert "1024 or above" in ports.fix and "AmbientCapabilities=CAP_NET_BIND_SERVICE" in ports.fix
