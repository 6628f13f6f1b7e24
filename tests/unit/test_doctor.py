"""Issue 35, item 6: the doctor's checks without SLURM or the hub's account: each answer a
command would give is played, and the check must name what is wrong and the fix that works
(tests/integration/test_doctor.py plays the same on the mini cluster)."""

from __future__ import annotations

import errno
import grp
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from aifactory_workbench.hub import doctor as doctors
from aifactory_workbench.slurm.client import slurm_command
from tests.unit.doctors import Commands, doctor


def test_a_qos_slurm_does_not_have_is_named_with_its_site_key(tmp_path: Path):
    made = doctor(tmp_path, "slurm: {qos: no-such-qos}", **{"show qos": (0, "normal\ninteractive\nurgent\n", "")})
    check = made.site_qos()
    assert check.ok is False and "slurm.qos: no-such-qos" in check.detail, check
    assert "interactive" in check.fix and str(made.site.source) in check.fix
    assert doctor(tmp_path, **{"show qos": (0, "normal\ninteractive\n", "")}).site_qos().ok is True


def test_the_probe_jobs_ask_for_the_sites_qos_and_an_account_of_the_test_user(tmp_path: Path):
    """A real spawn sends slurm.qos and the account: so does the probe, and sbatch's refusal is
    named with the key to change."""
    made = doctor(
        tmp_path,
        "slurm: {qos: no-such-qos}\nform: {presets: []}\ndask: {partition: gpp}",
        "alice",
        DefaultAccount=(0, "ehpc01\n", ""),
        mktemp=(0, "/home/alice/.aifactory-doctor-x\n", ""),
        sbatch=(1, "", "sbatch: error: Batch job submission failed: Invalid qos specification"),
    )
    checks = list(made.probes())
    scripts = [stdin for _, argv, stdin in made.run_as.calls if slurm_command("sbatch") in argv]
    assert scripts and "#SBATCH --qos=no-such-qos\n" in scripts[0] and "#SBATCH --account=ehpc01\n" in scripts[0]
    (probe,) = [c for c in checks if c.name == "probe on gpp"]
    assert probe.ok is False and "Invalid qos" in probe.detail and "--qos=no-such-qos" in probe.detail, probe
    assert "slurm.qos" in probe.fix and "sacctmgr show assoc user=alice" in probe.fix


def test_a_venv_the_hub_account_cannot_run_is_named_and_the_database_is_not_blamed(tmp_path: Path):
    made = doctor(tmp_path)
    made.hub_python = str(tmp_path / "venv" / "bin" / "python")
    made.run_as = Commands(
        {made.hub_python: (126, "", f"runuser: failed to execute {made.hub_python}: Permission denied")}
    )
    venv, database = made.hub_venv(), made.database()
    assert venv.ok is False and "Permission denied" in venv.detail and "chmod" in venv.fix, venv
    assert database.ok is None and "start the database" not in database.fix, database


def test_a_users_group_that_hub_allowed_groups_does_not_name_says_which_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`install --users-group aifactory-users` with hub.allowed_groups [aifactory-researchers]:
    installing again as before would change nothing."""
    listed = (
        "User aifactory-hub may run the following commands on mn5-login:\n"
        "    (%aifactory-users, !%aifactory-admins) NOPASSWD: /usr/bin/sbatch --parsable, "
        "/opt/aifactory/libexec/aifactory-env-list --json\n"
        "    (root) NOPASSWD: /opt/aifactory/libexec/aifactory-check-password, "
        "/opt/aifactory/libexec/aifactory-extend-job\n"
    )

    def sudo(argv: list[str], **_: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(argv, 0, "Sudo version 1.9.13p3\n" if argv == ["sudo", "-V"] else listed, "")

    monkeypatch.setattr(subprocess, "run", sudo)
    check = doctor(tmp_path, "hub: {allowed_groups: [aifactory-researchers]}").sudo_rules()
    assert check.ok is False and "aifactory-users" in check.detail and "aifactory-researchers" in check.detail, check
    assert "add it to hub.allowed_groups" in check.fix and "--users-group aifactory-researchers" in check.fix


def test_a_proxy_that_is_not_there_is_named(tmp_path: Path):
    missing = tmp_path / "no-such-proxy"
    check = doctor(tmp_path, f"hub: {{proxy_command: {missing}}}").proxy()
    assert check.ok is False and f"{missing} is not there" in check.detail and "hub.proxy_command" in check.fix


def test_pg_dump_is_needed_for_postgresql_only(tmp_path: Path):
    postgres = doctor(tmp_path, "hub: {db_url: 'postgresql://aifactory-hub@/jupyterhub?host=/run/pg'}")
    postgres.unit_path = str(tmp_path)
    check = postgres.pg_dump()
    assert check.ok is False and "no pg_dump" in check.detail and "postgresql-client" in check.fix, check
    assert doctor(tmp_path).pg_dump().ok is None


def test_a_port_below_1024_the_hub_account_may_not_bind_is_named(tmp_path: Path):
    made = doctor(tmp_path, "hub: {port: 443}", getaddrinfo=(0, f"{errno.EACCES}\n0\n{errno.EADDRINUSE}\n", ""))
    made.venv_runs = True
    check = made.ports()
    assert check.ok is False and "hub.port 443 is below 1024" in check.detail, check
    assert "1024 or above" in check.fix and "AmbientCapabilities=CAP_NET_BIND_SERVICE" in check.fix
    made.run_as = Commands({"getaddrinfo": (0, f"0\n{errno.EADDRINUSE}\n0\n", "")})
    assert made.ports().ok is True


def test_homes_others_may_read_are_named(tmp_path: Path):
    def home(name: str, mode: int) -> SimpleNamespace:
        path = tmp_path / name
        path.mkdir()
        path.chmod(mode)
        return SimpleNamespace(pw_name=name, pw_dir=str(path))

    own = grp.getgrgid(os.stat(tmp_path).st_gid)  # the test's own group: whoever runs it
    homes = [home("closed", 0o700), home("listed", 0o755), home("passable", 0o701), home("grouped", 0o750)]
    found = " ".join(doctors.open_homes(homes))
    assert "listed (" in found and "passable (" in found and "grouped (" in found and "closed" not in found, found
    if not own.gr_mem:  # a private group of the user's own name, no other member: not shared
        assert doctors.open_homes([home(own.gr_name, 0o750)]) == []


def test_the_public_names_resolve_and_with_per_user_origins_any_name_under_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Issue 35, item 6: no check of wildcard DNS. Per-user origins (alice.HOST) need a record
    for *.HOST: without it each spawn succeeds and no browser reaches its JupyterLab. The
    resolver is this table (a test sends nothing to a DNS server)."""
    table: dict[str, list[str]] = {"workbench.example.org": ["192.0.2.10"]}
    monkeypatch.setattr(doctors, "addresses_of", lambda host: table.get(host, []))
    origins = "hub: {public_url: 'https://workbench.example.org/', user_subdomains: true}"
    check = doctor(tmp_path, origins).public_names()
    assert check.ok is False and ".workbench.example.org: no address here" in check.detail, check
    assert "*.workbench.example.org" in check.fix
    plain = doctor(tmp_path, "hub: {public_url: 'https://workbench.example.org/', user_subdomains: false}")
    assert plain.public_names().ok is True
    # A wildcard record to another machine than the hub's name: alice's origin is not the proxy.
    monkeypatch.setattr(doctors, "addresses_of", lambda host: table.get(host, ["192.0.2.11"]))
    assert "different addresses" in doctor(tmp_path, origins).public_names().detail
    monkeypatch.setattr(doctors, "addresses_of", lambda host: ["192.0.2.10"])
    assert doctor(tmp_path, origins).public_names().ok is True


def test_the_demos_names_under_localhost_need_no_record(tmp_path: Path):
    check = doctor(tmp_path, "hub: {public_url: 'https://hub.localhost:8000/', user_subdomains: true}").public_names()
    assert check.ok is True and "RFC 6761" in check.detail
    assert doctors.addresses_of("localhost")  # /etc/hosts: no DNS server asked


def test_the_probe_reaches_a_node_where_the_proxy_does_at_slurms_node_address(tmp_path: Path):
    """The proxy routes to SLURM's NodeAddr (the hub asks scontrol), which may differ from what the
    node's own name resolves to on the node: the doctor tries the proxy's address."""
    made = doctor(
        tmp_path, **{"show node": (0, "NodeName=mn5-g01 Arch=x86_64 NodeAddr=10.9.9.9 NodeHostName=mn5-g01\n", "")}
    )
    assert made.node_address("mn5-g01", "10.77.0.11") == "10.9.9.9"
    assert doctor(tmp_path, **{"show node": (1, "", "Invalid node name")}).node_address("mn5-g01", "10.77.0.11") == (
        "10.77.0.11"
    )


def test_a_refused_sudo_rule_names_whom_its_own_pair_says_not_what_its_path_ends_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Issue 37, item 3: each command the hub runs through sudo comes paired with whom it runs as
    (Slurm.sudo_rules_allow); the doctor's refusal names that, whatever the command is called: a
    root helper of a new name is root's, a user's command ending in check-password is the user's."""
    listed = (
        "User aifactory-hub may run the following commands on mn5-login:\n"
        "    (%aifactory-users, !%aifactory-admins) NOPASSWD: /usr/bin/sbatch --parsable\n"
        "    (root) NOPASSWD: /opt/aifactory/libexec/aifactory-check-password\n"
    )

    def sudo(argv: list[str], **_: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(argv, 0, "Sudo version 1.9.13p3\n" if argv == ["sudo", "-V"] else listed, "")

    monkeypatch.setattr(subprocess, "run", sudo)
    root_helper = ["/opt/aifactory/libexec/aifactory-new-helper", "user"]
    users_lookalike = ["/usr/local/bin/site-check-password", "--json"]
    asked: list[tuple[str, list[str]]] = []

    def refuse(hub_user: str, whom: str, member: str, argv: list[str]) -> bool:
        asked.append((whom, argv))
        return argv not in (root_helper, users_lookalike)

    monkeypatch.setattr(doctors, "sudo_allows", refuse)
    for pairs, who in (
        ([("user", ["/usr/bin/sbatch", "--parsable"]), ("root", root_helper)], "as root"),
        ([("user", users_lookalike)], "as alice"),
    ):
        made = doctor(tmp_path, probe_user="alice")
        monkeypatch.setattr(made, "sudo_commands", lambda pairs=pairs: pairs)
        check = made.sudo_rules()
        assert check.ok is False and check.detail.endswith(who), check
        assert asked[-len(pairs) :] == pairs  # sudo was asked about each command as its own pair's whom


def test_the_probe_reads_its_job_id_as_the_slurm_layer_reads_sbatchs(tmp_path: Path):
    """Issue 37, item 3: sbatch --parsable may print a warning before the id (and ;CLUSTER after
    it): the probe job's id is read by slurm/parsers.py, and the job it submitted is cancelled."""
    made = doctor(
        tmp_path,
        "form: {presets: []}\ndask: {partition: gpp}",
        "alice",
        DefaultAccount=(0, "ehpc01\n", ""),
        mktemp=(0, "/home/alice/.aifactory-doctor-x\n", ""),
        sbatch=(0, "sbatch: warning: can't honor --ntasks-per-node set to 1\n4711;mn5mini\n", ""),
        **{"report.json": (1, "", "cat: report.json: No such file or directory")},
        **{"State,NodeList,ExitCode": (0, "FAILED|mn5-g01|1:0\n", "")},
    )
    (probe,) = [c for c in made.probes() if c.name.startswith("probe on gpp")]
    assert probe.ok is False and "job 4711 ended FAILED" in probe.detail, probe
    assert ["scancel", "4711"] in [argv for _, argv, _ in made.run_as.calls]
