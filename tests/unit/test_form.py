"""Form data to options, presets, the rendered form, and the estimate's arithmetic."""

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from traitlets.config import Config

from aifactory_workbench.hub.audit import AuditLog
from aifactory_workbench.hub.configure import update_hub
from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.parsers import parse_test_only
from aifactory_workbench.spawners.estimate import start_text, summary, usage_hours, usage_since
from aifactory_workbench.spawners.form import (
    ENVIRONMENTS_SCRIPT,
    SCRIPTS,
    apply_preset,
    coerce_options,
    cost,
    initial_values,
    page_script,
    presets_for,
    render_form,
    walltime_texts,
)
from aifactory_workbench.spawners.jobscript import USER_OPTIONS, OptionError, apply_options, render

from .defaults import DEFAULTS, JOB, request, site_file
from .fakes import choices_for

PRESETS = DEFAULTS.form.presets
COMMAND = ["/opt/aifactory/venv/bin/aifactory-singleuser"]


def test_form_fields_become_typed_options():
    form = {"preset": ["gpu"], "partition": ["acc"], "cpus": ["4"], "gpus": ["1"], "walltime": ["00:30:00"]}
    assert coerce_options(form) == {"preset": "gpu", "partition": "acc", "cpus": 4, "gpus": 1, "walltime": "00:30:00"}
    assert coerce_options({"cpus": 4}) == {"cpus": 4}  # JSON from the REST API


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cpus": ["1", "2"]}, "cpus: ['1', '2'] is not accepted; allowed: a single value"),
        ({"cpus": "4 "}, "cpus: '4 ' is not accepted; allowed: a whole number"),
        ({"cpus": True}, "cpus: True is not accepted; allowed: a whole number"),
        ({"cpus": "١٢"}, "allowed: a whole number"),  # Arabic-Indic digits are digits to str.isdigit
        ({"gpus": "9999999"}, "allowed: a whole number"),
        ({"partition": None}, "partition: None is not accepted; allowed: text"),
        ({"memory": "8" * 65}, "allowed: at most 64 characters"),
    ],
)
def test_wrong_types_are_refused_by_field(raw, message):
    with pytest.raises(OptionError) as e:
        coerce_options(raw)
    assert message in str(e.value)


def test_a_link_with_several_bad_values_names_each_of_them():
    """Issue 22, item 8: ?opt-cpus=lots&opt-memory=huge&opt-walltime=8h named cpus only; fixing
    it led to the next refusal. The form still marks the first field."""
    with pytest.raises(OptionError) as e:
        coerce_options({"cpus": ["lots"], "memory": ["huge"], "walltime": ["8h"], "partition": ["gpp"]})
    message = str(e.value)
    for part in ("cpus: 'lots' is not accepted", "memory: 'huge' is not accepted", "walltime: '8h' is not accepted"):
        assert part in message, message
    assert "partition" not in message and e.value.field == "cpus"
    with pytest.raises(OptionError) as e:
        apply_options(JOB, {"memory": "huge", "walltime": "8h"})
    assert [name for name, _, _ in e.value.problems] == ["memory", "walltime"]


def test_a_preset_gives_its_settings_and_explicit_options_win():
    assert apply_preset({"preset": "gpu", "cpus": 4}, PRESETS) == {
        "partition": "acc",
        "cpus": 4,
        "memory": "8G",
        "gpus": 1,
        "walltime": "02:00:00",
    }
    assert apply_preset({"cpus": 2}, PRESETS) == {"cpus": 2}
    with pytest.raises(
        OptionError, match="preset: 'huge' is not accepted; allowed: one of quick, analysis, gpu, workshop"
    ):
        apply_preset({"preset": "huge"}, PRESETS)


def test_only_presets_the_user_can_run_are_offered():
    assert [p["name"] for p in presets_for(choices_for(), PRESETS, JOB)] == ["quick", "analysis", "gpu", "workshop"]
    no_gpu_partition = choices_for()
    no_gpu_partition.partitions.pop("acc")
    assert [p["name"] for p in presets_for(no_gpu_partition, PRESETS, JOB)] == ["quick", "analysis", "workshop"]


def test_fields_show_a_links_values_else_the_last_ones_else_the_defaults():
    assert initial_values(JOB, None, None)["cpus"] == JOB.cpus
    remembered = initial_values(JOB, {"preset": "gpu", "cpus": 20}, None)
    assert (remembered["preset"], remembered["cpus"], remembered["memory"]) == ("gpu", 20, JOB.memory)
    assert initial_values(JOB, {"cpus": 20}, {"cpus": ["4"]})["cpus"] == 4
    shown = initial_values(JOB, None, {"cpus": ["4\n#SBATCH"], "walltime": ["00:30:00"], "script": ["x"]})
    assert (shown["cpus"], shown["walltime"], "script" in shown) == (JOB.cpus, "00:30:00", False)


def test_the_form_escapes_whatever_it_shows():
    values = initial_values(JOB, None, None) | {"memory": '"><script>alert(1)</script>'}
    page = render_form(choices_for(), PRESETS, values, "/hub/api/aifactory/estimate/alice")
    assert "<script>alert(1)" not in page and "&#34;&gt;&lt;script&gt;" in page
    data = re.search(r'id="aifw-data">(.*?)</script>', page, re.S).group(1)
    assert "</" not in data


def test_the_form_carries_its_script_whole():
    """The script is spawners/js/ (linted, unit-tested by jest), its text inline in the page."""
    page = render_form(choices_for(), PRESETS, initial_values(JOB, None, None), "/estimate")
    for path in SCRIPTS:
        assert path.read_text() in page
    assert page.index("const aifwSpawnForm") < page.index("const L = aifwSpawnForm")
    # the estimate's start-sooner buttons go in a labelled group inside the live estimate
    estimate = re.search(r'id="aifw-estimate" aria-live="polite">(.*?)</div></div>', page, re.S).group(1)
    assert '<div id="aifw-alternatives" role="group" aria-label="Requests that start sooner">' in estimate
    # what holds a waiting start, as the hub words it (holds_text), is shown there too, never composed here
    assert '<div id="aifw-holds"></div>' in estimate and "$('aifw-holds').textContent = body.holds_text" in page


def test_a_script_that_would_end_its_block_early_is_refused(tmp_path):
    (tmp_path / "bad.js").write_text("const s = '</SCRIPT>';\n")
    with pytest.raises(ValueError, match="bad.js"):
        page_script([tmp_path / "bad.js"])


def test_a_preset_without_a_description_is_shown_by_its_title():
    """The site file requires name and title only (a 500 on the spawn form before)."""
    values = initial_values(JOB, None, None)
    page = render_form(choices_for(), [{"name": "seat", "title": "Seat", "cpus": 1}], values, "/estimate")
    assert 'value="seat"' in page and "<strong>Seat</strong></label>" in page


def test_cost_and_usage_arithmetic():
    from dataclasses import replace

    assert cost(replace(JOB, cpus=8, gpus=1, walltime="1-12:00:00")) == {
        "hours": 36.0,
        "core_hours": 288.0,
        "gpu_hours": 36.0,
        "core_hours_text": "288.00",
        "gpu_hours_text": "36.00",
    }
    # 3 cores for 2 h 20 min: 7 core-hours, shown "7.00" (the seat form showed 7 and 6.0: issue 37)
    assert cost(replace(JOB, cpus=3, gpus=0, walltime="02:20:00"))["core_hours_text"] == "7.00"
    rows = [
        {"JobID": "1", "ElapsedRaw": "3600", "AllocTRES": "billing=4,cpu=4,gres/gpu=1,mem=8G,node=1"},
        {"JobID": "2", "ElapsedRaw": "1800", "AllocTRES": "cpu=2,mem=1G"},
        {"JobID": "3", "ElapsedRaw": "0", "AllocTRES": ""},  # still pending
    ]
    assert usage_hours(rows) == (5.0, 1.0)
    assert usage_since(30, dt.date(2026, 11, 27)) == "2026-10-28"


def test_the_estimate_answers_the_cost_and_the_usage_as_the_form_shows_them():
    """The form renders the hub's texts (spawn-form.js): it rounds nothing itself."""
    from dataclasses import replace

    rows = [{"JobID": "1", "ElapsedRaw": "1800", "AllocTRES": "cpu=1,mem=1G"}]
    answer = summary(cost(replace(JOB, cpus=2, walltime="00:20:00")), "proj", "2026-10-28", rows, "")
    assert (answer["cost"]["core_hours_text"], answer["cost"]["gpu_hours_text"]) == ("0.67", "0.00")
    assert answer["usage"] == {
        "account": "proj",
        "since": "2026-10-28",
        "core_hours": 0.5,
        "gpu_hours": 0.0,
        "core_hours_text": "0.50",
        "gpu_hours_text": "0.00",
    }


def test_the_form_says_every_walltime_limit_in_the_hubs_words():
    choices = choices_for()
    texts = walltime_texts(choices)
    limits = {p.max_walltime for p in choices.partitions.values()} | set(choices.qos_walltime.values())
    assert set(texts) == {str(w) for w in limits if w} and len(texts) >= 2
    assert all(texts[str(w)] == duration_text(w) for w in limits if w)
    page = render_form(choices, PRESETS, initial_values(JOB, None, None), "/estimate")
    data = json.loads(re.search(r'id="aifw-data">(.*?)</script>', page, re.S).group(1))
    assert data["choices"]["walltime_text"] == texts


def test_start_estimates_in_words():
    line = "sbatch: Job 203 to start at 2026-11-27T06:15:55 using 4 processors on nodes mn5-n01 in partition acc"
    assert parse_test_only(line) == ("2026-11-27T06:15:55", "acc")
    now = dt.datetime(2026, 11, 27, 6, 15)
    assert start_text("2026-11-27T06:15:10", now) == "SLURM expects it to start now."
    assert start_text("2026-11-27T08:15:00", now) == "SLURM expects it to start at 2026-11-27 08:15 (in about 2 h)."
    # The wait in words as every page words a duration (slurm/display.py): half a minute up.
    assert start_text("2026-11-27T08:17:30", now).endswith("(in about 2 h 3 min).")  # 122.5 min


hostile = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["acc\n#SBATCH --uid=0", "gpp; id", "$(id)", "`id`", "%s%n", "{{7*7}}", "🚀", "-1", "0"]),
    st.integers(),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from((*USER_OPTIONS, "preset", "script")), value=hostile)
def test_every_path_refuses_hostile_values_or_renders_a_well_formed_script(name, value):
    """The spawner's whole chain, minus SLURM: types, preset, site rules, the cluster's limits."""
    try:
        options = apply_preset(coerce_options({"preset": "quick", name: value}), PRESETS)
        checked = request(options)
        choices_for().check(checked.settings)
    except OptionError as e:
        assert name in str(e) or "user_options" in str(e)
        return
    for line in render(checked, COMMAND, ["PATH"]).splitlines():
        if line.startswith("#SBATCH"):
            assert re.fullmatch(r"#SBATCH --[a-z-]+=[A-Za-z0-9_.,:%/@-]+|#SBATCH --no-requeue", line), line


def test_the_form_lists_the_kernels_and_your_environments_after_it_is_shown():
    """ "Your environments" is asked by the script once the form is on screen (the listing runs
    as the user): the page holds only where to ask and the help to link."""
    url = "/hub/api/aifactory/environments/alice"
    page = render_form(
        choices_for(), PRESETS, initial_values(JOB, None, None), "/estimate", environments_url=url, help_url="/h"
    )
    data = json.loads(re.search(r'id="aifw-data">(.*?)</script>', page, re.S).group(1))
    assert (data["environments_url"], data["help_url"]) == (url, "/h")
    assert 'id="aifw-environments"' in page and "Listing your environments" in page
    assert page.index("const aifwEnvironments") < page.index("aifwEnvironments.show(")
    assert 'id="aifw-environments"' not in render_form(choices_for(), PRESETS, initial_values(JOB, None, None), "/e")


def test_the_home_page_carries_the_same_environments_script(tmp_path):
    c = Config()
    # The hub's state (its database) in the test's folder, not the demo's /var/lib/aifactory.
    site = load_site_config(site_file(tmp_path, f"hub:\n  state_dir: {tmp_path}\n"))
    update_hub(c, site, AuditLog(tmp_path / "audit.log"))
    assert c.JupyterHub.template_vars["environments_script"] == ENVIRONMENTS_SCRIPT.read_text()
    home = (Path(__file__).parents[2] / "hub" / "home.html").read_text()
    assert home.index("environments_script") < home.index('include "js/home.js"')
    # Its Extend button says the step as the session card says its time left: one rule.
    assert "duration_text(step * 60)" in home and "step // 60" not in home
    # Every page gets the template variables as JupyterHub hands them over: a callable one is
    # called with the page's user, None on the login page (duration_text itself, put there as it
    # was, made every hub page a 500).
    namespace = {k: v(None) if callable(v) else v for k, v in c.JupyterHub.template_vars.items()}
    assert namespace["duration_text"] is duration_text and namespace["duration_text"](1800) == "30 min"
