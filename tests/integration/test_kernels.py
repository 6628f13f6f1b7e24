"""Site kernels, kernels that load environment modules (real Lmod), and users' own kernels."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import VENV, HubProcess, run_in_terminal

USER = "alice"
KERNEL_CMD = f"{VENV}/bin/aifactory-kernel"
HOME = Path(f"/home/{USER}")
PROBE = """
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name={name!r}, startup_timeout=120)
try:
    reply = kc.execute_interactive("import os, sys; print(os.environ.get('CLIMATE_TOOLS_VERSION'), sys.executable)")
    assert reply["content"]["status"] == "ok"
finally:
    kc.stop_channels(); km.shutdown_kernel(now=True)
"""


def as_user(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["sudo", "-u", USER, *argv], capture_output=True, text=True, check=check, cwd="/tmp")


def kernel_says(name: str) -> str:
    return as_user(f"{VENV}/bin/python", "-c", PROBE.format(name=name)).stdout.strip()


def test_site_kernels_are_installed_and_ours_is_the_default():
    specs = json.loads(as_user(f"{VENV}/bin/jupyter", "kernelspec", "list", "--json").stdout)["kernelspecs"]
    assert specs["aifactory"]["spec"]["display_name"] == "Python 3 (AI Factory)"
    assert specs["aifactory-climate"]["spec"]["metadata"]["aifactory"]["modules"] == ["climate-tools/1.0"]
    config = json.loads((VENV / "etc/jupyter/jupyter_server_config.json").read_text())
    assert config["MultiKernelManager"]["default_kernel_name"] == "aifactory"


@pytest.mark.slow
def test_a_kernelspec_loads_its_modules_before_the_kernel_starts():
    assert kernel_says("aifactory-climate").split()[0] == "1.0"
    assert kernel_says("aifactory").split()[0] == "None"  # no module, no variable


@pytest.fixture
def user_kernel():
    yield "my-env"
    shutil.rmtree(HOME / ".local/share/jupyter/kernels/my-env", ignore_errors=True)


@pytest.mark.slow
def test_a_user_registers_their_environment_in_one_command(user_kernel):
    done = as_user(
        KERNEL_CMD,
        "register",
        user_kernel,
        "--python",
        f"{VENV}/bin/python",
        "--display-name",
        "My env",
        "--module",
        "climate-tools/1.0",
    )
    assert "registered" in done.stdout
    specs = json.loads(as_user(f"{VENV}/bin/jupyter", "kernelspec", "list", "--json").stdout)["kernelspecs"]
    assert specs[user_kernel]["spec"]["display_name"] == "My env"
    assert kernel_says(user_kernel).split()[0] == "1.0"


def test_registering_a_python_without_ipykernel_says_what_to_do():
    refused = as_user(KERNEL_CMD, "register", "plain", "--python", "/usr/bin/python3", check=False)
    assert (
        refused.returncode != 0 and "has no ipykernel" in refused.stderr and "pip install ipykernel" in refused.stderr
    )


def test_odd_module_and_kernel_names_are_refused():
    bad_module = as_user(KERNEL_CMD, "launch", "--module", "x;id", "--", "/bin/true", check=False)
    assert bad_module.returncode != 0 and "is not a module name" in bad_module.stderr
    bad_name = as_user(KERNEL_CMD, "register", "../x", "--python", f"{VENV}/bin/python", check=False)
    assert bad_name.returncode != 0 and "is not a kernel name" in bad_name.stderr


TUTORIAL_STACK = {
    "xarray": "xarray",
    "dask": "dask",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "netCDF4": "netCDF4",
    "h5netcdf": "h5netcdf",
    "zarr": "zarr",
    "matplotlib": "matplotlib",
    "ipywidgets": "ipywidgets",
    "cartopy": "Cartopy",
    "papermill": "papermill",
}


def test_the_site_kernel_runs_what_tutorials_import_each_pinned_in_its_lock():
    probe = (
        "import importlib, importlib.metadata as m, json\n"
        f"mods = {TUTORIAL_STACK!r}\n"
        "for mod in mods: importlib.import_module(mod)\n"
        "import dask.dataframe, dask.bag, dask.delayed, dask.array\n"
        "print(json.dumps({d: m.version(d) for d in mods.values()}))"
    )
    versions = json.loads(as_user(f"{VENV}/bin/python", "-c", probe).stdout)
    spec = json.loads((VENV / "share/jupyter/kernels/aifactory/kernel.json").read_text())
    lock = (VENV / spec["metadata"]["aifactory"]["lock"]).read_text().lower().splitlines()
    for dist, version in versions.items():
        assert f"{dist.lower()}=={version}" in lock, dist


#: The commands the documentation and the gallery page tell users to type in a JupyterLab terminal.
USERS_COMMANDS = ("aifactory-publish", "aifactory-run-notebook", "aifactory-kernel")


@pytest.mark.slow
def test_a_jupyterlab_terminal_finds_the_workbenchs_commands(clean: HubProcess):
    """Issue 22, item 2: the terminal is a login shell, whose /etc/profile set PATH afresh, and
    these were "command not found"; the user's own login files are still read."""
    hub = clean
    profile = HOME / ".profile"
    saved = profile.read_bytes() if profile.exists() else None
    as_user("sh", "-c", f"echo 'export AIFW_FROM_PROFILE=yes' >> {profile}")
    try:
        hub.start_ready(USER)
        typed = "; ".join(f"command -v {name} || echo MISSING {name}" for name in USERS_COMMANDS)
        typed += '; echo "PROFILE=$AIFW_FROM_PROFILE"'
        shown = run_in_terminal(hub, USER, hub.user_token(USER), typed, "AIFW-DONE")
    finally:
        if saved is None:
            profile.unlink(missing_ok=True)
        else:
            profile.write_bytes(saved)  # root writes into alice's own file: its owner stays hers
    for name in USERS_COMMANDS:
        assert f"\n{VENV}/bin/{name}\n" in shown, shown
    assert not [line for line in shown.splitlines() if line.startswith("MISSING ")], shown
    assert "\nPROFILE=yes\n" in shown, shown
