"""Start-time choices: when SLURM expects a request to wait, smaller requests it may start sooner.

:func:`candidates` is pure: from a checked request's settings and what the user may run
(:class:`~aifactory_workbench.slurm.choices.Choices`), the option sets worth asking
``sbatch --test-only`` about, in a fixed order (fewer GPUs, fewer cores, a shorter walltime that
backfill may start sooner, another partition that can run it, a reservation of the user's), each
one that :meth:`Choices.check` accepts, at most :data:`MAX_CANDIDATES` (with the request's own,
at most four test-only calls for one form state).  Where the partition's nodes say what is short
now (:mod:`~aifactory_workbench.spawners.room`), the request cut to what a node has free comes
first and, when memory is short, the same with half the memory: a wait for memory gets a choice
of less memory, never under the site's default memory.

:class:`StartCache` is the hub's one memory of what SLURM answered for a user's form state (on
the spawners' shared ``services``): the same state asked again within ``ttl`` costs no call,
and one user's test-only calls run one at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from aifactory_workbench.slurm.choices import Choices
from aifactory_workbench.slurm.job_fields import JobSettings
from aifactory_workbench.slurm.values import format_duration, format_memory, parse_duration, parse_memory_mb
from aifactory_workbench.spawners.jobscript import OptionError
from aifactory_workbench.spawners.room import NodeRoom, fits_now, short_everywhere

#: Candidates tested besides the request itself (so at most 4 test-only calls per form state).
MAX_CANDIDATES = 3
#: A start within this many seconds of now is "now".
NOW_SECONDS = 30
HOUR = 3600
#: The least memory a choice of less memory asks when the caller names no floor (MB).
MIN_MEMORY_MB = 1024


@dataclass(frozen=True)
class Candidate:
    """Options to apply (the request's own with ``change`` over them) and what they ask, in words."""

    options: dict[str, Any]
    what: str


def _gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def _cores(n: int) -> str:
    return f"{n} core" if n == 1 else f"{n} cores"


def _hours(seconds: int) -> str:
    return f"{seconds // HOUR} h" if seconds % HOUR == 0 else f"{max(1, seconds // 60)} min"


def _what(s: JobSettings, change: Mapping[str, Any]) -> str:
    """A changed size in words: its GPUs, its cores (when changed, or no GPUs), its memory (when changed)."""
    gpus, cpus = change.get("gpus", s.gpus), change.get("cpus", s.cpus)
    parts = [_gpus(gpus)] if gpus else []
    if "cpus" in change or not gpus:
        parts.append(_cores(cpus))
    if "memory" in change:
        parts.append(f"{change['memory']} memory")
    return ", ".join(parts)


def _room_changes(s: JobSettings, found: Sequence[NodeRoom], floor_mb: int) -> list[dict[str, Any]]:
    """What the nodes' room suggests: the request cut to what one node has free now and, when
    memory is short on every node, the same with half the memory (never under ``floor_mb``)."""
    cut: dict[str, Any] = dict(fits_now(s, list(found), floor_mb))
    changes = [cut] if cut else []
    half = (parse_memory_mb(s.memory) or 0) // 2
    below = parse_memory_mb(str(cut.get("memory", s.memory))) or 0
    if "memory" in short_everywhere(s, list(found)) and floor_mb <= half < below:
        changes.append(cut | {"memory": format_memory(half)})
    return changes


def _changes(
    s: JobSettings, choices: Choices, found: Sequence[NodeRoom] = (), floor_mb: int = MIN_MEMORY_MB
) -> list[tuple[dict[str, Any], str]]:
    """Every change worth trying, in order, with what the changed request asks in words: what the
    nodes' room suggests (``found``), then the changes tried whatever the nodes have."""
    return [(change, _what(s, change)) for change in _room_changes(s, found, floor_mb)] + _usual_changes(s, choices)


def _usual_changes(s: JobSettings, choices: Choices) -> list[tuple[dict[str, Any], str]]:
    """Fewer GPUs or cores, 1 h, another partition, a reservation, each with the request's size in words."""
    size = _gpus(s.gpus) if s.gpus else _cores(s.cpus)
    found: list[tuple[dict[str, Any], str]] = []
    for gpus in (s.gpus // 2, 1):
        if 0 < gpus < s.gpus:
            found.append(({"gpus": gpus}, _gpus(gpus)))
    if s.cpus > 1:
        found.append(({"cpus": s.cpus // 2}, _what(s, {"cpus": s.cpus // 2})))
    wall = parse_duration(s.walltime) or 0
    shorter = HOUR if wall > HOUR else wall // 2
    if shorter >= 600:
        found.append(({"walltime": format_duration(shorter)}, f"{size} for {_hours(shorter)}"))
    for name in choices.partitions:
        if name != s.partition:
            found.append(({"partition": name}, f"{size} on {name}"))
    if not s.reservation:
        for name in choices.reservations:
            found.append(({"reservation": name}, f"{size} in reservation {name}"))
    return found


def candidates(
    options: Mapping[str, Any],
    settings: JobSettings,
    choices: Choices,
    found_rooms: Sequence[NodeRoom] = (),
    floor_mb: int = MIN_MEMORY_MB,
) -> list[Candidate]:
    """Up to :data:`MAX_CANDIDATES` option sets, each the request with one change that the user may
    run (``options``: the request's user_options as posted; ``settings``: what they came to;
    ``found_rooms``: the room of the partition's nodes now (:func:`~aifactory_workbench.spawners.room.rooms`),
    empty when unknown; ``floor_mb``: the least memory a choice of less memory asks)."""
    found: list[Candidate] = []
    seen = {_key(asdict(settings))}
    for change, what in _changes(settings, choices, found_rooms, floor_mb):
        changed = replace(settings, **change)
        try:
            choices.check(changed)
        except OptionError:
            continue
        if _key(asdict(changed)) in seen:
            continue
        seen.add(_key(asdict(changed)))
        found.append(Candidate({**options, **change}, what))
        if len(found) == MAX_CANDIDATES:
            break
    return found


def _key(values: Mapping[str, Any]) -> str:
    return repr(sorted(values.items()))


def form_state(user: str, settings: JobSettings) -> str:
    """The cache key of a form state: the user and every setting the request came to."""
    return f"{user}:{_key(asdict(settings))}"


def _when(start: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(start)
    except ValueError:
        return None


def wait_seconds(start: str, now: dt.datetime | None = None) -> float | None:
    """Seconds from now until SLURM's expected start (a local ISO time); None if unreadable."""
    when = _when(start)
    return None if when is None else (when - (now or dt.datetime.now())).total_seconds()


def sooner(start: str, than: str) -> bool:
    """Whether ``start`` is earlier than ``than`` by more than :data:`NOW_SECONDS`."""
    a, b = _when(start), _when(than)
    return a is not None and b is not None and (b - a).total_seconds() > NOW_SECONDS


def when_text(start: str, now: dt.datetime | None = None) -> str:
    """``now``, ``about 13:05`` (today) or ``about 2026-12-05 13:05``."""
    when = _when(start)
    if when is None:
        return start
    now = now or dt.datetime.now()
    if (when - now).total_seconds() <= NOW_SECONDS:
        return "now"
    return f"about {when:%H:%M}" if when.date() == now.date() else f"about {when:%Y-%m-%d %H:%M}"


def offered(tested: list[tuple[Candidate, str]], start: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The tested candidates that start sooner than the request (``start``), soonest first, as the
    estimate's answer lists them: the options to apply, what they ask in words, SLURM's start
    (``start_text``: "now", "about 13:05") and a label ("1 GPU: now")."""
    better = sorted(((c, s) for c, s in tested if sooner(s, start)), key=lambda cs: cs[1])
    return [
        {
            "options": c.options,
            "what": c.what,
            "start": s,
            "start_text": when_text(s, now),
            "label": f"{c.what}: {when_text(s, now)}",
        }
        for c, s in better
    ]


class StartCache:
    """What SLURM answered for a form state, kept ``ttl`` seconds; one user's test-only calls
    one at a time (built once per hub, on the spawners' shared services)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._answers: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, user: str) -> asyncio.Lock:
        """The one lock of a user's test-only calls."""
        return self._locks.setdefault(user, asyncio.Lock())

    async def get(self, key: str, user: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The answer for ``key`` if fresh, else ``compute()`` under the user's lock (kept if it returns)."""
        async with self.lock(user):
            hit = self._answers.get(key)
            if hit and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
            value = await compute()
            now = time.monotonic()
            self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.ttl}
            self._answers[key] = (now, value)
            return value
