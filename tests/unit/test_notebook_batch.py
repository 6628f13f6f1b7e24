"""aifactory-run-notebook without the cluster: the job's command and options, its checks, and
how a failed run is explained."""

import json
import subprocess
from pathlib import Path

from aifactory.batch import Resources, batch_script, failing_cell, outputs, sbatch_argv


def test_any_file_name_and_parameter_stays_one_word_of_the_job(tmp_path):
    hostile = tmp_path / "$(touch pwned) `touch pwned2` it's.ipynb"
    script = batch_script(hostile, [("year", "2021; touch pwned3")], "aifactory", "/bin/echo")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"SLURM_JOB_ID": "77", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert not list(tmp_path.glob("pwned*"))
    ran = result.stdout.splitlines()[-1]
    assert ran == (f"-m papermill {hostile} {hostile.with_suffix('')}-job77.ipynb --kernel aifactory --log-output "
                   "-p year 2021; touch pwned3")  # fmt: skip


def test_sbatch_gets_the_resources_and_names_the_outputs_after_the_job(tmp_path):
    nb = tmp_path / "analysis.ipynb"
    argv = sbatch_argv(nb, Resources("gpp", "ehpc01", 4, "8G", "02:00:00"))
    assert "--job-name=aifw-nb-analysis" in argv and f"--output={tmp_path}/analysis-job%j.log" in argv
    assert {"--cpus-per-task=4", "--mem=8G", "--time=02:00:00", "--partition=gpp", "--account=ehpc01"} <= set(argv)
    assert outputs(nb, "12") == (tmp_path / "analysis-job12.ipynb", tmp_path / "analysis-job12.log")


def test_resources_default_to_the_sessions_own_and_are_checked():
    env = {"SLURM_JOB_PARTITION": "acc", "SLURM_JOB_ACCOUNT": "ehpc02", "SLURM_CPUS_PER_TASK": "8",
           "SLURM_MEM_PER_NODE": "16000"}  # fmt: skip
    assert Resources.of_this_session(env) == Resources("acc", "ehpc02", 8, "16000M", "01:00:00")
    assert Resources.of_this_session({}).problems() == []
    bad = Resources("gpp\n#SBATCH --uid=0", "", 0, "lots", "2h").problems()
    assert [p.split()[0] for p in bad] == ["--partition", "--cpus", "--memory", "--walltime"]


def test_the_failing_cell_is_named_with_its_error(tmp_path):
    executed = tmp_path / "x-job1.ipynb"
    cells = [
        {"cell_type": "markdown", "source": "# title"},
        {"cell_type": "code", "source": "x = 1", "outputs": []},
        {"cell_type": "code", "source": ["y = x / 0\n", "print(y)"],
         "outputs": [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"}]},
    ]  # fmt: skip
    executed.write_text(json.dumps({"cells": cells}))
    assert failing_cell(executed) == "cell 2 ('y = x / 0'): ZeroDivisionError: division by zero"
    assert failing_cell(Path(tmp_path / "missing.ipynb")) == ""
