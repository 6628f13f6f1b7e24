"""A workshop's seat sheet: ``seats.csv`` (user, password, address) for the instructor's tools,
and ``seats.html``, slips to print and hand out, from a Jinja template (``seat_slips.html.j2``).
Both hold passwords: root's files, mode 600."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import jinja2

from aifactory_workbench.spawners.seats import Workshop

SLIPS_TEMPLATE = Path(__file__).with_name("seat_slips.html.j2")


def seat_rows(workshop: Workshop, passwords: dict[str, str], url: str) -> list[dict[str, str]]:
    return [{"user": seat, "password": passwords[seat], "url": url} for seat in workshop.seats]


def seats_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["user", "password", "url"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def seat_slips(workshop: Workshop, rows: list[dict[str, str]]) -> str:
    """The slips, every value escaped (a title or a password is text, never markup)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True)
    return env.from_string(SLIPS_TEMPLATE.read_text()).render(workshop=workshop, seats=rows)


def write_seat_sheet(workshop: Workshop, passwords: dict[str, str], state: Path, url: str) -> None:
    """``seats.csv`` and ``seats.html`` in the workshop's state folder ``state`` (root's), mode 600."""
    rows = seat_rows(workshop, passwords, url)
    for name, text in (("seats.csv", seats_csv(rows)), ("seats.html", seat_slips(workshop, rows))):
        fd = os.open(state / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
