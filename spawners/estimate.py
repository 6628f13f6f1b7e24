"""Before submitting: when the job would start, what it costs and what the account has used.

The form asks this endpoint as its fields change.  ``sbatch --test-only`` runs as the user
(so their associations and limits apply) and submits nothing; usage comes from ``sacct``
for the account chosen, so a user sees what they spend before they spend it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Iterable
from typing import Any

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.spawner import SpawnException
from tornado import web

from aifactory_workbench.slurm.display import hours_data
from aifactory_workbench.slurm.parsers import allocation, core_hours
from aifactory_workbench.slurm.pending import start_text as start_text  # one rule for every page


def usage_hours(rows: Iterable[dict[str, str]]) -> tuple[float, float]:
    """Core-hours and GPU-hours of ``sacct`` rows (ElapsedRaw seconds, AllocTRES), to 0.01 h."""
    core = gpu = 0.0
    for row in rows:
        seconds, cpus, gpus = allocation(row)
        core += core_hours(cpus, seconds)
        gpu += core_hours(gpus, seconds)
    return round(core, 2), round(gpu, 2)


def usage_since(days: int, today: dt.date | None = None) -> str:
    return ((today or dt.date.today()) - dt.timedelta(days=days)).isoformat()


class ServerOptionsHandler(APIHandler):
    """What the estimate and the queued page's endpoints share: the server named in the path, a
    body of ``{"user_options": {...}}``, and a refusal as JSON whose ``field`` the form marks."""

    def server_spawner(self, user_name: str, server_name: str) -> Any:
        """The server named in the path: the default one (``""``) or a named server the user
        has; 404 otherwise, never another server in its place (a token scoped to one server
        acts on that server only)."""
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        if server_name == "":
            return user.spawner
        if server_name not in user.orm_spawners:
            raise web.HTTPError(404, f"{user_name} has no server {server_name}")
        return user.spawners[server_name]

    def user_options(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, "the body must be JSON") from e
        if not isinstance(body, dict) or not isinstance(body.get("user_options", {}), dict):
            raise web.HTTPError(400, 'the body must be {"user_options": {...}}')
        return dict(body.get("user_options", {}))

    async def finish_with(self, answer: Awaitable[dict[str, Any]]) -> None:
        try:
            self.finish(await answer)
        except SpawnException as e:
            # The form marks the refused field and keeps Start disabled until it changes.
            self.set_status(e.status_code or 400)
            self.finish(
                {"status": e.status_code or 400, "message": e.jupyterhub_message, "field": getattr(e, "field", "")}
            )


class EstimateHandler(ServerOptionsHandler):
    """POST {"user_options": {...}}: the checks of a real spawn, then an estimate (with its
    ``alternatives``); 4xx names the field."""

    @needs_scope("servers")  # who may start this server may ask what starting it would cost
    async def post(self, user_name: str, server_name: str = "") -> None:
        spawner = self.server_spawner(user_name, server_name)
        await self.finish_with(spawner.estimate(self.user_options()))


class QueuedAlternativesHandler(ServerOptionsHandler):
    """While the server's job waits in the queue: GET, the estimate's alternatives to its request
    (``[]`` when none or not waiting) and what holds it (``holds_text``, ``""`` when unsure); POST
    {"user_options": {...}}, start sooner with those instead: checked as a spawn's, the new job
    submitted before the waiting one is cancelled."""

    @needs_scope("servers")
    async def get(self, user_name: str, server_name: str = "") -> None:
        spawner = self.server_spawner(user_name, server_name)

        async def answer() -> dict[str, Any]:
            return {"job_id": spawner.job_id, **await spawner.queued_estimate()}

        await self.finish_with(answer())

    @needs_scope("servers")
    async def post(self, user_name: str, server_name: str = "") -> None:
        spawner = self.server_spawner(user_name, server_name)
        old = spawner.job_id

        async def answer() -> dict[str, Any]:
            return {"job_id": await spawner.replace_queued(self.user_options()), "replaced": old}

        await self.finish_with(answer())


def summary(request_cost: dict[str, Any], account: str, since: str, rows: Any, start: str) -> dict[str, Any]:
    """The estimate's answer: the request's cost and the account's usage with their texts as the
    form shows them (slurm/display.py), and SLURM's expected start in words."""
    return {
        "cost": request_cost,
        "usage": {"account": account, "since": since, **hours_data(*usage_hours(rows))},
        "start": start,
        "start_text": start_text(start),
    }


#: Periods the home page offers for its usage chart (days).
USAGE_PERIODS = (7, 30, 90, 365)


class UsageHandler(APIHandler):
    """GET ?days=N: core-hours and GPU-hours per account of the user since N days ago, from
    ``sacct`` (all the account's jobs, as the form shows one account's), each with its text."""

    @needs_scope("servers")
    async def get(self, user_name: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        days = self.get_argument("days", "30")
        if not days.isdigit() or int(days) not in USAGE_PERIODS:
            raise web.HTTPError(400, f"days: one of {', '.join(map(str, USAGE_PERIODS))}")
        spawner = user.spawner
        since = usage_since(int(days))
        accounts = []
        for account in (await spawner.choices()).accounts():
            used = usage_hours(await spawner.discovery.account_usage(account, since))
            accounts.append({"account": account, **hours_data(*used)})
        self.finish({"days": int(days), "since": since, "accounts": accounts})
