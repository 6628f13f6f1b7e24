"""What a user may ask for when starting a server: the form, the checks, the estimate.

A mixin of :class:`spawners.slurm_spawner.WorkbenchSpawner`, kept apart from the job's
life cycle.  Every door (the form, ``opt-`` links, the REST API, the estimate) runs the
same chain before anything is submitted: types (form.py), the site's rules (jobscript.py),
then what the cluster allows this user (choices.py), through JupyterHub 6's
``apply_user_options`` hook, whose HTTP errors reach the user as written.
"""

from __future__ import annotations

import html
from typing import Any

from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Float, HasTraits, Integer, List, default

from aifactory.slurm import SlurmError, SlurmUnavailable
from spawners.choices import Choices, Discovery
from spawners.estimate import summary, usage_since
from spawners.form import apply_preset, coerce_options, cost, initial_values, presets_for, render_form
from spawners.jobscript import JobRequest, OptionError, render


class Refused(web.HTTPError):
    """A 4xx/5xx whose message reaches the user as written, in the API's JSON and on the form page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)  # never a format string: the message may hold "%"
        self.jupyterhub_message = message


class UserOptionsMixin(HasTraits):
    """Options form, option checks and estimate for a spawner with ``slurm`` and ``site_defaults()``."""

    presets = List(
        help="Presets offered in the spawn form: dicts with name, title, description and any of partition, "
        "qos, cpus, memory, gpus, walltime (site config form.presets). A user may tune them within limits.",
    ).tag(config=True)

    discovery_cache = Float(
        60, help="Seconds the cluster's partitions, QoS, reservations and a user's associations are reused."
    ).tag(config=True)

    usage_days = Integer(30, help="The form shows what the chosen account used in this many past days.").tag(
        config=True
    )

    discovery = AnyTrait(help="The spawners.choices.Discovery that says what each user may ask for.")

    @default("discovery")
    def _default_discovery(self) -> Discovery:
        return Discovery.shared(self.slurm, self.discovery_cache)

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
    async def choices(self) -> Choices:
        """What this user may run; a clear 503 when the scheduler cannot say."""
        try:
            return await self.discovery.for_user(self.user.name)
        except SlurmUnavailable as e:
            raise Refused(503, f"The scheduler is unavailable right now ({e}). Please try again shortly.") from e
        except SlurmError as e:
            raise Refused(503, f"The scheduler could not list your options: {e}") from e

    async def checked_request(self, user_options: Any) -> JobRequest:
        """user_options checked for type, site rules and the cluster's limits; 400 names the field."""
        choices = await self.choices()
        try:
            options = apply_preset(coerce_options(user_options or {}), self.presets)
            request = JobRequest.build(self.user.name, self.req_homedir, self.site_defaults(), options)
            choices.check(request.slurm)
        except OptionError as e:
            raise Refused(400, f"The job settings were refused: {e}") from e
        return request

    async def check_user_options(self, user_options: Any) -> None:
        """JupyterHub's apply_user_options hook: runs before start(), its HTTPError reaches the user."""
        self.request = await self.checked_request(user_options)

    async def estimate(self, user_options: Any) -> dict[str, Any]:
        """When SLURM would start this request, its cost and the account's usage; nothing is submitted."""
        request = await self.checked_request(user_options)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        script = render(request, self.job_command(), export=[])
        account = request.slurm.account or (await self.choices()).default_account
        since = usage_since(self.usage_days)
        try:
            start, _ = await self.slurm.test_only(script, user=self.user.name, env=env)
            rows = await self.slurm.account_usage(account, since)
        except SlurmUnavailable as e:
            raise Refused(503, f"The scheduler is unavailable right now ({e}).") from e
        except SlurmError as e:
            raise Refused(400, f"SLURM would refuse this job: {e}") from e
        return summary(cost(request.slurm), account, since, rows, start)

    def typed_options(self, form_data: dict[str, Any]) -> dict[str, Any]:
        """Form fields and ``opt-`` query arguments as typed options (lists of one string each)."""
        form_data = {k: v for k, v in form_data.items() if k != "_xsrf"}  # the hub's own, already checked
        try:
            return coerce_options(form_data)
        except OptionError as e:
            raise Refused(400, f"The job settings were refused: {e}") from e

    def options_from_query(self, query_data: dict[str, Any]) -> dict[str, Any]:
        return self.typed_options(query_data)

    async def render_options_form(self) -> str:
        """The form, from this user's choices; the last settings (or a refused link's) pre-filled."""
        try:
            choices = await self.choices()
        except Refused as e:
            return f'<p class="alert alert-warning">{html.escape(e.jupyterhub_message)}</p>'
        site = self.site_defaults()
        handler = getattr(self, "handler", None)
        args = handler.request.query_arguments if handler is not None else {}
        prefill = {k[4:]: [v.decode(errors="replace") for v in vs] for k, vs in args.items() if k.startswith("opt-")}
        values = initial_values(site, self.user_options, prefill)
        estimate_url = f"{self.hub.base_url}api/aifactory/estimate/{self.user.escaped_name}/{self.name}"
        return render_form(choices, presets_for(choices, self.presets, site), values, estimate_url.rstrip("/"))
