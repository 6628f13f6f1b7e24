"""Every example notebook runs top to bottom as a user, inside a SLURM job, with the site
kernel; its Dask workers are that user's SLURM jobs; its numbers match the known truth."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from climate_data import Recipe, expected_temperature

from .conftest import REPO, VENV, sh

NOTEBOOKS = REPO / "example_notebooks"
USER = "alice"


def execute(name: str) -> dict:
    """Run the notebook as USER in a SLURM job (as in a JupyterLab job); return its RESULTS."""
    work = Path(tempfile.mkdtemp(prefix="aifw-nb-", dir="/tmp"))
    # The notebook ends with what a person reads; the test adds its own last cell that hands the
    # notebook's RESULTS to this test (issue 22: the notebooks ended with a line for machines).
    copy = nbformat.read(NOTEBOOKS / name, as_version=4)
    copy.cells.append(nbformat.v4.new_code_cell('import json\nprint("AIFW-RESULTS " + json.dumps(RESULTS))'))
    nbformat.write(copy, work / name)
    shutil.chown(work, USER)
    shutil.chown(work / name, USER)
    command = [
        "sudo",
        "-u",
        USER,
        "srun",
        "--job-name=aifw-test-notebook",
        "--partition=gpp",
        "--time=00:30:00",
        "--mem=3G",
        "--cpus-per-task=1",
        f"--chdir={work}",
        f"{VENV}/bin/jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--inplace",
        "--ExecutePreprocessor.timeout=900",
        "--ExecutePreprocessor.kernel_name=aifactory",
        name,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, f"{name} failed:\n{run.stderr[-4000:]}"
    notebook = nbformat.read(work / name, as_version=4)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("AIFW-RESULTS "):
                    return json.loads(line.removeprefix("AIFW-RESULTS "))
    pytest.fail(f"{name} printed no AIFW-RESULTS line")


def no_worker_jobs_left() -> bool:
    return not [j for j in sh("squeue", "-h", "-u", USER, "-o", "%j").split() if j.startswith("aifw-dask-")]


@pytest.mark.slow
def test_climate_notebook_matches_the_recipe_with_workers_as_the_users_jobs():
    r = execute("01_climate_climatology.ipynb")
    assert len(r["worker_jobs"]) == 2
    for _job_id, user, account, name, state in r["worker_jobs"]:
        assert user == USER and account == "ehpc01" and name.startswith("aifw-dask-") and state == "RUNNING"
    recipe = Recipe(**r["recipe"])
    truth = expected_temperature(recipe).groupby("time.month").mean().mean(("lat", "lon")).values
    np.testing.assert_allclose(r["climatology_global_by_month"], truth, atol=0.05)
    assert r["climatology_max_error"] < 5 * recipe.noise_std / np.sqrt(28 * recipe.years)
    assert abs(r["trend_per_decade_mean"] - 10 * recipe.trend_per_year) < 0.05
    assert {"synthetic.zarr", "synthetic-first-year.nc"} <= set(r["files"])
    assert no_worker_jobs_left()


@pytest.mark.slow
def test_explorer_notebook_answers_like_its_widgets_would():
    r = execute("02_interactive_explorer.ipynb")
    recipe = Recipe(**r["recipe"])
    truth = float(expected_temperature(recipe).sel(lat=slice(-23.5, 23.5)).mean())
    assert abs(r["tropics_temperature_mean"] - truth) < 0.05
    assert r["tropics_months"] == 12 * recipe.years
    assert r["arctic_first_year_mean"] < r["tropics_temperature_mean"] - 20
    assert r["tropics_precipitation_mean"] > 0


@pytest.mark.slow
def test_scaling_notebook_times_each_worker_count_with_the_same_answer():
    r = execute("03_dask_scaling.ipynb")
    assert [row["workers"] for row in r["table"]] == [1, 2]
    assert all(row["seconds"] > 0 for row in r["table"])
    assert max(r["answers"]) - min(r["answers"]) < 1e-4
    assert no_worker_jobs_left()


@pytest.mark.slow
def test_ai_notebook_beats_persistence_and_not_the_noise():
    r = execute("04_ai_next_day_temperature.ipynb")
    assert r["val_mse"] < 0.8 * r["persistence_mse"], r
    assert r["val_mse"] > 0.9 * r["noise_variance"], r  # nobody predicts the noise
    assert r["val_mse"] <= r["first_epoch_mse"] + 0.05
