"""What a person reads of a job's times and hours: one rule each, for every page.

The hub's pages, the spawn form and JupyterLab's extension show the texts the server sends
(a session card's time left, an estimate's cost, an account's usage), made here; none of them
rounds or words a duration of its own (issue 37, item 3).
"""

from __future__ import annotations

import math


def duration_text(seconds: float) -> str:
    """Whole minutes, in hours and minutes: 1 h 58 min, 12 min, 48 h, under a minute (never negative).

    Half a minute counts as one (30 s is "1 min"), as JavaScript's Math.round has it: not
    Python's round, which rounds half to even (150 s would be "2 min" here and "3 min" there)."""
    minutes = max(0, math.floor(seconds / 60 + 0.5))
    hours, rest = divmod(minutes, 60)
    if hours:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{minutes} min" if minutes else "under a minute"


def hours_text(hours: float) -> str:
    """Core-hours or GPU-hours as every page shows them: to 0.01 h, always two decimals (7.00)."""
    return f"{hours:.2f}"


def hours_data(core: float, gpu: float) -> dict[str, float | str]:
    """Core-hours and GPU-hours as a page's JSON carries them: the numbers, to 0.01 h (a chart's
    bars), and their texts (what the page shows)."""
    core, gpu = round(core, 2), round(gpu, 2)
    return {
        "core_hours": core,
        "gpu_hours": gpu,
        "core_hours_text": hours_text(core),
        "gpu_hours_text": hours_text(gpu),
    }
