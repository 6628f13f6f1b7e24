"""The site's notebook-job preset reaches notebook jobs through the JupyterLab job's script, not
through the site file: on a site whose site file lives on the hub's host only, the job read none
and asked for the product's preset instead (a setting accepted and ignored)."""

import fnmatch
import subprocess

import pytest

from aifactory_workbench.hub.configure import spawner_settings
from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.job import JOB_ENVIRONMENT, NOTEBOOK_JOB_ENV
from aifactory_workbench.lab.batch import main, notebook_job_defaults
from aifactory_workbench.spawners.jobscript import OptionError, render

from .defaults import request
from .fakes import new_spawner

SITE = (
    "hub: {public_url: 'https://hub.example.eu/'}\n"
    "form: {notebook_job: {partition: acc, cpus: 2, memory: 3G, walltime: '00:10:00'}}\n"
)


def exported(script: str) -> dict[str, str]:
    """The variables the job script's export of the preset sets, as bash sets them in the job."""
    [line] = [line for line in script.splitlines() if line.startswith(f"export {NOTEBOOK_JOB_ENV}=")]
    shown = subprocess.run(["bash", "-c", f'{line}; printf "%s" "${NOTEBOOK_JOB_ENV}"'], capture_output=True, text=True)
    return {NOTEBOOK_JOB_ENV: shown.stdout}


def test_a_site_file_on_the_hubs_host_only_reaches_the_notebook_jobs_of_its_sessions(tmp_path, monkeypatch):
    """The hub reads the site file; the compute node has none (the old way read it there, and
    fell back to the product's 1 core, 2G, 30 min on gpp)."""
    site_file = tmp_path / "hub-only" / "site.yaml"
    site_file.parent.mkdir()
    site_file.write_text(SITE)
    site = load_site_config(site_file)
    spawner = new_spawner()
    spawner.notebook_job = spawner_settings(site)["notebook_job"][0]
    script = spawner.batch_script_for(spawner.job_request(), spawner.get_env())
    site_file.unlink()  # the job's node: no site file, at the variable's path or /etc's
    monkeypatch.setenv("AIFACTORY_SITE_CONFIG", str(site_file))
    job_env = {"AIFACTORY_SITE_CONFIG": str(site_file), **exported(script)}
    theirs = notebook_job_defaults(job_env)
    assert {k: theirs[k] for k in ("partition", "cpus", "memory", "gpus", "walltime", "account")} == {
        "partition": "acc",
        "cpus": 2,
        "memory": "3G",
        "gpus": 0,
        "walltime": "00:10:00",
        "account": "",
    }
    assert not any(fnmatch.fnmatch(NOTEBOOK_JOB_ENV, kept) for kept in JOB_ENVIRONMENT), "the script sets it, not sudo"


def test_without_the_variable_a_job_asks_for_the_products_preset_and_never_reads_a_site_file(tmp_path):
    """A session started before the script exported it, or a login shell: the product's preset,
    whatever site file the node has."""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE)
    products = notebook_job_defaults({"AIFACTORY_SITE_CONFIG": str(site_file)})
    assert (products["partition"], products["cpus"], products["memory"], products["walltime"]) == (
        "gpp",
        1,
        "2G",
        "00:30:00",
    )


def test_a_preset_of_nothing_asks_slurm_for_nothing_and_a_hand_made_one_is_named(capsys):
    assert notebook_job_defaults({NOTEBOOK_JOB_ENV: "{}"})["partition"] == ""
    for wrong in ("not json", '["gpp"]', '{"cpus": "many"}', '{"nodes": 3}'):
        with pytest.raises(ValueError, match=NOTEBOOK_JOB_ENV):
            notebook_job_defaults({NOTEBOOK_JOB_ENV: wrong})


def test_the_command_line_names_a_variable_that_holds_no_preset(monkeypatch, capsys):
    monkeypatch.setenv(NOTEBOOK_JOB_ENV, '{"cpus": 0}')
    with pytest.raises(SystemExit):
        main(["run", "x.ipynb"])
    assert NOTEBOOK_JOB_ENV in capsys.readouterr().err


def test_the_script_exports_only_a_preset_whose_values_pass_their_rules():
    """The hub checked the site file; the script checks again what reaches a shell line."""
    script = render(request(), ["jupyterhub-singleuser"], [], notebook_job={"partition": "gpp", "cpus": 1})
    assert exported(script) == {NOTEBOOK_JOB_ENV: '{"cpus": 1, "partition": "gpp"}'}
    assert f"{NOTEBOOK_JOB_ENV}=" not in render(request(), ["jupyterhub-singleuser"], [])
    for wrong in ({"partition": "gpp'; touch /tmp/x; '"}, {"nodes": 2}, {"cpus": "1\nexit"}):
        with pytest.raises(OptionError, match="notebook_job"):
            render(request(), ["jupyterhub-singleuser"], [], notebook_job=wrong)
