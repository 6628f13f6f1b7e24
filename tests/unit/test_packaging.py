"""pyproject.toml and environment.yml list the same dependencies with the same ranges; the wheel
carries the built lab extension."""

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
# conda-forge names for the pip requirements whose names differ.
CONDA_NAME = {"dask[distributed]": "dask", "torch": "pytorch", "psycopg[binary]": "psycopg"}


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"([A-Za-z0-9_.\[\]-]+)\s*(.*)", requirement).groups()
    return CONDA_NAME.get(name.lower(), name.lower()), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = dict(split(r) for r in project["dependencies"] + project["optional-dependencies"]["lab"])
    conda_deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = dict(split(d) for d in conda_deps if isinstance(d, str))
    conda.pop("python")
    conda.pop("nodejs")
    assert conda == pip


def test_key_pins_are_the_supported_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps, lab = project["dependencies"], project["optional-dependencies"]["lab"]
    assert "jupyterhub>=6.1,<7" in deps and "batchspawner>=1.3,<1.4" in deps and "jupyterlab>=4.6,<5" in lab


def test_the_hubs_install_holds_no_users_stack_and_no_test_tool():
    """Issue 35, item 2: the package alone is the hub's; the science stack is the lab extra's and
    the test tools the test extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    hub = {split(d)[0] for d in project["dependencies"]}
    users = {split(d)[0] for d in project["optional-dependencies"]["lab"]}
    tests = {split(d)[0] for d in project["optional-dependencies"]["test"]}
    assert {"jupyterlab", "pytorch", "cartopy", "scikit-learn", "pyarrow", "dask"} <= users
    assert not hub & (users | tests) and not users & tests


def test_no_dependency_is_pinned_exactly():
    """Issue 35, item 1: ranges, not exact pins (a build variant such as torch's CPU build is the
    site's index's choice, not the package's)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    every = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    assert [d for d in every if "==" in d] == []


def test_the_wheel_takes_the_lab_extension_where_its_builder_writes_it():
    # labextension/ holds the TypeScript; JupyterLab's builder writes the prebuilt extension
    # into its outputDir, which the wheel must carry to share/jupyter/labextensions/NAME.
    source = json.loads((ROOT / "labextension" / "package.json").read_text())
    built = (ROOT / "labextension" / source["jupyterlab"]["outputDir"]).resolve().relative_to(ROOT).as_posix()
    target = f"share/jupyter/labextensions/{source['name']}"
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert data_files[target] == [f"{built}/package.json"]
    assert data_files[f"{target}/static"] == [f"{built}/static/*"]


def test_the_wheel_carries_the_site_kernel_alone_and_the_demos_are_the_demos():
    """Issue 35, item 7: aifactory-climate needs the mini cluster's module, so a site that installs
    the wheel would offer a kernel that fails; the demo installs its own kernels (Makefile)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    kernels = sorted(k.rsplit("/", 1)[1] for k in data if k.startswith("share/jupyter/kernels/"))
    assert kernels == ["aifactory"]
    assert (ROOT / "cluster" / "kernels" / "aifactory-climate" / "kernel.json").is_file()
    assert "cluster/kernels/*/" in (ROOT / "Makefile").read_text()


def test_an_editable_install_runs_this_clones_code():
    """Issue 37: `make dev`'s venv has the package editable from the working tree (setuptools'
    strict mode: links to the clone's files), so the unit tests run the clone's code; `make
    install`'s venvs have the wheel's copy."""
    import importlib
    from importlib.metadata import distribution

    direct_url = json.loads(distribution("aifactory-workbench").read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        assert direct_url["url"] == ROOT.as_uri()
        for folder in ["hub", "spawners", "slurm", "job", "lab", "root"]:
            module = importlib.import_module(f"aifactory_workbench.{folder}")
            assert Path(module.__file__).resolve() == ROOT / folder / "__init__.py"
