"""The settings of a job that a user may choose, one row each: the one place that lists them.

Everything that names job settings comes from :data:`JOB_FIELDS`:

* the settings' type (:class:`JobSettings`, written out and tested against the table), their
  rules, and the keys a preset may set;
* the site file's ``slurm.*`` keys (``hub/site.py``; their defaults, as every default, in
  ``hub/defaults.yaml``);
* the spawner's settings that hold the site's defaults (batchspawner's ``req_*`` traits, or
  ours where batchspawner has none: ``spawners/spawner.py``);
* the spawn form's fields (``spawners/spawn_form.html.j2``) and what it may be sent (an
  ``opt-`` link, the REST API);
* the ``#SBATCH`` lines of a JupyterLab job and the options of ``aifactory-run-notebook``.

Adding a setting is one row here (and its tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aifactory_workbench.slurm.values import (
    ACCOUNT,
    CPUS,
    GPUS,
    MEMORY,
    MEMORY_SIZE,
    PARTITION,
    QOS,
    RESERVATION,
    WALLTIME,
    WALLTIME_TEXT,
    Rule,
    matches,
)

#: SLURM's node features, joined by "&" (all of them) or "|" (any of them): what
#: ``--constraint`` takes, without the brackets and counts a batch script rarely needs.
#: (Written so that the browser's pattern attribute, a JavaScript regular expression in its
#: strict "v" mode, reads it as Python does: "-" and "|" escaped inside brackets.)
CONSTRAINT_TEXT = re.compile(r"[A-Za-z0-9_.\-]+(?:[&\|][A-Za-z0-9_.\-]+)*")
CONSTRAINT = matches(CONSTRAINT_TEXT, 'node features such as highmem or highmem&ssd, or "" for any node', empty=True)


@dataclass(frozen=True)
class JobField:
    """One job setting, everywhere it appears."""

    name: str  #: the option's name: site key ``slurm.NAME``, preset key, form field, ``--NAME``
    kind: type  #: int or str
    rule: Rule
    flag: str  #: sbatch's option, written ``FLAG=VALUE`` (``{}`` in it: where the value goes)
    trait: str  #: the spawner setting holding the site's default (batchspawner's name where it has one)
    label: str  #: the form's label
    help: str  #: what it means, for the form, the spawner setting and ``--help``
    widget: str = "text"  #: "select" (the cluster's own choices), "number" or "text"
    pattern: str = ""  #: a text field's pattern in the form (the browser's hint; the hub checks the rule)
    session_env: str = ""  #: in a JupyterLab job, the variable holding this job's value (notebook jobs default to it)
    unset: Any = ""  #: the value that asks SLURM for nothing (its default applies)
    refusal: str = ""  #: what sbatch says when it refuses this setting's value (the form marks the field)

    def sbatch_option(self, value: Any) -> str:
        """The sbatch option asking for ``value``; "" where the value asks for nothing."""
        if value == self.unset or value is None:
            return ""
        return self.flag.format(value) if "{}" in self.flag else f"{self.flag}={value}"

    @property
    def optional(self) -> bool:
        """Whether the form may leave it empty (then SLURM's default applies)."""
        return self.rule.check("")


JOB_FIELDS: tuple[JobField, ...] = (
    JobField(
        "partition",
        str,
        PARTITION,
        "--partition",
        "req_partition",
        "Partition",
        "The kind of node the job runs on.",
        widget="select",
        session_env="SLURM_JOB_PARTITION",
    ),
    JobField(
        "account",
        str,
        ACCOUNT,
        "--account",
        "req_account",
        "Account",
        'The project whose hours the job uses; "" for the user\'s default account.',
        widget="select",
        session_env="SLURM_JOB_ACCOUNT",
    ),
    JobField(
        "qos",
        str,
        QOS,
        "--qos",
        "req_qos",
        "QoS",
        'Quality of service: sets the longest walltime and the queue priority; "" for the account\'s own.',
        widget="select",
    ),
    JobField(
        "cpus",
        int,
        CPUS,
        "--cpus-per-task",
        "req_nprocs",
        "Cores",
        "Cores of the job (sbatch --cpus-per-task).",
        widget="number",
        session_env="SLURM_CPUS_PER_TASK",
    ),
    JobField(
        "memory",
        str,
        MEMORY_SIZE,
        "--mem",
        "req_memory",
        "Memory",
        "Memory of the job, a size such as 512M or 8G.",
        pattern=MEMORY.pattern,
    ),
    JobField(
        "gpus",
        int,
        GPUS,
        "--gres=gpu:{}",
        "req_ngpus",
        "GPUs",
        "GPUs of the job (sbatch --gres=gpu:N); 0 for none.",
        widget="number",
        unset=0,
    ),
    JobField(
        "walltime",
        str,
        WALLTIME_TEXT,
        "--time",
        "req_runtime",
        "Walltime",
        "The longest the job runs, HH:MM:SS or D-HH:MM:SS.",
        pattern=WALLTIME.pattern,
    ),
    JobField(
        "reservation",
        str,
        RESERVATION,
        "--reservation",
        "req_reservation",
        "Reservation",
        'Nodes set aside for a course or an event the user takes part in; "" for none.',
        widget="select",
    ),
    JobField(
        "constraint",
        str,
        CONSTRAINT,
        "--constraint",
        "req_constraint",
        "Node features",
        'Node features the job needs (sbatch --constraint), such as highmem; "" for any node.',
        pattern=CONSTRAINT_TEXT.pattern,
        refusal="Invalid feature specification",
    ),
)

BY_NAME: dict[str, JobField] = {f.name: f for f in JOB_FIELDS}
#: The one rule for each job setting: the site file, the spawner's settings and every user's
#: options are checked with these.
JOB_RULES: dict[str, Rule] = {f.name: f.rule for f in JOB_FIELDS}
#: Options a user may set when starting a server, and the keys a preset may set.
USER_OPTIONS: tuple[str, ...] = tuple(BY_NAME)


@dataclass(frozen=True)
class JobSettings:
    """What a job asks SLURM for: one attribute per row of :data:`JOB_FIELDS`, in its order and of
    its ``kind`` (frozen; ``dataclasses.replace`` works). Written out for the type checker; the
    table stays the one home of the facts: ``tests/unit/test_settings_classes.py`` fails when the
    two differ."""

    partition: str
    account: str
    qos: str
    cpus: int
    memory: str
    gpus: int
    walltime: str
    reservation: str
    constraint: str


class OptionError(ValueError):
    """Requested options are not acceptable; the message names each one's field, value and
    rule (``more``: the others refused at once, so that a link with two bad values names both).
    ``field`` is the first one's field."""

    def __init__(self, name: str, value: Any, accepted: str, more: Sequence[tuple[str, Any, str]] = ()) -> None:
        self.problems = [(name, value, accepted), *more]
        super().__init__("; ".join(f"{n}: {v!r} is not accepted; allowed: {a}" for n, v, a in self.problems))
        self.field = name

    @classmethod
    def of(cls, problems: Sequence[tuple[str, Any, str]]) -> OptionError:
        (name, value, accepted), *more = problems
        return cls(name, value, accepted, more)


def problems(settings: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(name, value, accepted) for each setting that breaks its rule."""
    return [(k, v, JOB_RULES[k].accepted) for k, v in settings.items() if not JOB_RULES[k].check(v)]


def sbatch_options(settings: Mapping[str, Any] | JobSettings) -> list[str]:
    """sbatch's options for these settings (a mapping or a JobSettings), in the table's order;
    a setting left empty asks for nothing."""
    values = settings if isinstance(settings, Mapping) else {f.name: getattr(settings, f.name) for f in JOB_FIELDS}
    options = (BY_NAME[name].sbatch_option(value) for name, value in sorted(values.items(), key=_table_order))
    return [o for o in options if o]


def _table_order(item: tuple[str, Any]) -> int:
    return USER_OPTIONS.index(item[0])


def refused_field(sbatch_error: str) -> str:
    """The setting that sbatch's refusal names, or "" when it names none of them."""
    return next((f.name for f in JOB_FIELDS if f.refusal and f.refusal in sbatch_error), "")


def session_values(env: Mapping[str, str], fields: Iterable[JobField] = JOB_FIELDS) -> dict[str, Any]:
    """This JupyterLab job's own settings, as SLURM set them in its environment (those it sets)."""
    found: dict[str, Any] = {}
    for f in fields:
        text = env.get(f.session_env, "") if f.session_env else ""
        if text:
            found[f.name] = int(text) if f.kind is int and text.isdigit() else text
    return found
