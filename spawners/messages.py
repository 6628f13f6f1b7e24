"""What a person is told, in one place: refusals and failures as JupyterHub 6's
``SpawnException`` (its ``reason`` labels the hub's spawn metrics), SLURM's pending
reasons and job ends in plain words.

The job engine reads its words here and runs without JupyterHub: JupyterHub's module is imported
only when a ``SpawnException`` is made, by the hub's side that raises it to JupyterHub
(``tests/unit/test_engine_imports.py`` checks that importing the engine loads no JupyterHub module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory_workbench.slurm.pending import describe_end as describe_end  # its words have one home
from aifactory_workbench.slurm.pending import explain_pending as explain_pending

if TYPE_CHECKING:
    from jupyterhub.spawner import SpawnException


def spawn_exception(message: str, *, reason: str, status_code: int = 400) -> SpawnException:
    """A SpawnException whose ``message`` reaches the user as written (form, API, progress page).

    ``reason`` is a short label for metrics: options, scheduler_unavailable, slurm_refused,
    job_ended, start_timeout, not_yours, busy, no_linked_account, not_queued, no_association."""
    from jupyterhub.spawner import SpawnException  # the hub's side only: see the module's note

    error = SpawnException(message, reason=reason, status_code=status_code)
    error.jupyterhub_message = message  # what JupyterHub's pages and progress events show
    error.log_message = message.replace("%", "%%")  # tornado %-formats it when logging
    return error


class ConfirmFirst(Exception):  # noqa: N818 - not an error: a request to confirm
    """An ``opt-`` link's settings passed every check: JupyterHub shows the filled form instead
    of spawning on a GET (which any page could trigger with the user's cookie); the form's
    XSRF-checked POST starts the server."""

    jupyterhub_message = ""  # the form itself says what to do (spawn_form.html.j2)


def options_refused(problem: object) -> SpawnException:
    """``problem`` is an OptionError: the form marks the field it names (``error.field``)."""
    error = spawn_exception(f"The job settings were refused: {problem}", reason="options")
    error.field = getattr(problem, "field", "")
    return error


def no_association(user: str) -> SpawnException:
    """A Unix account the hub admits that SLURM charges to no project (an admin of the hub, or a
    user added without ``sacctmgr``): nothing can start, whatever the form says (issue 36, item 5)."""
    return spawn_exception(
        f"Your account {user} has no SLURM association, so it cannot run JupyterLab jobs here: "
        f"no project's hours can pay for them. An administrator adds one "
        f"(sacctmgr add user {user} account=PROJECT); then reload this page.",
        reason="no_association",
        status_code=403,
    )


def scheduler_unavailable(error: object) -> SpawnException:
    """The one wording for a scheduler that does not answer: nothing was submitted."""
    return spawn_exception(scheduler_unavailable_text(error), reason="scheduler_unavailable", status_code=503)


def scheduler_unavailable_text(error: object) -> str:
    return (
        f"The scheduler is unavailable right now ({error}). Nothing was submitted; please try again in a few minutes."
    )


def environments_not_listed(error: object) -> str:
    """The spawn form's and home page's words when a user's environments could not be listed."""
    return f"Your environments could not be listed right now ({str(error)[:200]})."


def environments_unreadable(count: int) -> str:
    """The spawn form's and home page's words for the listing's entries that could not be read."""
    return f"{count} {'entry' if count == 1 else 'entries'} could not be read."


#: "Start sooner instead" (a queued job replaced): what may refuse it before anything is submitted.
NOT_QUEUED = "Your JupyterLab job is not waiting in the queue any more, so there is nothing to replace."
REPLACING = "Your waiting job is being replaced already; this page follows the new one in a moment."
OTHER_NOTEBOOK = "A waiting job cannot switch to another notebook: stop it and launch that one."
OTHER_PARTITION = (
    "Another partition needs a new start (the server's certificate names its nodes): stop and start again."
)


def replacement_refused_text(problem: object, old_job: str) -> str:
    """A replacement that SLURM refused (or could not take): the waiting job stays."""
    return f"{problem} Job {old_job} keeps waiting."


def replacement_overtaken_text(old_job: str, new_job: str) -> str:
    """While its replacement was submitted, the waiting job started or the server was stopped:
    the new job is cancelled and nothing else changes."""
    return (
        f"Job {old_job} started, or your server was stopped, while its replacement was submitted, "
        f"so the new job {new_job} was cancelled; nothing else changed."
    )
