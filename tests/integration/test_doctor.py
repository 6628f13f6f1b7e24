"""Issue 23, item 4: `aifactory-site doctor`, the operator's preflight, on the mini cluster: it
passes in the demo's setup (https front, users' origins, internal TLS) with a probe job on each
partition, and names each broken assumption with its fix: a missing sudo rule, a database that
does not answer, a venv the compute nodes do not have, a `hub.connect_ip` they cannot reach,
and a login shell whose Dask scheduler would advertise an address they may not reach; and
(issue 34, hole 5) a cluster without the epilog that removes a killed job's private folder."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import HUB_USER, VENV, HubProcess

pytestmark = pytest.mark.integration

SUDOERS = Path("/etc/sudoers.d/aifactory-hub")
DASK_PROFILE = Path("/etc/profile.d/aifactory-dask.sh")


def doctor(site_file: Path) -> tuple[int, dict[str, tuple[str, str]]]:
    """Its exit code, and its table: check -> (result, detail and fix)."""
    done = subprocess.run(
        [
            str(VENV / "bin" / "aifactory-site"),
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
        "SLURM answers the hub account",
        "munge",
        "the hub's sudo rules",
        "the hub's database",
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
    assert "alice tried" in rows["the hub's sudo rules"][1]


def test_a_missing_sudo_rule_is_named_with_its_fix(demo_module_hub: HubProcess, tmp_path: Path):
    code, rows = doctor_without(SUDOERS, demo_module_hub.site_file, tmp_path)
    result, said = rows["the hub's sudo rules"]
    assert code == 1 and result == "FAILED" and "may not run sbatch" in said and "aifactory-site install" in said, rows
    assert rows["probe on gpp"][0] == "FAILED"


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
    from aifactory_workbench.hub.doctor import Doctor
    from aifactory_workbench.hub.site import load_site_config
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
