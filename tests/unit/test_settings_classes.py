"""Issue 37, item 5: ``JobSettings`` and ``SlurmSettings`` are written out field by field, so the
type checker sees them; the job fields' table (slurm/job_fields.py) stays the one home of the
facts. These tests fail when a class and the table drift apart: a row added, removed, renamed,
moved or of another kind, or a site key whose rule is not the row's."""

from dataclasses import MISSING, FrozenInstanceError, fields
from typing import get_type_hints

import pytest
import yaml

from aifactory_workbench.hub.site import DEFAULTS_FILE, SlurmSettings
from aifactory_workbench.slurm.job_fields import JOB_FIELDS, JobSettings

#: SlurmSettings' keys that are not job settings: how jobs are named and polled, where SLURM is.
SLURM_ONLY = {"job_name": str, "startup_poll_interval": float, "bin_dir": str}


def test_job_settings_has_one_field_per_row_in_the_tables_order_and_kind():
    hints = get_type_hints(JobSettings)
    assert [(f.name, hints[f.name]) for f in fields(JobSettings)] == [(f.name, f.kind) for f in JOB_FIELDS]


def test_job_settings_takes_every_setting_and_has_no_default():
    # The table holds no default of its own (the site's are in defaults.yaml): a job names each.
    assert all(f.default is MISSING and f.default_factory is MISSING for f in fields(JobSettings))
    job = JobSettings(**{f.name: f.unset for f in JOB_FIELDS})
    with pytest.raises(FrozenInstanceError):
        job.cpus = 2


def test_slurm_settings_starts_with_the_tables_rows_their_kinds_and_rules():
    hints = get_type_hints(SlurmSettings)
    rows = fields(SlurmSettings)[: len(JOB_FIELDS)]
    assert [(f.name, hints[f.name]) for f in rows] == [(f.name, f.kind) for f in JOB_FIELDS]
    for key, row in zip(rows, JOB_FIELDS, strict=True):
        assert key.metadata["rule"] is row.rule, f"slurm.{key.name}: its rule is not the table's"
        assert key.default is MISSING, f"slurm.{key.name}: its default belongs in defaults.yaml"


def test_slurm_settings_has_nothing_else_but_its_own_keys():
    hints = get_type_hints(SlurmSettings)
    rest = fields(SlurmSettings)[len(JOB_FIELDS) :]
    assert {f.name: hints[f.name] for f in rest} == SLURM_ONLY
    assert SlurmSettings.__dataclass_params__.frozen


def test_defaults_yaml_has_a_default_for_every_slurm_key():
    defaults = yaml.safe_load(DEFAULTS_FILE.read_text())["slurm"]
    assert set(defaults) == {f.name for f in fields(SlurmSettings)}


def test_the_spawners_job_settings_are_the_tables_rows_typed_by_their_kind():
    from traitlets import Unicode

    from aifactory_workbench.spawners.spawner import Count, JobFieldSettings

    traits = JobFieldSettings.class_own_traits()
    assert [name for name in vars(JobFieldSettings) if name in traits] == [f.trait for f in JOB_FIELDS]
    assert len(traits) == len(JOB_FIELDS)
    for f in JOB_FIELDS:
        trait = traits[f.trait]
        assert type(trait) is (Count if f.kind is int else Unicode), f.trait
        assert trait.help == f"{f.help} Site file: slurm.{f.name}." and trait.metadata.get("config"), f.trait
