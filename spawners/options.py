"""What a user may ask for when starting a server: the form, the checks, the estimate.

A mixin of :class:`aifactory_workbench.spawners.spawner.WorkbenchSpawner`, kept apart from the job's
life cycle.  Every door (the form, ``opt-`` links, the REST API, the estimate) runs the
same chain before anything is submitted: types (form.py), the site's rules (jobscript.py),
then what the cluster allows this user (choices.py), through JupyterHub 6's
``apply_user_options`` hook, whose SpawnException reaches the user as written.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

from jupyterhub.spawner import SpawnException
from traitlets import HasTraits, Integer, List, default

from aifactory_workbench.slurm.choices import Choices
from aifactory_workbench.slurm.job_fields import refused_field
from aifactory_workbench.slurm.parsers import SlurmError, SlurmUnavailable
from aifactory_workbench.slurm.values import parse_memory_mb
from aifactory_workbench.spawners.alternatives import (
    MIN_MEMORY_MB,
    NOW_SECONDS,
    Candidate,
    candidates,
    form_state,
    offered,
    wait_seconds,
)
from aifactory_workbench.spawners.discovery import Discovery
from aifactory_workbench.spawners.estimate import summary, usage_since
from aifactory_workbench.spawners.form import (
    apply_preset,
    coerce_options,
    cost,
    initial_values,
    presets_for,
    render_form,
)
from aifactory_workbench.spawners.gallery import launch_options
from aifactory_workbench.spawners.jobscript import JobRequest, OptionError, render
from aifactory_workbench.spawners.messages import (
    ConfirmFirst,
    no_association,
    options_refused,
    scheduler_unavailable,
    spawn_exception,
)
from aifactory_workbench.spawners.room import NodeRoom, holds

if TYPE_CHECKING:
    from aifactory_workbench.slurm.client import Slurm
    from aifactory_workbench.slurm.job_fields import JobSettings
    from aifactory_workbench.spawners.services import Services


class UserOptionsMixin(HasTraits):
    """Options form, option checks and estimate for a spawner with ``services``,
    ``job_defaults()`` and ``request_for()``."""

    presets: List[dict[str, Any]] = List(
        help="Presets offered in the spawn form: dicts with name, title, description and any of partition, "
        "qos, cpus, memory, gpus, walltime (site config form.presets). A user may tune them within limits.",
    ).tag(config=True)

    usage_days = Integer(help="The form shows what the chosen account used in this many past days.").tag(config=True)

    alternatives_after = Integer(
        help="When SLURM expects a request to wait longer than this many seconds, the estimate offers up to "
        "three smaller requests that start sooner (site config form.alternatives_after; 0: never).",
    ).tag(config=True)

    estimating = False  # an estimate of this server is being made (one at a time: estimate())
    gallery_entry: Any = None  # the published notebook this start launches (gallery_options)

    if TYPE_CHECKING:
        # What it reads of the spawner it is mixed into (WorkbenchSpawner). JupyterHub's Spawner
        # declares its user, db and hub as untyped traits (traitlets' Any): so are they here.
        user: Any
        db: Any
        hub: Any
        name: str
        log: logging.Logger
        user_options: dict[str, Any]
        services: Services
        request: JobRequest | None
        accepted_options: dict[str, Any]

        @property
        def discovery(self) -> Discovery: ...
        @property
        def slurm(self) -> Slurm: ...
        def request_for(self, options: dict[str, Any]) -> JobRequest: ...
        def job_defaults(self) -> JobSettings: ...
        def job_command(self) -> list[str]: ...

    @default("options_form")
    def _default_options_form(self) -> Any:
        return UserOptionsMixin.render_options_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return self.typed_options

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return UserOptionsMixin.check_user_options

    # -- what the user may ask for ---------------------------------------------------
    def own_presets(self) -> list[dict[str, Any]]:
        """Presets of this user's alone, offered first and chosen by default (a workshop seat's)."""
        return []

    def offered_presets(self) -> list[dict[str, Any]]:
        return [*self.own_presets(), *self.presets]

    async def choices(self) -> Choices:
        """What this user may run; a clear 503 when the scheduler cannot say, a 403 that says why
        when SLURM charges this account to no project (no form of settings could start)."""
        try:
            choices = await self.discovery.for_user(self.user.name)
        except SlurmUnavailable as e:
            raise scheduler_unavailable(e) from e
        except SlurmError as e:
            raise spawn_exception(
                f"The scheduler could not list your options: {e}", reason="scheduler_unavailable", status_code=503
            ) from e
        if not choices.associations:
            raise no_association(self.user.name)
        return choices

    def gallery_options(self, options: dict[str, Any], choices: Choices) -> tuple[dict[str, Any], Any]:
        """``gallery``: launch a published notebook; its resources as this user may ask them
        (:func:`~aifactory_workbench.spawners.gallery.launch_options`) come first, the user's own after."""
        options = dict(options)
        entry_id = options.pop("gallery", "")
        if not entry_id:
            return options, None
        gallery = self.services.gallery
        entry = gallery.get(entry_id) if gallery is not None else None
        if entry is None:
            raise OptionError("gallery", entry_id, "the id of an entry of the gallery (it may have been withdrawn)")
        return launch_options(entry, choices).options | options, entry

    async def checked_request(self, user_options: Any) -> tuple[JobRequest, Any]:
        """user_options checked for type, site rules and the cluster's limits; 400 names the field.
        Returns the request and the gallery entry it launches (or None)."""
        choices = await self.choices()
        try:
            options, entry = self.gallery_options(coerce_options(user_options or {}), choices)
            request = self.request_for(apply_preset(options, self.offered_presets()))
            choices.check(request.settings)
        except OptionError as e:
            raise options_refused(e) from e
        return request, entry

    async def check_user_options(self, user_options: Any) -> None:
        """JupyterHub's apply_user_options hook: runs before start(), its SpawnException reaches the user.

        JupyterHub saves a request's options as the user's defaults before this check; a
        refused request must not become them (a later start without options would replay it)."""
        try:
            self.request, self.gallery_entry = await self.checked_request(user_options)
        except SpawnException:
            self.remember_options(self.accepted_options)
            raise
        self.accepted_options = dict(user_options or {})

    def remember_options(self, options: dict[str, Any]) -> None:
        """What a later start that names no options gets (JupyterHub's saved user_options)."""
        orm = getattr(self, "orm_spawner", None)
        if orm is not None and self.db is not None:
            orm.user_options = options
            self.db.commit()

    async def estimate(self, user_options: Any) -> dict[str, Any]:
        """When SLURM would start this request, its cost and the account's usage; nothing is submitted.

        Each costs a sudo, an ``sbatch --test-only`` and (cached) a month of ``sacct``: one at a
        time per server, so a script cannot load the scheduler through the form's endpoint."""
        if self.estimating:
            raise spawn_exception(
                "An estimate for this server is still being made; ask again in a moment.",
                reason="busy",
                status_code=429,
            )
        self.estimating = True
        try:
            return await self._estimate(user_options)
        finally:
            self.estimating = False

    async def _estimate(self, user_options: Any) -> dict[str, Any]:
        request, _ = await self.checked_request(user_options)
        account = request.settings.account or (await self.choices()).default_account
        since = usage_since(self.usage_days)
        try:
            start, tested, held = await self.services.starts.get(
                form_state(self.user.name, request.settings),
                self.user.name,
                lambda: self.starts_for(user_options, request),
            )
            rows = await self.discovery.account_usage(account, since)
        except SlurmUnavailable as e:
            raise scheduler_unavailable(e) from e
        except SlurmError as e:
            refused = spawn_exception(f"SLURM would refuse this job: {e}", reason="slurm_refused")
            refused.field = refused_field(str(e))  # the form marks that field
            raise refused from e
        answer = summary(cost(request.settings), account, since, rows, start)
        return answer | {"alternatives": offered(tested, start), "holds_text": held}

    async def expected_start(self, request: JobRequest) -> str:
        """SLURM's expected start of ``request`` (``sbatch --test-only`` as the user; nothing is submitted)."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        script = render(request, self.job_command(), export=[])
        start, _ = await self.slurm.test_only(script, user=self.user.name, env=env)
        return start

    async def rooms_now(self, partition: str) -> list[NodeRoom]:
        """The room of the partition's nodes that may take a job now (the hub's node records,
        :meth:`Discovery.rooms`); ``[]`` when SLURM does not answer: then nothing is said of what
        holds a request."""
        try:
            return await self.discovery.rooms(partition)
        except SlurmError as e:
            self.log.debug("the nodes of %s could not be read: %s", partition, e)
            return []

    def memory_floor(self) -> int:
        """The least memory (MB) a start-sooner choice asks: the site's default request's."""
        return parse_memory_mb(self.job_defaults().memory) or MIN_MEMORY_MB

    async def starts_for(self, user_options: Any, request: JobRequest) -> tuple[str, list[tuple[Candidate, str]], str]:
        """The request's expected start; when it waits, what holds it in words
        (:func:`~aifactory_workbench.spawners.room.holds`, ``""`` when unsure or not waiting); when it
        waits longer than ``alternatives_after``, each candidate's start
        (:func:`~aifactory_workbench.spawners.alternatives.candidates`), one at a time.
        A candidate SLURM refuses is left out; no answer from SLURM ends the search."""
        start = await self.expected_start(request)
        wait = wait_seconds(start)
        found = await self.rooms_now(request.settings.partition) if wait is not None and wait > NOW_SECONDS else []
        hold = holds(request.settings, found)
        held = hold.text if hold else ""
        if not self.alternatives_after or wait is None or wait <= self.alternatives_after:
            return start, [], held
        return start, await self.tested(user_options, request, found), held

    async def tested(
        self, user_options: Any, request: JobRequest, found: list[NodeRoom]
    ) -> list[tuple[Candidate, str]]:
        """Each candidate's expected start (``found``: the room of the partition's nodes now)."""
        tested: list[tuple[Candidate, str]] = []
        options = coerce_options(user_options or {})
        choices = await self.choices()
        for candidate in candidates(options, request.settings, choices, found, self.memory_floor()):
            try:
                changed, _ = await self.checked_request(candidate.options)
                tested.append((candidate, await self.expected_start(changed)))
            except SlurmUnavailable:
                break
            except (SlurmError, SpawnException) as e:
                self.log.debug("alternative %s of %s left out: %s", candidate.what, self.user.name, e)
        return tested

    def typed_options(self, form_data: dict[str, Any]) -> dict[str, Any]:
        """Form fields and ``opt-`` query arguments as typed options (lists of one string each)."""
        form_data = {k: v for k, v in form_data.items() if k != "_xsrf"}  # the hub's own, already checked
        try:
            return coerce_options(form_data)
        except OptionError as e:
            raise options_refused(e) from e

    async def options_from_query(self, query_data: dict[str, Any]) -> dict[str, Any]:
        """An ``opt-`` link never spawns: checked like any request, then shown in the form to confirm."""
        await self.checked_request(self.typed_options(query_data))
        raise ConfirmFirst("a link's settings wait for the user to confirm them in the form")

    async def render_options_form(self) -> str:
        """The form, from this user's choices; the last settings (or a refused link's) pre-filled."""
        try:
            choices = await self.choices()
        except SpawnException as e:
            said = f'<p class="alert alert-warning" role="alert">{html.escape(e.message)}</p>'
            if getattr(e, "reason", "") == "no_association" and getattr(self.user, "admin", False):
                operator = html.escape(f"{self.hub.base_url}operator")
                page = f'<a href="{operator}">the operator page</a>'
                said += f"<p>As the hub's admin, you follow everyone's jobs on {page}.</p>"
            return said
        defaults = self.job_defaults()
        handler = getattr(self, "handler", None)
        args = handler.request.query_arguments if handler is not None else {}
        prefill = {k[4:]: [v.decode(errors="replace") for v in vs] for k, vs in args.items() if k.startswith("opt-")}
        own = self.own_presets()
        link = {k: v for k, v in prefill.items() if k != "gallery"}
        try:  # opt-gallery=ID: the entry's recorded resources, then the link's other values
            recorded, entry = self.gallery_options({"gallery": (prefill.get("gallery") or [""])[0]}, choices)
        except OptionError:
            recorded, entry = {}, None  # a withdrawn entry: the link's other values stand
        expanded = recorded | link
        values = initial_values(defaults, self.user_options, expanded)
        if own and not self.user_options and not prefill:
            values["preset"] = own[0]["name"]
        estimate_url = f"{self.hub.base_url}api/aifactory/estimate/{self.user.escaped_name}/{self.name}"
        usable = presets_for(choices, self.offered_presets(), defaults)
        url = estimate_url.rstrip("/")
        return render_form(
            choices,
            usable,
            values,
            url,
            from_link=bool(prefill),
            entry=entry,
            environments_url=f"{self.hub.base_url}api/aifactory/environments/{self.user.escaped_name}",
            help_url=f"{self.hub.base_url}help#environments",
        )
