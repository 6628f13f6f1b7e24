"""Workshops as the hub sees them: one YAML file per workshop in the registry folder, written
by ``aifactory-workshop`` (as root) and read here, so that a workshop made while the hub runs
reaches its seats' next spawn form without a restart.

A seat's spawn form offers the workshop's preset first (it names the reservation and the
account), and its job brings the workshop's materials into the seat's home before JupyterLab
starts (nbgitpuller: a later pull never overwrites what the student changed).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aifactory_workbench.slurm.values import format_duration, parse_duration

log = logging.getLogger(__name__)

#: A workshop's name; its seats are NAME-01, NAME-02, ... (Unix users).
WORKSHOP_NAME = re.compile(r"[a-z][a-z0-9]{1,15}")
#: Every seat of every workshop is also in this hub group (the culler's seat timeout covers it).
ALL_SEATS_GROUP = "workshop-seats"
#: Seconds between the hub's looks for ended workshops whose seats it still holds.
FORGET_EVERY = 30.0


def seat_name(workshop: str, number: int) -> str:
    return f"{workshop}-{number:02d}"


@dataclass(frozen=True)
class Materials:
    """A git repository the seats' jobs can read, pulled into ``~/<folder>`` at each start."""

    repo: str
    branch: str
    folder: str


@dataclass(frozen=True)
class Workshop:
    name: str
    title: str
    start: str  # ISO 8601, as SLURM's reservation has it
    end: str
    seats: tuple[str, ...]
    instructors: tuple[str, ...]
    account: str
    reservation: str
    preset: dict[str, Any] = field(default_factory=dict)  # the seats' preset (spawn form)
    materials: Materials | None = None

    @property
    def group(self) -> str:
        """The hub group of the seats; instructors may reach its servers (RBAC)."""
        return f"workshop-{self.name}"

    @property
    def instructor_role(self) -> str:
        return f"workshop-{self.name}-instructors"

    def role(self) -> dict[str, Any]:
        """The instructors' role: see, open and stop their seats' servers, and nobody else's.

        A seat's server checks a token's scopes without the hub's database, so it cannot tell
        that its owner is in the group: the role names each seat for ``access:servers`` too."""
        group = f"!group={self.group}"
        return {
            "name": self.instructor_role,
            "description": f"Instructors of workshop {self.name}: its seats' servers",
            "scopes": [
                f"access:servers{group}",
                *(f"access:servers!user={seat}" for seat in self.seats),
                f"servers{group}",
                f"read:users{group}",
                f"list:users{group}",
            ],
            "users": list(self.instructors),
        }

    def seat_preset(self, now: datetime.datetime | None = None) -> dict[str, Any]:
        """The seats' preset, its walltime ending no later than the workshop (issue 36: a seat
        of 3 h offered 1 h 50 min before the end). SLURM starts a job of a reservation only if
        it ends within it, so a longer one would wait for ever; rounded down to the minute. The
        workshop's times are the cluster's local time, as SLURM's reservation has them."""
        preset = dict(self.preset)
        asked = parse_duration(str(preset.get("walltime", "")))
        if asked is None:
            return preset
        left = datetime.datetime.fromisoformat(self.end) - (now or datetime.datetime.now())
        until_end = max(60, int(left.total_seconds()) // 60 * 60)
        if until_end < asked:
            preset["walltime"] = format_duration(until_end)
        return preset

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["seats"], data["instructors"] = list(self.seats), list(self.instructors)
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Workshop:
        materials = data.get("materials")
        return cls(
            name=data["name"],
            title=data["title"],
            start=data["start"],
            end=data["end"],
            seats=tuple(data["seats"]),
            instructors=tuple(data["instructors"]),
            account=data["account"],
            reservation=data["reservation"],
            preset=dict(data.get("preset") or {}),
            materials=Materials(**materials) if materials else None,
        )


#: Who alone may write the registry: root (aifactory-workshop, root's, writes it). The unit tests,
#: which run as any user, make their own folders the trusted ones.
REGISTRY_OWNER = 0


def registry_problem(directory: Path) -> str:
    """Why the hub must not trust this folder ("" if it may): only root may write there."""
    try:
        info = directory.stat()
    except FileNotFoundError:
        return ""  # no workshop yet
    if info.st_uid != REGISTRY_OWNER or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{directory} must belong to root and be writable by root alone"
    return ""


def write_workshop(directory: Path, workshop: Workshop) -> Path:
    """Root's side: the workshop's file, replaced whole (readers never see half of it)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    path = directory / f"{workshop.name}.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(workshop.as_data(), sort_keys=False))
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


def remove_workshop(directory: Path, name: str) -> None:
    (directory / f"{name}.yaml").unlink(missing_ok=True)


@dataclass(frozen=True)
class Ended:
    """A workshop that ended (``NAME.ended`` in the registry, root's): the hub forgets the hub
    users of these seats that it made before ``at`` (their servers, tokens and groups), when
    told, at its start, and whenever the registry changes; the next workshop of the name starts
    afresh."""

    name: str
    seats: tuple[str, ...]
    at: str  # UTC, ISO 8601 without a zone, as JupyterHub's users' "created"

    @classmethod
    def now(cls, name: str, seats: tuple[str, ...]) -> Ended:
        at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        return cls(name=name, seats=tuple(seats), at=at.isoformat())

    def made_before(self, created: datetime.datetime | None) -> bool:
        return created is None or created < datetime.datetime.fromisoformat(self.at)


def write_ended(directory: Path, ended: Ended) -> Path:
    """Root's side: the end of a workshop, for the hub (replaced whole, as a workshop's file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ended.name}.ended"
    tmp = path.with_suffix(".ended-tmp")
    tmp.write_text(yaml.safe_dump({"name": ended.name, "seats": list(ended.seats), "at": ended.at}, sort_keys=False))
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


class Registry:
    """The workshops in the registry folder, read again when it changed (or after ``ttl`` s)."""

    def __init__(self, directory: str | Path, ttl: float = 5.0) -> None:
        self.directory = Path(directory)
        self.ttl = ttl
        self._read_at = 0.0
        self._mtime = -1.0
        self._workshops: dict[str, Workshop] = {}
        self._ended: dict[str, Ended] = {}

    def workshops(self) -> dict[str, Workshop]:
        self._refresh()
        return self._workshops

    def ended(self) -> dict[str, Ended]:
        """The workshops that ended, whose seats the hub must not keep."""
        self._refresh()
        return self._ended

    def _refresh(self) -> None:
        now = time.monotonic()
        try:
            mtime = self.directory.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime != self._mtime or now - self._read_at > self.ttl:
            problem = registry_problem(self.directory)
            if problem:
                log.error("workshop registry ignored: %s", problem)
            self._workshops = {} if problem else self._read("yaml", Workshop.from_data)
            self._ended = {} if problem else self._read("ended", lambda d: Ended(d["name"], tuple(d["seats"]), d["at"]))
            self._mtime, self._read_at = mtime, now

    def _read(self, suffix: str, parse: Any) -> dict[str, Any]:
        found = {}
        for path in sorted(self.directory.glob(f"*.{suffix}")) if self.directory.is_dir() else []:
            try:
                item = parse(yaml.safe_load(path.read_text()))
            except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
                log.error("workshop file %s ignored: %s", path, e)
                continue
            found[item.name] = item
        return found

    def seat_of(self, user: str) -> Workshop | None:
        """The workshop whose seat ``user`` is, if any."""
        return next((w for w in self.workshops().values() if user in w.seats), None)

    def led_by(self, user: str) -> list[Workshop]:
        return [w for w in self.workshops().values() if user in w.instructors]
