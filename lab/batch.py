"""``aifactory-run-notebook``: run a notebook headless as the user's own SLURM job (papermill),
from a JupyterLab terminal, a notebook cell (``!aifactory-run-notebook run ...``) or a login
shell.

    aifactory-run-notebook run analysis.ipynb -p year 2021 -p region north --cpus 4
    aifactory-run-notebook status            # every notebook job of this user: queued, running, done, failed
    aifactory-run-notebook cancel 1234       # one of this user's queued or running notebook jobs

The job runs the notebook in the kernel it names (its metadata; ``--kernel`` to choose another):
a site kernel or the user's own (``aifactory-env``), its modules and Python, and Dask workers
it starts run that Python too. It asks for the site's notebook-job resources (the site file's
form.notebook_job, which the JupyterLab job exports; outside a session, or in one started before
the site's preset was exported, the product's: 1 core, 2G for 30 minutes on gpp) unless told
otherwise, never those of the session it is started from.  The executed notebook and
its log land next to the original, named after the job: ``analysis-job1234.ipynb`` and
``analysis-job1234.log``.  A failed run names the failing cell and its error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from aifactory_workbench.job import (
    NOTEBOOK_JOB_ENV,
    NOTEBOOK_JOB_LIVE,
    NOTEBOOK_JOB_PREFIX,
    WORKER_JOB_PREFIX,
    notebook_job_outputs,
    notebook_job_state,
    notebook_of_job,
    notebook_outputs_to_open,
    notebook_state_text,
)
from aifactory_workbench.lab.kernel import kernel_specs
from aifactory_workbench.slurm.choices import Choices, ClusterRecords, choices_from, cost
from aifactory_workbench.slurm.client import Slurm, squeue_argv
from aifactory_workbench.slurm.formats import SACCT_NOTEBOOK_JOBS
from aifactory_workbench.slurm.job_fields import (
    BY_NAME,
    JOB_FIELDS,
    JobSettings,
    OptionError,
    refused_field,
    sbatch_options,
)
from aifactory_workbench.slurm.parsers import JobInfo, SlurmError, SlurmUnavailable, parse_sbatch_parsable, parse_squeue
from aifactory_workbench.slurm.pending import queued_text, start_text
from aifactory_workbench.slurm.values import user_groups

DEFAULT_KERNEL = "aifactory"


#: The product's defaults for every site key (the hub's schema checks the site file against
#: them; the lab reads this one key as data, never the hub's code).
DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "hub" / "defaults.yaml"


def preset_in(path: Path) -> dict[str, Any] | None:
    """``form.notebook_job`` of a YAML file (the product's defaults); None where the file is
    missing, unreadable, does not set it, or sets it to something the job fields' rules refuse."""
    try:
        preset = (yaml.safe_load(path.read_text()) or {}).get("form", {}).get("notebook_job")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(preset, dict) or resource_problems(preset):
        return None
    return preset


def exported_preset(text: str) -> dict[str, Any]:
    """The site's notebook-job preset as the job script exports it (JSON, checked by the hub);
    ValueError names the variable when it is not one (set by hand in the session)."""
    try:
        preset = json.loads(text)
    except ValueError:
        preset = None
    if not isinstance(preset, dict) or resource_problems(preset):
        raise ValueError(f"{NOTEBOOK_JOB_ENV}={text!r}: not the site's notebook-job preset (JSON job settings)")
    return preset


def notebook_job_defaults(env: Mapping[str, str] = os.environ, defaults: Path = DEFAULTS_FILE) -> dict[str, Any]:
    """What a notebook job asks for unless told otherwise: the site's notebook-job preset, which
    the JupyterLab job's script exports (:data:`~aifactory_workbench.job.NOTEBOOK_JOB_ENV`: the
    site file may be on the hub's host only, never read here), else (outside a session, or one
    started before it was exported) the product's in hub/defaults.yaml; never the resources of the
    session it is started from (a GPU session's notebook waited hours for a GPU node while the
    CPU nodes were idle). One value per job field (slurm/job_fields.py); a field the preset does
    not name asks SLURM for nothing. ValueError: the variable holds no preset."""
    text = env.get(NOTEBOOK_JOB_ENV)
    preset = exported_preset(text) if text is not None else preset_in(defaults) or {}
    return {f.name: f.unset for f in JOB_FIELDS} | preset


def kernel_of(notebook: Path) -> str:
    """The kernel the notebook was saved with (its metadata), or the site's default."""
    try:
        name = json.loads(notebook.read_text()).get("metadata", {}).get("kernelspec", {}).get("name", "")
    except (OSError, ValueError, AttributeError):
        name = ""
    return name or DEFAULT_KERNEL


def kernel_problems(kernel: str) -> list[str]:
    """Nothing when the kernel is one the job can start (the site's or the user's own)."""
    known = kernel_specs()
    if kernel in known:
        return []
    return [f"kernel {kernel!r} is not installed here (kernels: {', '.join(sorted(known))}); choose one with --kernel"]


def refused_values(values: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(name, value, what is accepted) for each value of a notebook job's settings that breaks its
    field's rule (a value that asks for nothing is accepted: SLURM's default applies)."""
    found = []
    for name, value in values.items():
        f = BY_NAME.get(name)
        if f and value != f.unset and not f.rule.check(value):
            found.append((name, value, f.rule.accepted))
    return found


def resource_problems(values: Mapping[str, Any]) -> list[str]:
    """What is wrong with a notebook job's settings, in the command line's words: unknown names,
    and values that break their rule (:func:`refused_values`)."""
    found = [f"--{name}: not a job setting; accepted: {', '.join(BY_NAME)}" for name in values if name not in BY_NAME]
    return found + [f"--{name} {value!r}: accepted: {accepted}" for name, value, accepted in refused_values(values)]


def typed_resources(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A page's values (text, as typed) over the defaults, one per job field and of its kind;
    OptionError names the first field whose value is not a whole number where one is asked, and
    every value its rule refuses."""
    resources = dict(defaults)
    for f in JOB_FIELDS:
        value = values.get(f.name, resources[f.name])
        if f.kind is int:
            if not (type(value) is int or (isinstance(value, str) and value.strip().isdigit())):
                raise OptionError(f.name, value, "a whole number")
            value = int(value)
        resources[f.name] = value if f.kind is int else str(value)
    refused = refused_values(resources)
    if refused:
        raise OptionError.of(refused)
    return resources


def job_settings(resources: Mapping[str, Any]) -> JobSettings:
    """A notebook job's resources (one per job field) as the rules of slurm/choices.py take them."""
    return JobSettings(**{f.name: resources[f.name] for f in JOB_FIELDS})


async def user_choices(user: str, slurm: Slurm) -> Choices:
    """What ``user`` may ask SLURM for, by the spawn form's rules (slurm/choices.py): the
    partitions open to them with their limits, their associations and QoS, asked of SLURM now."""
    parts, nodes, res, qos, found = await asyncio.gather(
        *(slurm.cluster_records(kind) for kind in ("partition", "node", "res")),
        slurm.qos_limits(),
        slurm.associations([user]),
    )
    default_account, rows = found[user]
    cluster = ClusterRecords(parts, nodes, {q["Name"]: q for q in qos}, res)
    return choices_from(cluster, user, default_account, rows, user_groups(user))


#: What an estimate hands ``sbatch --test-only``: a script of no interest, since nothing runs.
TEST_ONLY_SCRIPT = "#!/bin/bash\ntrue\n"


async def estimate(notebook: Path, resources: Mapping[str, Any], choices: Choices, slurm: Slurm) -> dict[str, Any]:
    """What the "Run as batch job" dialog shows for these (typed) resources, as the spawn form
    shows it for a session: the limits of their partition for this user (``limits``, None for a
    partition not open to them; ``partitions``: those that are), the cost if the job runs its whole
    walltime, and when SLURM would start it (``start``, ``start_text``: ``sbatch --test-only`` with
    the options a submission would have; nothing is submitted). A request beyond a limit, or one
    SLURM would refuse, is not asked about: ``refused`` names its field ("" when SLURM's refusal
    names none) and why; None otherwise. SlurmUnavailable: SLURM did not answer."""
    settings = job_settings(resources)
    answer: dict[str, Any] = {
        "limits": choices.limits(settings) if settings.partition in choices.partitions else None,
        "partitions": list(choices.partitions),
        "cost": cost(settings),
        "refused": None,
        "start": "",
        "start_text": "",
    }
    try:
        choices.check(settings)
        start, _ = await slurm.test_only(
            TEST_ONLY_SCRIPT, user="", env=os.environ, options=job_options(notebook, resources)
        )
    except OptionError as e:
        return answer | {"refused": {"field": e.field, "message": str(e)}}
    except SlurmUnavailable:
        raise
    except SlurmError as e:
        return answer | {"refused": {"field": refused_field(str(e)), "message": f"SLURM would refuse this job: {e}"}}
    return answer | {"start": start, "start_text": start_text(start)}


def job_options(notebook: Path, resources: Mapping[str, Any]) -> list[str]:
    """sbatch's options for a notebook job, as arguments (no #SBATCH line to parse: any file name is safe)."""
    return [
        f"--job-name={NOTEBOOK_JOB_PREFIX}{notebook.stem}",
        f"--chdir={notebook.parent}",
        f"--output={notebook.with_suffix('')}-job%j.log",
        "--nodes=1",
        "--ntasks=1",
        "--no-requeue",
        *sbatch_options(resources),
    ]


def sbatch_argv(notebook: Path, resources: Mapping[str, Any]) -> list[str]:
    """sbatch submitting a notebook job: its options (:func:`job_options`) as arguments."""
    return ["sbatch", "--parsable", *job_options(notebook, resources)]


def job_prelude(python: str, forget: tuple[Path, ...] = ()) -> str:
    """What a notebook job sets up first, its own and never the session's it was started from
    (sbatch passes that session's environment on, and the session may end first):

    * a temporary folder on its node, made fresh and removed when the job ends (the session's
      TMPDIR is removed when the session ends, while the job may still be queued);
    * its Dask worker jobs' name, after this job, so that the session's end does not cancel
      them, and this job cancels them when it ends, however it ends;
    * its own Dask TLS credentials (job/dask_tls.py): the session's are removed with it;
    * no note of Dask dashboards in the session's folder;
    * ``forget``: further folders of the job's, removed when it ends.
    """
    also = "".join(f" {shlex.quote(str(path))}" for path in forget)
    return f"""\
umask 077
unset AIFACTORY_DASHBOARDS
AIFW_PRIVATE=$(mktemp -d "/tmp/aifw-nb-$SLURM_JOB_ID.XXXXXXXXXX") || exit 1
export DASK_JOBQUEUE__SLURM__NAME="{WORKER_JOB_PREFIX}$SLURM_JOB_ID"
mkdir -p "$HOME/.aifactory/dask-tls" || exit 1
AIFACTORY_DASK_TLS=$(mktemp -d "$HOME/.aifactory/dask-tls/job-$SLURM_JOB_ID.XXXXXXXXXX") || exit 1
trap 'scancel --name "$DASK_JOBQUEUE__SLURM__NAME" 2>/dev/null; rm -rf "$AIFW_PRIVATE" "$AIFACTORY_DASK_TLS"{also}' EXIT
trap 'exit 143' TERM
export TMPDIR="$AIFW_PRIVATE" AIFACTORY_DASK_TLS
dask_tls=$({shlex.quote(python)} -m aifactory_workbench.job.dask_tls "$AIFACTORY_DASK_TLS") || exit 1
eval "$dask_tls"
"""


def failing_cell(executed: Path) -> str:
    """The first cell that raised, as papermill left it: its number, error and first line."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return ""
    code_cells = [c for c in cells if c.get("cell_type") == "code"]
    for number, cell in enumerate(code_cells, 1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                source = "".join(cell.get("source", "")).strip().splitlines()
                first = source[0] if source else ""
                return f"cell {number} ({first!r}): {out.get('ename')}: {out.get('evalue')}"
    return ""


def submit(
    notebook: Path, parameters: list[tuple[str, str]], kernel: str, resources: Mapping[str, Any], slurm: Slurm
) -> str:
    problems = resource_problems(resources)
    if not notebook.is_file() or notebook.suffix != ".ipynb":
        problems.insert(0, f"{notebook}: not a notebook file (.ipynb)")
    else:
        problems += kernel_problems(kernel)
    bad = [name for name, _ in parameters if not name.isidentifier()]
    problems += [f"-p {name!r}: a parameter's name is a Python name" for name in bad]
    if problems:
        raise SystemExit("aifactory-run-notebook: " + "; ".join(problems))
    notebook = notebook.resolve()
    script = batch_script(notebook, parameters, kernel, sys.executable)
    result = slurm.run_blocking(sbatch_argv(notebook, resources), stdin=script)
    return parse_sbatch_parsable(result.stdout)


def notebook_jobs_of(user: str, slurm: Slurm) -> list[dict[str, str]]:
    """This user's notebook jobs of the last 7 days, newest first, with what became of each and
    the outputs there are to open ("" for one that is not there: a job cancelled while queued
    has neither an executed notebook nor a log)."""
    rows = []
    for row in reversed(slurm.job_rows_blocking(SACCT_NOTEBOOK_JOBS.names, user=user)):
        notebook = notebook_of_job(row["JobName"], row["WorkDir"])
        if notebook is None:
            continue
        word, detail = notebook_job_state(row["State"])
        executed, log = notebook_job_outputs(notebook, row["JobID"])
        open_result, open_log = notebook_outputs_to_open(word, executed.is_file(), log.is_file())
        rows.append(
            {
                "job": row["JobID"],
                "state": word,
                "state_text": notebook_state_text(word, detail),
                "notebook": str(notebook),
                "result": str(executed) if open_result else "",
                "log": str(log) if open_log else "",
                "why": failing_cell(executed) if word == "failed" else "",
            }
        )
    return rows


def in_queue(job_ids: list[str], slurm: Slurm) -> dict[str, JobInfo]:
    """The jobs of these ids the controller still holds (squeue: one call for all); none when
    there are none to ask about, or squeue does not answer (the list is shown without it)."""
    if not job_ids:
        return {}
    try:
        return parse_squeue(slurm.run_blocking(squeue_argv("-j", ",".join(job_ids))).stdout)
    except SlurmError:
        return {}


def status(user: str, slurm: Slurm) -> list[dict[str, str]]:
    """:func:`notebook_jobs_of`, and for a queued job why it waits and when SLURM expects it to
    start (``waiting``, slurm/pending.py's words, those of the session's queued page; "" for any
    other job): squeue knows both, accounting neither."""
    rows = notebook_jobs_of(user, slurm)
    queue = in_queue([row["job"] for row in rows if row["state"] == "queued"], slurm)
    for row in rows:
        info = queue.get(row["job"])
        row["waiting"] = queued_text(info.reason, info.start_time) if row["state"] == "queued" and info else ""
    return rows


def cancel(job_id: str, user: str, slurm: Slurm) -> str:
    """Cancel one of ``user``'s own notebook jobs that is queued or running; what was done, in
    words. SystemExit names why not: not a job id, not one of the user's notebook jobs of the last
    week (a session, a Dask worker, someone else's job), or one that has already ended."""
    if not (job_id.isascii() and job_id.isdigit()):
        raise SystemExit(f"aifactory-run-notebook: {job_id!r}: not a job id (a number, as status lists it)")
    job = next((row for row in notebook_jobs_of(user, slurm) if row["job"] == job_id), None)
    if job is None:
        raise SystemExit(f"aifactory-run-notebook: job {job_id} is not one of your notebook jobs (see status)")
    if job["state"] not in NOTEBOOK_JOB_LIVE:
        raise SystemExit(f"aifactory-run-notebook: job {job_id} has already ended ({job['state_text']})")
    slurm.run_blocking(["scancel", job_id])
    return f"job {job_id} ({job['notebook']}) cancelled"


def plain_help(text: str) -> str:
    """The module's docstring as a terminal shows it: no reStructuredText ``literal`` marks."""
    return text.replace("``", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aifactory-run-notebook",
        description=plain_help(__doc__.split("\n\n")[0]),
        epilog=plain_help(__doc__.split("\n\n", 1)[1]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="submit a notebook as a SLURM job")
    run.add_argument("notebook", type=Path)
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run.add_argument("--kernel", help="default: the kernel the notebook names (its metadata)")
    try:
        here = notebook_job_defaults()
    except ValueError as e:
        parser.error(str(e))
    for f in JOB_FIELDS:
        run.add_argument(f"--{f.name}", default=here[f.name], type=f.kind, help=f"{f.help} Default: {here[f.name]!r}.")
    commands.add_parser("status", help="this user's notebook jobs: queued, running, done, cancelled or failed")
    cancel_command = commands.add_parser("cancel", help="cancel one of this user's queued or running notebook jobs")
    cancel_command.add_argument("job", help="its job id, as status lists it")
    args = parser.parse_args(argv)
    slurm = Slurm()
    try:
        if args.command == "run":
            resources = {f.name: getattr(args, f.name) for f in JOB_FIELDS}
            kernel = args.kernel or kernel_of(args.notebook)
            job_id = submit(args.notebook, [tuple(p) for p in args.parameter], kernel, resources, slurm)
            executed, log = notebook_job_outputs(args.notebook.resolve(), job_id)
            print(f"job {job_id}: {args.notebook} runs headless; result {executed}, log {log}")
        elif args.command == "cancel":
            print(cancel(args.job, os.environ.get("USER", ""), slurm))
        else:
            for row in status(os.environ.get("USER", ""), slurm):
                print(f"{row['job']:<8} {row['state_text']:<8} {row['notebook']}")
                for key in ("waiting", "result", "why", "log"):
                    if row[key]:
                        print(f"         {key}{':' if key in ('why', 'waiting') else ''} {row[key]}")
    except SlurmError as e:
        print(f"aifactory-run-notebook: SLURM refused: {e}", file=sys.stderr)
        return 1
    return 0


def batch_script(notebook: Path, parameters: list[tuple[str, str]], kernel: str, python: str) -> str:
    """The job: papermill runs the notebook; every value is shell-quoted, the output is named
    after the job once SLURM has given it its id."""
    executed = shlex.quote(str(notebook.with_suffix(""))) + '"-job$SLURM_JOB_ID.ipynb"'
    # The aifactory engine (lab/notebook_engine.py): the notebook's kernel on private Unix sockets.
    options = ["--engine", "aifactory", "--kernel", kernel, "--log-output"]
    for name, value in parameters:
        options += ["-p", name, value]
    run = f"{shlex.join([python, '-m', 'papermill', str(notebook)])} {executed} {shlex.join(options)}"
    announce = f'echo notebook {shlex.quote(str(notebook))} as job "$SLURM_JOB_ID" on "$(hostname)"'
    return f"#!/bin/bash\n{job_prelude(python)}{announce}\n{run}\n"


if __name__ == "__main__":
    sys.exit(main())
