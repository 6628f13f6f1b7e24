"""``POST /hub/api/aifactory/extend/USER[/SERVER]`` with ``{"minutes": N}``: more time for USER's
running JupyterLab job (``servers`` on USER; the server's own token has it, for JupyterLab's
Extend button, lab/session.py).

The hub decides nothing: it asks the root-owned helper (root/extend_job.py, through its one sudo
rule), which checks the job, its owner and every limit itself, and maps the helper's answer to
``200 {"job_id", "old_limit", "new_limit", "seconds_left", "added_minutes", "ends_at",
"time_left_text"}`` (the time left in words, as every page shows it: slurm/display.py) or a
4xx ``{"status", "message"}`` whose message names the limit refused. Each try is audited (who,
which job, the old and new limit, or why not); one extension at a time per user.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from aifactory_workbench.root import extend_job as helper
from aifactory_workbench.slurm.client import CommandResult
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.parsers import SlurmError

EXTEND_API_ROUTE = r"/api/aifactory/extend/([^/]+)/?([^/]*)"

#: The helper's exit status as the HTTP status the caller gets.
HTTP_STATUS = {
    helper.EXTENDED: 200,
    helper.USAGE: 400,
    helper.OFF: 403,
    helper.NO_SUCH_JOB: 404,
    helper.NOT_RUNNING: 409,
    helper.POLICY: 403,
    helper.LIMIT: 403,
    helper.UNAVAILABLE: 503,
    helper.BUSY: 409,
}
#: How long the hub waits for the helper: longer than the helper's own bound (its lock wait and
#: its SLURM calls, root/extend_job.py) and the time to start it, so that it never answers
#: "refused" of an extension the helper then makes.
HELPER_TIMEOUT = helper.LOCK_WAIT + helper.SLURM_CALLS * helper.SLURM_TIMEOUT + 30
#: Said when the helper cannot be run (sudo refused, not installed): a fault of the installation.
NOT_INSTALLED = "sessions cannot be extended now: the extension helper did not run (ask your support team)"


def extension_answer(result: CommandResult, now: datetime) -> tuple[int, dict[str, Any]]:
    """The helper's exit status and line as (HTTP status, JSON body); ``now`` gives ``ends_at``."""
    status = HTTP_STATUS.get(result.returncode)
    try:
        said = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        said = None
    if status is None or not isinstance(said, dict) or ("new_limit" if status == 200 else "message") not in said:
        return 503, {"status": 503, "message": NOT_INSTALLED}
    if status != 200:
        return status, {"status": status, "message": str(said.get("message", "refused"))}
    left = int(said.get("seconds_left", 0))
    ends = (now + timedelta(seconds=left)).astimezone(UTC).isoformat(timespec="seconds")
    return 200, {**said, "ends_at": ends, "time_left_text": duration_text(left)}


def parse_minutes(body: Any) -> int:
    """``{"minutes": N}``, N a whole number; 400 for anything else."""
    minutes = body.get("minutes") if isinstance(body, dict) else None
    if type(minutes) is not int or not 1 <= minutes <= 999_999:
        raise web.HTTPError(400, 'send {"minutes": N}, N a whole number of minutes')
    return minutes


class ExtendHandler(APIHandler):
    def initialize(self, audit: Any) -> None:
        self.audit = audit

    #: Users whose extension is under way: one at a time each.
    busy: set[str] = set()

    @needs_scope("servers")
    async def post(self, user_name: str, server_name: str = "") -> None:
        minutes = parse_minutes(self.get_json_body())
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        spawner = user.spawners[server_name] if server_name in user.orm_spawners else None
        job_id = getattr(spawner, "job_id", "") if spawner is not None and spawner.active else ""
        if spawner is None or not job_id:  # (no server: no job)
            raise web.HTTPError(409, f"{user_name} has no running session to extend")
        if not spawner.extend_minutes:  # the helper refuses too: it reads the site file itself
            raise web.HTTPError(403, helper.OFF_MESSAGE)
        if user.name in self.busy:
            raise web.HTTPError(409, "an extension of this session is under way: try again in a moment")
        self.busy.add(user.name)
        try:
            result = await spawner.slurm.extend_job(
                spawner.extend_helper, user.name, job_id, minutes, timeout=HELPER_TIMEOUT
            )
        except SlurmError as e:
            result = CommandResult([], -1, "", str(e))
        finally:
            self.busy.discard(user.name)
        status, answer = extension_answer(result, datetime.now(UTC))
        if status == 503 and answer["message"] == NOT_INSTALLED:
            self.log.error(
                "extension helper for job %s failed (%s): %s", job_id, result.returncode, result.stderr[-300:]
            )
        event = {"user": user.name, "by": self.current_user.name, "job_id": job_id, "minutes": minutes}
        if status == 200:
            self.audit.record("session_extended", **event, old=answer["old_limit"], new=answer["new_limit"])
            spawner.watcher.refresh_soon()  # the home page's card shows the new time left on its next look
        else:
            self.audit.record("session_extend_refused", **event, status=status, reason=answer["message"])
        self.set_status(status)
        self.finish(answer)
