"""The spawn form: presets and fields from the user's choices, and form data back to options.

Whatever arrives (form fields, an ``opt-`` link, the REST API) goes through
:func:`coerce_options` and then the same checks: types first, then the site's rules
(jobscript.py), then what the cluster allows this user (choices.py).  The form itself
only helps; it is never trusted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2

from aifactory_workbench.slurm.choices import Choices
from aifactory_workbench.slurm.choices import cost as cost  # the spawn form's and the notebook-job dialog's
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.job_fields import JOB_FIELDS, JOB_RULES, USER_OPTIONS, JobSettings, problems
from aifactory_workbench.spawners.gallery import Entry, launch_options
from aifactory_workbench.spawners.jobscript import OptionError

#: What a preset may set: the job settings a user may choose in the spawn form (the site
#: file's form.presets are checked with the same rules as slurm.*).
PRESET_KEYS = USER_OPTIONS
TEMPLATE = Path(__file__).with_name("spawn_form.html.j2")
#: The form's script, plain JavaScript linted and unit-tested in js/ (the rules, then the page's
#: wiring); the page carries its text, so nothing more is served.
SCRIPTS = tuple(
    Path(__file__).parent / "js" / name for name in ("environments.js", "spawn-form-logic.js", "spawn-form.js")
)
#: "Your environments" (js/environments.js), which the home page carries too.
ENVIRONMENTS_SCRIPT = SCRIPTS[0]
_INTEGER_OPTIONS = tuple(f.name for f in JOB_FIELDS if f.kind is int)
#: Longest text any field may hold; longer input is refused before anything else looks at it.
MAX_LENGTH = 64


def _single(name: str, value: Any) -> Any:
    """Form and query values come as lists of strings: exactly one is accepted."""
    if isinstance(value, list):
        if len(value) != 1:
            raise OptionError(name, value, "a single value")
        return value[0]
    return value


def coerce_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed options from form data, query arguments or JSON; refuse what has the wrong type."""
    if not isinstance(raw, Mapping):
        raise OptionError("user_options", raw, "a mapping of option names to values")
    options: dict[str, Any] = {}
    refused: list[tuple[str, Any, str]] = []
    for name, value in raw.items():
        try:
            options[str(name)] = _typed(str(name), value)
        except OptionError as e:
            refused += e.problems
    if refused:  # named together with what breaks a rule among the others
        raise OptionError.of(refused + problems({k: v for k, v in options.items() if k in JOB_RULES}))
    return options


def _typed(name: str, value: Any) -> Any:
    value = _single(name, value)
    if isinstance(value, str) and len(value) > MAX_LENGTH:
        raise OptionError(name[:MAX_LENGTH], value[:MAX_LENGTH] + "...", f"at most {MAX_LENGTH} characters")
    if name in _INTEGER_OPTIONS:
        return _integer(name, value)
    if isinstance(value, str):
        return value
    raise OptionError(name, value, "text")


def _integer(name: str, value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        return int(value)
    raise OptionError(name, value, "a whole number")


def apply_preset(options: Mapping[str, Any], presets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The preset's settings, overridden by whatever else was asked for; ``preset`` removed."""
    options = dict(options)
    name = options.pop("preset", "")
    if not name:
        return options
    by_name = {p["name"]: p for p in presets}
    if name not in by_name:
        raise OptionError("preset", name, f"one of {', '.join(by_name) or 'none'}")
    return {k: v for k, v in by_name[name].items() if k in PRESET_KEYS} | options


def presets_for(choices: Choices, presets: Sequence[Mapping[str, Any]], site: JobSettings) -> list[dict[str, Any]]:
    """The presets this user's partitions and QoS can run (others would only be refused)."""
    usable = []
    for preset in presets:
        settings = {k: v for k, v in preset.items() if k in PRESET_KEYS}
        try:
            choices.check(replace(site, **settings))
        except OptionError:
            continue
        usable.append(dict(preset))
    return usable


def walltime_texts(choices: Choices) -> dict[str, str]:
    """Every walltime limit of the partitions and QoS, in seconds, as the form's limits say it
    (its script has no duration rule of its own)."""
    limits = [p.max_walltime for p in choices.partitions.values()] + list(choices.qos_walltime.values())
    return {str(w): duration_text(w) for w in limits if w}


def initial_values(
    site: JobSettings, remembered: Mapping[str, Any] | None, prefill: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What the fields show: a link's values, else the last settings, else the site's defaults."""
    values: dict[str, Any] = {name: getattr(site, name) for name in USER_OPTIONS} | {"preset": ""}
    for source in (remembered, prefill):
        for name, value in (source or {}).items():
            if name not in values:
                continue
            try:
                values |= coerce_options({name: value})
            except OptionError:
                continue  # a value of the wrong type is not shown back; the default stands
    return values


def render_form(
    choices: Choices,
    presets: Sequence[Mapping[str, Any]],
    values: Mapping[str, Any],
    estimate_url: str,
    from_link: bool = False,
    entry: Entry | None = None,
    environments_url: str = "",
    help_url: str = "",
) -> str:
    """The form's fields, one per job field (slurm/job_fields.py); ``from_link``: an ``opt-``
    link filled them, and the user confirms; ``entry``: the gallery entry being launched (its
    resources, adapted to ``choices``, are in ``values``; one banner says what was adapted, never
    a second one for the link); ``environments_url``: where the script asks for the kernels
    and the user's environments (none: no such block), ``help_url`` the help on them."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True)
    data = {
        "choices": choices.as_data() | {"walltime_text": walltime_texts(choices)},
        "presets": list(presets),
        "estimate_url": estimate_url,
        "environments_url": environments_url,
        "help_url": help_url,
        "fields": [f.name for f in JOB_FIELDS],
    }
    return env.from_string(TEMPLATE.read_text()).render(
        fields=JOB_FIELDS,
        choices=choices,
        presets=presets,
        values=values,
        from_link=from_link,
        entry=entry,
        adapted=launch_options(entry, choices).text if entry is not None else "",
        environments=bool(environments_url),
        # </script> cannot end the block: "<" is escaped inside the JSON.
        data_json=json.dumps(data).replace("<", "\\u003c"),
        script=page_script(SCRIPTS),
    )


def page_script(paths: Sequence[Path]) -> str:
    """The text of the script files, for one inline <script>: none may end the block early."""
    text = "\n".join(path.read_text() for path in paths)
    if "</script" in text.lower() or "<!--" in text:
        raise ValueError(f"{', '.join(p.name for p in paths)}: '</script' or '<!--' would break the page")
    return text
