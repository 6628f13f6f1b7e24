"""A site moving from stock batchspawner keeps its ``c.SlurmSpawner.req_*`` lines and gets
exactly those jobs; a setting this spawner cannot honour stops the hub, named."""

from __future__ import annotations

import pytest

from aifactory_workbench.spawners.spawner import REFUSED_SETTINGS
from tests.harness import HubError

from .conftest import launch, queued_jobs, sh

STOCK_LINES = """
c.SlurmSpawner.req_partition = "acc"
c.SlurmSpawner.req_nprocs = "2"
c.SlurmSpawner.req_memory = "700M"
c.SlurmSpawner.req_ngpus = "1"
c.SlurmSpawner.req_runtime = "00:20:00"
c.SlurmSpawner.req_qos = "normal"
c.SlurmSpawner.req_account = "ehpc01"
"""


@pytest.mark.slow
def test_a_stock_batchspawner_config_starts_jupyterlab_with_its_req_settings():
    hub = launch(config_lines=STOCK_LINES)
    try:
        hub.start_ready("alice")
        (job_id,) = queued_jobs("alice")
        fields = sh("squeue", "-h", "-j", job_id, "-o", "%P|%C|%m|%l|%q|%a|%b").strip()
        assert fields == "acc|2|700M|20:00|normal|ehpc01|gres:gpu:1", fields
        assert "overrides the site file's slurm.partition" in hub.log.read_text()
    finally:
        hub.shutdown()


def test_settings_that_cannot_be_honoured_stop_the_hub_each_named():
    lines = "".join(f'c.SlurmSpawner.{name} = "x"\n' for name in ("batch_script", "batch_submit_cmd", "req_srun"))
    with pytest.raises(HubError) as refused:
        launch(config_lines=lines)
    text = str(refused.value)
    assert "AI Factory Workbench will not start: the spawner's settings are not usable" in text
    for name in ("batch_script", "batch_submit_cmd", "req_srun"):
        assert f"c.SlurmSpawner.{name} cannot be honoured: {REFUSED_SETTINGS[name]}" in text
    assert "Traceback" not in text
