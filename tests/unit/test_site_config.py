"""The site file: defaults, overrides, and errors that name key, value and what is accepted."""

import os

import pytest

from aifactory_workbench.hub.site import SiteConfigError, load_defaults, load_site_config
from aifactory_workbench.hub.site_cli import main as cli_main

from .defaults import site_file


def write(tmp_path, text):
    return site_file(tmp_path, text)


def test_defaults_alone_are_valid():
    site = load_defaults()
    assert site.slurm.partition == "gpp" and site.hub.port == 8000 and site.slurm.qos == "interactive"


def test_site_values_override_defaults_and_keep_the_rest(tmp_path):
    site = load_site_config(write(tmp_path, "slurm:\n  cpus: 4\n  memory: 8G\nhub:\n  port: 9000\n"))
    assert (site.slurm.cpus, site.slurm.memory, site.hub.port) == (4, "8G", 9000)
    assert site.slurm.walltime == "02:00:00"


def test_env_variable_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AIFACTORY_SITE_CONFIG", str(write(tmp_path, "slurm:\n  partition: acc\n")))
    assert load_site_config().slurm.partition == "acc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slurm:\n  memory: 2X\n", "key 'slurm.memory': value '2X' is not accepted; accepted: a memory size"),
        ("slurm:\n  cpus: 0\n", "key 'slurm.cpus': value 0 is not accepted; accepted: an integer from 1 to 4096"),
        ("slurm:\n  cpus: true\n", "key 'slurm.cpus': value True is not accepted"),
        ("hub:\n  port: 70000\n", "key 'hub.port': value 70000 is not accepted; accepted: an integer from 1 to 65535"),
        ("slurm:\n  walltime: 2h\n", "accepted: a walltime HH:MM:SS or D-HH:MM:SS"),
        ("slurm:\n  partition: 'gpp\n#SBATCH --uid=0'\n", "key 'slurm.partition'"),
        ("slurm:\n  partiton: gpp\n", "key 'slurm.partiton': unknown key (did you mean 'slurm.partition'?)"),
        ("slurmm:\n  cpus: 1\n", "key 'slurmm': unknown key (did you mean 'slurm'?)"),
        ("hub: 3\n", "key 'hub': value 3 is not accepted; accepted: a mapping of keys"),
        ("hub:\n  admin_services: [{name: x}]\n", "accepted: a list of {name: NAME, token_file: /absolute/path}"),
        ("hub:\n  db_url: mysql://x\n", "key 'hub.db_url'"),
        ("auth:\n  oidc_username_claim: preferred_username\n", "key 'auth.oidc_username_claim'"),
        ("form:\n  alternatives_after: -1\n", "key 'form.alternatives_after': value -1 is not accepted"),
        ("form:\n  alternatives_afer: 60\n", "(did you mean 'form.alternatives_after'?)"),
    ],
)
def test_wrong_values_name_key_value_and_what_is_accepted(tmp_path, text, expected):
    with pytest.raises(SiteConfigError) as err:
        load_site_config(write(tmp_path, text))
    assert expected in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(SiteConfigError) as err:
        load_site_config(write(tmp_path, "slurm:\n  cpus: -1\n  memory: lots\n"))
    assert "slurm.cpus" in str(err.value) and "slurm.memory" in str(err.value)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(SiteConfigError, match="cannot be read"):
        load_site_config(tmp_path / "missing.yaml")
    with pytest.raises(SiteConfigError, match="not valid YAML"):
        load_site_config(write(tmp_path, "slurm: [\n"))
    with pytest.raises(SiteConfigError, match="top level must be a mapping"):
        load_site_config(write(tmp_path, "- a\n"))


def test_the_demo_site_file_is_valid():
    from pathlib import Path

    site = load_site_config(Path(__file__).parents[2] / "config" / "site.yaml")
    assert site.hub.admin_users == ["admin"]


def test_cli_check_reports_and_exits_nonzero(tmp_path, capsys):
    assert cli_main(["check", str(write(tmp_path, "slurm:\n  cpus: 2\n"))]) == 0
    assert "OK" in capsys.readouterr().out
    assert cli_main(["check", str(write(tmp_path, "slurm:\n  cpus: two\n"))]) == 1
    assert "key 'slurm.cpus': value 'two'" in capsys.readouterr().err


def test_a_wrong_preset_is_named_with_its_problem(tmp_path):
    text = (
        "form:\n  presets:\n    - {name: big, title: Big, cpus: 8}\n"
        "    - {name: Bad Name, title: x, walltime: 3h, colour: red}\n"
    )
    with pytest.raises(SiteConfigError) as e:
        load_site_config(write(tmp_path, text))
    message = str(e.value)
    assert "key 'form.presets'" in message
    assert "preset 2: name 'Bad Name': accepted: lower-case letters, digits and '-'" in message
    assert "preset 2: walltime '3h': accepted: a walltime HH:MM:SS or D-HH:MM:SS" in message
    assert "preset 2: unknown key 'colour'" in message and "preset 1" not in message


def test_a_wrong_notebook_job_preset_is_named_with_its_problem(tmp_path):
    """Issue 36, item 2: the notebook-job preset is checked as the presets' job settings are."""
    text = "form:\n  notebook_job: {cpus: 0, colour: red, walltime: '00:10:00'}\n"
    with pytest.raises(SiteConfigError) as e:
        load_site_config(write(tmp_path, text))
    message = str(e.value)
    assert "key 'form.notebook_job'" in message
    assert "cpus 0: accepted: an integer from 1 to 4096" in message
    assert "unknown key 'colour'; accepted: partition" in message
    assert load_defaults().form.notebook_job["walltime"] == "00:30:00"


def test_presets_of_a_site_replace_the_defaults(tmp_path):
    site = load_site_config(write(tmp_path, "form:\n  presets:\n    - {name: course, title: Course, cpus: 2}\n"))
    assert site.form.presets == [{"name": "course", "title": "Course", "cpus": 2}]
    assert [p["name"] for p in load_defaults().form.presets] == ["quick", "analysis", "gpu", "workshop"]


def test_the_sites_commands_lmod_and_port_range_reach_the_spawner(tmp_path):
    """Issue 35, item 7: site hooks from the site file (root's), checked, in the spawner's settings."""
    from traitlets.config import Config

    from aifactory_workbench.hub.configure import spawner_settings

    text = (
        "singleuser:\n  prologue: ['module load cuda/12.2', 'source /etc/site/job.sh']\n"
        "  lmod_init: /opt/lmod/init/profile\n  port_range: [50000, 50099]\n"
    )
    site = load_site_config(write(tmp_path, text))
    settings = {key: value for key, (value, _) in spawner_settings(site).items()}
    assert settings["prologue"] == ["module load cuda/12.2", "source /etc/site/job.sh"]
    assert settings["lmod_init"] == "/opt/lmod/init/profile" and settings["port_range"] == [50000, 50099]
    assert site.singleuser.hooks.port_range_text == "50000-50099"
    c = Config()
    c.WorkbenchSpawner.prologue = ["module load x | id"]
    c.WorkbenchSpawner.port_range = [80, 90]
    from aifactory_workbench.spawners.spawner import WorkbenchSpawner

    found = "\n".join(WorkbenchSpawner.config_problems(c))
    assert "c.WorkbenchSpawner.prologue: value 'module load x | id' is not accepted" in found, found
    assert "c.WorkbenchSpawner.port_range" in found, found


def test_the_sites_package_index_reaches_the_spawner_and_a_bad_one_is_refused(tmp_path):
    """Issue 36, item 3: the site file's environments, as uv's options, for every job."""
    from traitlets.config import Config

    from aifactory_workbench.hub.configure import spawner_settings
    from aifactory_workbench.spawners.spawner import WorkbenchSpawner

    site = load_site_config(write(tmp_path, "environments:\n  index_url: ''\n  find_links: [/srv/aifactory/wheels]\n"))
    assert spawner_settings(site)["package_index"] == (
        ["--no-index", "--find-links", "/srv/aifactory/wheels"],
        "environments",
    )
    c = Config()
    c.WorkbenchSpawner.package_index = ["--trusted-host", "x"]
    found = "\n".join(WorkbenchSpawner.config_problems(c))
    assert "c.WorkbenchSpawner.package_index: value ['--trusted-host', 'x'] is not accepted" in found, found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "singleuser:\n  prologue: ['module load x; id']\n",
            "key 'singleuser.prologue': value ['module load x; id'] is not accepted (command 1: 'module load x; id')",
        ),
        ("singleuser:\n  prologue: 'module load x'\n", "key 'singleuser.prologue': value 'module load x' is not"),
        ("singleuser:\n  prologue: ['export P=$PATH:/x']\n", "no $, quotes"),
        ("singleuser:\n  prologue: [module load x]\n  lmod_init: ''\n", "key 'singleuser.lmod_init': value '' is not"),
        ("singleuser:\n  lmod_init: lmod/profile\n", "key 'singleuser.lmod_init': value 'lmod/profile' is not"),
        ("singleuser:\n  port_range: [80, 90]\n", "key 'singleuser.port_range': value [80, 90] is not accepted"),
        ("singleuser:\n  port_range: [9000, 8000]\n", "1024 <= LOW <= HIGH <= 65535"),
        ("singleuser:\n  port_range: 50000-50100\n", "key 'singleuser.port_range'"),
        ("singleuser:\n  port_rang: [50000, 50100]\n", "(did you mean 'singleuser.port_range'?)"),
        ("singleuser:\n  prolog: []\n", "(did you mean 'singleuser.prologue'?)"),
    ],
)
def test_wrong_site_hooks_name_key_value_and_what_is_accepted(tmp_path, text, expected):
    with pytest.raises(SiteConfigError) as err:
        load_site_config(write(tmp_path, text))
    assert expected in str(err.value), str(err.value)


def test_one_reader_of_secrets_follows_no_link_and_takes_one_line(tmp_path):
    """Issue 37: two readers had two rules (one took the whole file, one its first line, one
    followed links). Every token and secret file the site names is read by read_secret."""
    from aifactory_workbench.hub.hub_client import HubClientError, read_token_file
    from aifactory_workbench.hub.site import read_secret

    good = tmp_path / "token"
    good.write_text("a" * 32 + "\n")
    assert read_secret(str(good), "hub.admin_services") == "a" * 32
    assert read_token_file(good) == "a" * 32
    link = tmp_path / "link"
    link.symlink_to(good)
    two = tmp_path / "two"
    two.write_text("a" * 32 + "\n" + "b" * 32 + "\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, said in ((link, "cannot be read"), (two, "more than one line"), (fifo, "not a regular file")):
        with pytest.raises(SiteConfigError, match=f"key 'auth.oidc_client_secret_file': .*{said}"):
            read_secret(str(path), "auth.oidc_client_secret_file")
        with pytest.raises(HubClientError, match=said):
            read_token_file(path)
