"""Issue 24, item 1: one table of job fields (slurm/job_fields.py), and everything that names job
settings derived from it. Each test takes every row, so a new row is covered as it is added;
``constraint`` is the row added this way, tried from each place a user or a site sets it."""

import re
from dataclasses import fields

import pytest
import yaml

from aifactory_workbench.hub.site import DEFAULTS_FILE, SiteConfigError, SlurmSettings, load_site_config
from aifactory_workbench.lab import batch
from aifactory_workbench.slurm.job_fields import JOB_FIELDS, USER_OPTIONS, JobSettings, sbatch_options
from aifactory_workbench.spawners.form import PRESET_KEYS, apply_preset, coerce_options, initial_values, render_form
from aifactory_workbench.spawners.jobscript import OptionError, apply_options
from aifactory_workbench.spawners.spawner import JOB_SETTING_TRAITS, WorkbenchSpawner

from .defaults import JOB, site_file
from .fakes import choices_for


def test_every_row_is_a_setting_a_site_key_with_a_default_a_spawner_setting_and_a_preset_key():
    names = [f.name for f in JOB_FIELDS]
    assert [f.name for f in fields(JobSettings)] == names == list(USER_OPTIONS) == list(PRESET_KEYS)
    assert set(names) <= {f.name for f in fields(SlurmSettings)}
    assert set(names) <= set(yaml.safe_load(DEFAULTS_FILE.read_text())["slurm"]), "defaults.yaml: every default"
    traits = WorkbenchSpawner.class_traits(config=True)
    for f in JOB_FIELDS:
        assert JOB_SETTING_TRAITS[f.name] == f.trait and f.help in traits[f.trait].help, f.name


def test_every_row_is_a_field_of_the_form():
    page = render_form(choices_for(), [], initial_values(JOB, None, None), "/estimate")
    for f in JOB_FIELDS:
        assert re.search(rf'<(select|input)[^>]* id="{f.name}" name="{f.name}"', page), f.name
        assert f'<label class="form-label" for="{f.name}">{f.label}</label>' in page


def test_the_notebook_jobs_command_offers_every_row(capsys):
    with pytest.raises(SystemExit):
        batch.main(["run", "--help"])
    shown = capsys.readouterr().out
    for f in JOB_FIELDS:
        assert f"--{f.name} " in shown.replace("\n", " "), f.name


def test_each_value_becomes_its_sbatch_option_and_an_unset_one_asks_for_nothing():
    assert sbatch_options({f.name: f.unset for f in JOB_FIELDS}) == []
    full = {
        "partition": "acc",
        "account": "ehpc01",
        "qos": "normal",
        "cpus": 4,
        "memory": "8G",
        "gpus": 2,
        "walltime": "01:00:00",
        "reservation": "ws1",
        "constraint": "highmem",
    }
    assert set(full) == set(USER_OPTIONS), "a new row needs a value here"
    assert sbatch_options(full) == [
        "--partition=acc",
        "--account=ehpc01",
        "--qos=normal",
        "--cpus-per-task=4",
        "--mem=8G",
        "--gres=gpu:2",
        "--time=01:00:00",
        "--reservation=ws1",
        "--constraint=highmem",
    ]


# -- constraint, from each place it can be set -----------------------------------------------


def test_constraint_from_the_site_file_and_a_preset(tmp_path):
    text = (
        "slurm:\n  constraint: highmem\nform:\n  presets:\n    - {name: big, title: Big, constraint: 'highmem&ssd'}\n"
    )
    site = load_site_config(site_file(tmp_path, text))
    assert site.slurm.constraint == "highmem" and site.form.presets[0]["constraint"] == "highmem&ssd"
    with pytest.raises(SiteConfigError, match=r"key 'slurm.constraint': value 'high mem' is not accepted"):
        load_site_config(site_file(tmp_path, "slurm:\n  constraint: high mem\n"))
    with pytest.raises(SiteConfigError, match=r"preset 1: constraint 'a;b'"):
        load_site_config(site_file(tmp_path, "form:\n  presets:\n    - {name: x, title: X, constraint: 'a;b'}\n"))


def test_constraint_from_the_form_a_link_and_the_api():
    assert apply_options(JOB, coerce_options({"constraint": ["highmem"]})).constraint == "highmem"  # form data
    assert initial_values(JOB, None, {"constraint": ["highmem"]})["constraint"] == "highmem"  # an opt- link
    assert apply_options(JOB, coerce_options({"constraint": "highmem|ssd"})).constraint == "highmem|ssd"  # JSON
    preset = {"name": "big", "title": "Big", "constraint": "highmem"}
    assert apply_preset({"preset": "big", "cpus": 2}, [preset]) == {"constraint": "highmem", "cpus": 2}
    with pytest.raises(OptionError, match="constraint: 'highmem; rm' is not accepted"):
        apply_options(JOB, coerce_options({"constraint": "highmem; rm"}))


def test_constraint_from_the_notebook_jobs_command(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(batch, "submit", lambda nb, params, kernel, resources, slurm: asked.append(resources) or "7")
    notebook = tmp_path / "a.ipynb"
    notebook.write_text("{}")
    assert batch.main(["run", str(notebook), "--constraint", "highmem"]) == 0
    assert asked[0]["constraint"] == "highmem" and "--constraint=highmem" in batch.sbatch_argv(notebook, asked[0])
