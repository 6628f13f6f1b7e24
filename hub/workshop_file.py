"""The workshop file of ``aifactory-workshop create``: its keys, checked by the site file's own
rule mechanism (:func:`~aifactory_workbench.hub.site.rule`), every problem named with its key.

    name: climate101                 # seats are climate101-01, climate101-02, ...
    title: Climate data with Dask
    start: now                       # or 2026-11-28T09:00
    end: 2026-11-28T17:00
    seats: 20
    instructors: [instructor]        # existing users: they reach their seats' servers
    preset: workshop                 # the site preset that sizes each seat (form.presets)
    materials: /srv/courses/climate  # a git repository or a folder (optional)
    account: ""                      # an existing SLURM account; "" = a new one, named after the workshop
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from aifactory_workbench.hub.site import SiteConfig, key_problems, read_yaml, rule, unknown_key
from aifactory_workbench.slurm.values import SLURM_NAME, UNIX_USER, Rule, is_int, matches
from aifactory_workbench.spawners.seats import WORKSHOP_NAME


class WorkshopError(ValueError):
    """The workshop file or the machine is not as it must be; the message says what to change."""


def _is_time() -> Rule:
    def ok(value: Any) -> bool:
        if value == "now" or isinstance(value, datetime.datetime):
            return True
        try:
            datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return False
        return True

    return Rule(ok, "now, or a date and time such as 2026-11-28T09:00")


def _is_users() -> Rule:
    return Rule(
        lambda v: isinstance(v, list) and bool(v) and all(isinstance(u, str) and UNIX_USER.fullmatch(u) for u in v),
        "a list of Unix user names",
    )


@dataclass(frozen=True, kw_only=True)
class WorkshopKeys:
    """The keys of a workshop file as written, each with its rule (and its default, if it may be left out)."""

    name: str = rule(matches(WORKSHOP_NAME, "2 to 16 lower-case letters and digits, starting with a letter"))
    title: str = rule(
        Rule(lambda v: isinstance(v, str) and 0 < len(v) <= 80 and "<" not in v, "text of 1 to 80 characters")
    )
    start: Any = rule(_is_time(), "now")
    end: Any = rule(_is_time())
    seats: int = rule(is_int(1, 200))
    instructors: list[str] = rule(_is_users())
    preset: str = rule(
        Rule(lambda v: isinstance(v, str) and v != "", "the name of a preset in the site's form.presets"), "workshop"
    )
    materials: str = rule(Rule(lambda v: isinstance(v, str), '"" or a git repository (path or URL) or a folder'), "")
    account: str = rule(matches(SLURM_NAME, '"" or an existing SLURM account', empty=True), "")


@dataclass(frozen=True)
class WorkshopFile:
    """A workshop file, checked and resolved: times as times, the preset as the site's."""

    name: str
    title: str
    start: datetime.datetime
    end: datetime.datetime
    seats: int
    instructors: tuple[str, ...]
    preset: dict[str, Any]
    materials: str
    account: str  # "" = a new account named after the workshop


def _when(value: Any, now: datetime.datetime) -> datetime.datetime:
    if value == "now":
        return now
    moment = value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=None, second=0, microsecond=0)


def read_workshop_file(path: Path, site: SiteConfig, user_exists: Callable[[str], bool]) -> WorkshopFile:
    """The workshop file, checked whole: every problem named with its key, as the site file's are."""
    data = read_yaml(path, "workshop file", WorkshopError)
    known = [f.name for f in fields(WorkshopKeys)]
    problems = [unknown_key(str(key), known) for key in data if key not in known]
    problems += key_problems(WorkshopKeys, data)
    if not problems:
        keys = WorkshopKeys(**data)
        now = datetime.datetime.now().replace(second=0, microsecond=0)
        start, end = _when(keys.start, now), _when(keys.end, now)
        problems = _resolved_problems(keys, start, end, now, site, user_exists)
    if problems:
        raise WorkshopError(f"workshop file {path} is not valid:\n" + "\n".join(f"  - {p}" for p in problems))
    presets = {p["name"]: p for p in site.form.presets}
    return WorkshopFile(
        keys.name,
        keys.title,
        start,
        end,
        keys.seats,
        tuple(keys.instructors),
        presets[keys.preset],
        keys.materials,
        keys.account,
    )


def _resolved_problems(
    keys: WorkshopKeys,
    start: datetime.datetime,
    end: datetime.datetime,
    now: datetime.datetime,
    site: SiteConfig,
    user_exists: Callable[[str], bool],
) -> list[str]:
    """What the keys say together, or about this machine and site: the end after the start and
    now, a preset the site has, instructors who are users here."""
    problems = []
    if end <= max(start, now):
        problems.append(
            f"key 'end': value {end:%Y-%m-%dT%H:%M} is not accepted; accepted: a time after the start and after now"
        )
    presets = [p["name"] for p in site.form.presets]
    if keys.preset not in presets:
        problems.append(
            f"key 'preset': value {keys.preset!r} is not accepted; accepted: one of {', '.join(presets)} "
            "(the site's form.presets)"
        )
    problems += [
        f"key 'instructors': {u!r} is not a user of this machine" for u in keys.instructors if not user_exists(u)
    ]
    return problems
