"""Issue 37, item 5: the job engine runs without JupyterHub. Importing it loaded JupyterHub
(704 modules, about a second) through spawners/messages.py, whose ``SpawnException`` only the
hub's side makes; the engine reads the words alone."""

import json
import subprocess
import sys

import aifactory_workbench.spawners.job_engine as engine

#: What the hub runs on and the engine must not need: JupyterHub, batchspawner, their web server.
HUB_PACKAGES = {"jupyterhub", "batchspawner", "tornado"}


def modules_loaded_by(module: str) -> tuple[str, list[str]]:
    """The file ``module`` is read from and every module loaded, in a fresh interpreter."""
    probe = f"import json, sys, {module} as m; print(json.dumps([m.__file__, sorted(sys.modules)]))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    found, modules = json.loads(run.stdout)
    return found, modules


def test_importing_the_engine_loads_no_jupyterhub_module():
    found, modules = modules_loaded_by("aifactory_workbench.spawners.job_engine")
    assert found == engine.__file__, "the fresh interpreter must import the code under test"
    assert "aifactory_workbench.spawners.messages" in modules  # its words, still from the one place
    assert sorted(m for m in modules if m.split(".")[0] in HUB_PACKAGES) == []


def test_the_hubs_side_still_gets_jupyterhubs_spawn_exception():
    from jupyterhub.spawner import SpawnException

    from aifactory_workbench.spawners.messages import options_refused, spawn_exception

    error = spawn_exception("50% of the nodes are down", reason="busy", status_code=503)
    assert isinstance(error, SpawnException) and (error.reason, error.status_code) == ("busy", 503)
    assert error.jupyterhub_message == "50% of the nodes are down" and error.log_message == "50%% of the nodes are down"
    assert isinstance(options_refused("cpus: 0"), SpawnException)
