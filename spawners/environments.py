"""A user's own environments as the spawn form and the home page show them, beside the site's
kernels: what JupyterLab will offer, and what the user's quota holds.

The hub cannot read users' homes (they are 700, and the hub is not root): it runs
``aifactory-env list --json`` as the user through sudo (``Slurm.environments``), bounded in time
and output, and parses the answer strictly here. A user can only lie about their own list;
whatever they make it print is a clear "could not be listed", never a stack trace, and an entry
that does not check out (a teammate's, in a project's shared folder) is dropped and counted alone.
The listing reads the size each build recorded, never walks an environment: it runs on the login
node, for every form and home page (reused for ``form.discovery_cache`` seconds per user).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aifactory_workbench.job.locks import human_size
from aifactory_workbench.slurm.parsers import SlurmError
from aifactory_workbench.spawners.messages import environments_not_listed, environments_unreadable

#: At most this many environments are shown (the rest are counted).
MAX_SHOWN = 100
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PROJECT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SCOPES = ("personal", "project")


@dataclass(frozen=True)
class Environment:
    name: str
    size: int | None  # bytes, as its build recorded; None: not recorded
    size_text: str
    kernel: str  # the kernel that runs it ("" when it has none)
    base: str  # the site kernel it extends
    scope: str  # personal or project
    project: str  # the project (SLURM account) whose shared folder holds it
    built: str


def _text(entry: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None, limit: int = 64) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or len(value) > limit or (value and pattern and not pattern.fullmatch(value)):
        raise ValueError(f"{key}: not a valid value")
    return value


def parse_environments(text: str) -> tuple[list[Environment], int, int]:
    """``aifactory-env list --json``'s answer: the entries whose every field checks out, how many
    did not (each is dropped on its own: a teammate's odd folder in a project's shared folder
    cannot blank the others' listing) or were counted unreadable by the listing, and how many
    more it counted than it printed; ValueError for an answer that is no listing."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError("not JSON") from e
    if not isinstance(data, dict) or not isinstance(data.get("environments"), list):
        raise ValueError("no list of environments")
    found, unreadable = [], _count(data, "unreadable")
    for entry in data["environments"]:
        try:
            found.append(_environment(entry))
        except ValueError:
            unreadable += 1
    return found, unreadable, _count(data, "more")


def _count(data: dict[str, Any], key: str) -> int:
    """A count the listing gives (0 when it gives none that could be one)."""
    value = data.get(key, 0)
    return value if type(value) is int and 0 <= value < 10**9 else 0


def _environment(entry: Any) -> Environment:
    """One entry of the listing, checked field by field; ValueError for anything else."""
    if not isinstance(entry, dict):
        raise ValueError("an environment is not an object")
    size = entry.get("size")
    if size is not None and (type(size) is not int or size < 0):
        raise ValueError("size: not a number of bytes")
    scope = _text(entry, "scope")
    if scope not in _SCOPES:
        raise ValueError(f"scope: one of {', '.join(_SCOPES)}")
    return Environment(
        name=_text(entry, "name", _NAME) or _missing("name"),
        size=size,
        size_text=human_size(size) if size is not None else "size unknown",
        kernel=_text(entry, "kernel", _NAME),
        base=_text(entry, "base", _NAME),
        scope=scope,
        project=_text(entry, "project", _PROJECT),
        built=_text(entry, "built", re.compile(r"[0-9T:Z-]+")),
    )


def _missing(key: str) -> str:
    raise ValueError(f"{key}: missing")


def site_kernels(venv: str) -> list[dict[str, str]]:
    """The site's kernels (the venv's kernelspecs), by display name: what every JupyterLab offers."""
    kernels = []
    for spec_file in sorted((Path(venv) / "share" / "jupyter" / "kernels").glob("*/kernel.json")):
        try:
            spec = json.loads(spec_file.read_text())
        except (OSError, ValueError):
            continue
        kernels.append({"name": spec_file.parent.name, "display_name": str(spec.get("display_name", ""))})
    return kernels


def listing(
    environments: list[Environment] | None, unreadable: int = 0, more: int = 0, *, problem: str = ""
) -> dict[str, Any]:
    """What the endpoint answers: the environments (None: they could not be listed, ``problem``
    says why), their total recorded size, how many more there are than are shown (``more``: those
    the listing did not print), and how many entries could not be read (``unreadable``, said in
    ``unreadable_text``)."""
    if environments is None:
        return {
            "listed": False,
            "problem": problem,
            "environments": [],
            "total": 0,
            "total_text": "",
            "more": 0,
            "unreadable": 0,
            "unreadable_text": "",
        }
    total = sum(e.size or 0 for e in environments)
    return {
        "listed": True,
        "problem": "",
        "environments": [asdict(e) for e in environments[:MAX_SHOWN]],
        "total": total,
        "total_text": human_size(total),
        "more": max(0, len(environments) - MAX_SHOWN) + more,
        "unreadable": unreadable,
        "unreadable_text": environments_unreadable(unreadable) if unreadable else "",
    }


async def list_environments(slurm: Any, user: str) -> dict[str, Any]:
    """The user's environments as :func:`listing` gives them; a failure is part of the answer."""
    try:
        return listing(*parse_environments(await slurm.environments(user)))
    except (SlurmError, ValueError) as e:
        return listing(None, problem=environments_not_listed(e))
