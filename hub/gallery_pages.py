"""The gallery on the hub's side: publishing a notebook from a running session, the gallery
page, and withdrawing an entry.  Entries are written by the hub into a folder users can read
but not change (spawners/gallery.py); launching one is an ``opt-gallery=ID`` link, which opens
the filled spawn form for the user to confirm.

* ``POST /hub/api/aifactory/gallery/publish/USER[/SERVER]`` ``{"path": ..., "title": ...}``:
  whoever may access that server (its user, or its own token from a terminal: see
  ``aifactory-publish``) publishes a notebook of it.  The hub reads the notebook from the
  server itself (at most ``MAX_NOTEBOOK_BYTES``), and records the resources the notebook needs
  as the publisher chose them (``"resources"``: none, the site's default request without a GPU;
  ``"session"``, the server's; or the fields chosen: spawners/gallery.py's
  ``recorded_resources``; the reply names the session's as a suggestion) and the kernel's
  lock: a site kernel's from the site venv, a user's environment's
  from the body (``"environment"``, which aifactory-publish sends: the hub cannot read homes),
  checked to be exact pins over a site kernel, built from the site's index alone, and each
  pin's files hashed on the site's index (400 names a pin it lacks): launches install only
  those files (spawners/gallery.py).
* ``DELETE /hub/api/aifactory/gallery/ID``: its author or an admin withdraws it.

Both act as the caller (:func:`gallery_caller`): someone signed in at the hub, or a token
that carries ``PUBLISH_SCOPE``.  A token issued to a server's OAuth client never does: it is
what a server gets from whoever opens it (a colleague, an admin), not their consent.
* ``/hub/gallery``: every entry, what it needs (an environment's packages that differ from
  its site kernel, its build's time and size, whether it can still be built), a Launch link.
* ``/hub/gallery?launch=ID``: where Launch leads while the person's own JupyterLab runs, starts
  or stops (issue 36, item 1: a launch then landed in the old session, with no copy and no word).
  It says what each way does and offers it (:func:`launch_choice`): open the copy in the running
  JupyterLab (the session's own ``aifactory/gallery/ID``, lab/publish.py: the copy is made by
  the user's server, as the user; the entry's resources are not applied, and the page says so),
  start it in a new named server (only where the hub allows named servers), or stop the session
  (asked first: unsaved work is lost) and launch as usual.  With no server, Launch is the
  spawn form's link, as before.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.httpclient import fetch
from jupyterhub.scopes import needs_scope
from jupyterhub.user import User
from tornado import web

from aifactory_workbench.job.locks import human_size, pins
from aifactory_workbench.spawners.gallery import (
    HOME_FOLDER,
    NEEDS,
    Entry,
    Gallery,
    NotOnSiteIndex,
    SiteIndexUnavailable,
    Verdict,
    checked_environment,
    differences,
    pinned_environment,
    recorded_resources,
)

PUBLISH_ROUTE = r"/api/aifactory/gallery/publish/([^/]+)/?([^/]*)"
ENTRY_ROUTE = r"/api/aifactory/gallery/([0-9a-f]{12})"
GALLERY_PAGE_ROUTE = r"/gallery"
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
#: How long publishing waits for the check of an environment, and the page for those not yet
#: known (then it says "being checked"): both bounded, the verdicts cached (EnvironmentChecks).
PUBLISH_CHECK_WAIT = 30.0
PAGE_CHECK_WAIT = 3.0
#: The scope that publishing and withdrawing need: every user's role and every server's own
#: token carry it (hub/configure.py), servers' OAuth clients are never allowed it.
PUBLISH_SCOPE = "custom:gallery:publish"
CUSTOM_SCOPES = {PUBLISH_SCOPE: {"description": "Publish notebooks to the gallery and withdraw your entries."}}
#: The hub's own OAuth client: its sessions' and API tokens' (a server's OAuth client is jupyterhub-user-...).
HUB_CLIENT = "jupyterhub"


def gallery_caller(handler: BaseHandler) -> User:
    """Who publishes or withdraws: a user signed in at the hub, or by a token of theirs that
    carries PUBLISH_SCOPE and was not issued to a server's (or service's) OAuth client."""
    user = handler.current_user
    token = handler.get_token()
    client = token.oauth_client.identifier if token is not None and token.oauth_client is not None else HUB_CLIENT
    if not isinstance(user, User) or client != HUB_CLIENT or not handler.has_scope(PUBLISH_SCOPE):
        raise web.HTTPError(
            403,
            "publish and withdraw as yourself: signed in at the hub, with your own token, or "
            "with aifactory-publish in your session (a token that reached a server is not "
            "its holder's consent)",
        )
    return user


def site_kernel(venv: str, name: str) -> dict[str, Any]:
    """A site kernel's spec, with its modules and exact package lock; 400 for any other kernel."""
    spec_file = Path(venv) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    if "/" in name or not spec_file.is_file():
        raise web.HTTPError(
            400,
            f"kernel {name!r} is not a site kernel: publish with one, whose packages are known, or from "
            "your own environment with aifactory-publish in your session (it sends the environment's lock)",
        )
    spec = json.loads(spec_file.read_text())
    meta = spec.get("metadata", {}).get("aifactory", {})
    # The lock's path is the venv's own (share/aifactory/kernel.lock), unless the spec gives a whole one.
    lock_file = Path(venv) / meta["lock"] if meta.get("lock") else None
    lock = lock_file.read_text() if lock_file and lock_file.is_file() else ""
    return {
        "name": name,
        "display_name": spec.get("display_name", name),
        "modules": meta.get("modules", []),
        "lock": lock,
    }


class GalleryPublishHandler(APIHandler):
    def initialize(self, gallery: Gallery, venv: str, shared_storage: list[str], audit: Any) -> None:
        self.gallery, self.venv, self.shared_storage, self.audit = gallery, venv, shared_storage, audit

    @needs_scope("access:servers")
    async def post(self, user_name: str, server_name: str = "") -> None:
        author = gallery_caller(self)
        body = self.get_json_body() or {}
        path, title = str(body.get("path", "")), str(body.get("title", "")).strip()
        if not path.endswith(".ipynb") or ".." in path.split("/") or not 0 < len(title) <= 120 or "<" in title:
            raise web.HTTPError(
                400, "give the notebook's path in the server (.ipynb) and a title of 1 to 120 characters"
            )
        owner = self.find_user(user_name)
        spawner = owner.spawners.get(server_name) if owner is not None else None
        if spawner is None or not spawner.ready or getattr(spawner, "request", None) is None:
            raise web.HTTPError(409, "publish from a running session: the resources it runs with are recorded")
        session = asdict(spawner.request.settings)
        try:
            resources = recorded_resources(body.get("resources"), session, asdict(spawner.job_defaults()))
        except ValueError as e:
            raise web.HTTPError(400, f"the resources to record: {e}") from None
        notebook = await self.read_notebook(spawner, path)
        kernel_name = notebook.get("metadata", {}).get("kernelspec", {}).get("name", "")
        environment = None
        if body.get("environment") is not None:
            environment, lock = await self.pinned(body["environment"], kernel_name, path)
            base = site_kernel(self.venv, environment["base"])
            kernel = {"name": environment["kernel"], "display_name": environment["display_name"]}
            kernel["modules"] = base["modules"]
        else:
            kernel = site_kernel(self.venv, kernel_name)
            lock = kernel.pop("lock")
        entry = self.gallery.publish(
            title=title,
            author=author.name,
            notebook_name=path,
            notebook=notebook,
            kernel=kernel,
            lock=lock,
            resources=resources,
            shared_storage=self.shared_storage,
            environment=environment,
        )
        if self.audit is not None:
            self.audit.record(
                "publish", user=author.name, entry=entry.id, server=f"{user_name}/{server_name}", path=path
            )
        verdict = await self.gallery.checks.verdict(entry, wait=PUBLISH_CHECK_WAIT)
        self.set_status(201)
        self.finish(
            {
                "id": entry.id,
                "url": f"{self.hub.base_url}gallery#{entry.id}",
                "launch": f"{self.hub.base_url}spawn?opt-gallery={entry.id}",
                "environment": verdict_text(verdict) if verdict else None,
                "resources": resources,
                "session": {k: session[k] for k in NEEDS},
            }
        )

    async def pinned(self, sent: Any, kernel_name: str, path: str) -> tuple[dict[str, Any], str]:
        """The environment sent with the notebook, checked, over a site kernel, with each pin's
        files hashed on the site's index: 400 says what is wrong (a pin the site's index lacks,
        by name), 503 that the site's index could not be read."""
        try:
            environment, lock = checked_environment(sent, kernel_name, self.gallery.index)
            site_kernel(self.venv, environment["base"])
            hashes = await self.gallery.checks.hashes(lock, environment["python"])
        except NotOnSiteIndex as e:
            raise web.HTTPError(
                400, f"the environment sent with {path}: {e}; ask the site to add it, or build without it"
            ) from None
        except ValueError as e:
            raise web.HTTPError(400, f"the environment sent with {path}: {e}") from None
        except SiteIndexUnavailable as e:
            raise web.HTTPError(503, f"the environment sent with {path} could not be pinned: {e}") from None
        return pinned_environment(environment, lock, hashes, self.gallery.index), lock

    async def read_notebook(self, spawner: Any, path: str) -> dict[str, Any]:
        """The notebook as the server has it, read with the server's own token through
        JupyterHub's HTTP client (internal_ssl: it carries the hub's certificate), and never
        past MAX_NOTEBOOK_BYTES, whatever the server declares or sends."""
        url = f"{spawner.server.url.rstrip('/')}/api/contents/{quote(path)}?content=1&type=notebook"
        too_big = web.HTTPError(
            413, f"{path} is over {MAX_NOTEBOOK_BYTES // 2**20} MB: keep its data on shared storage and name it"
        )
        try:
            reply = await fetch(
                url,
                headers={"Authorization": f"token {spawner.api_token}"},
                raise_for_status=False,
                timeout=aiohttp.ClientTimeout(total=60),
            )
            try:
                if reply.status != 200:
                    raise web.HTTPError(404 if reply.status == 404 else 502, f"{path}: the server says {reply.status}")
                if (reply.content_length or 0) > MAX_NOTEBOOK_BYTES:
                    raise too_big
                body = bytearray()
                async for chunk in reply.content.iter_chunked(2**16):
                    body += chunk
                    if len(body) > MAX_NOTEBOOK_BYTES:
                        raise too_big
            finally:
                reply.close()  # an unread rest is not read: the connection goes
        except (aiohttp.ClientError, TimeoutError) as e:
            raise web.HTTPError(502, f"{path}: the server did not answer ({type(e).__name__})") from e
        try:
            notebook: dict[str, Any] = json.loads(body)["content"]
            return notebook
        except (ValueError, KeyError, TypeError) as e:
            raise web.HTTPError(502, f"{path}: the server's answer is not a notebook") from e


class GalleryEntryHandler(APIHandler):
    def initialize(self, gallery: Gallery) -> None:
        self.gallery = gallery

    def delete(self, entry_id: str) -> None:
        user = gallery_caller(self)
        entry = self.gallery.get(entry_id)
        if entry is None:
            raise web.HTTPError(404, f"no entry {entry_id}")
        if not (user.admin or user.name == entry.author):
            raise web.HTTPError(403, "only its author or an admin may withdraw an entry")
        self.gallery.withdraw(entry)
        self.set_status(204)
        self.finish()


def verdict_text(verdict: Verdict) -> str:
    said = {"ok": "can be built", "broken": "can no longer be built", "unchecked": "could not be checked"}
    return f"{said.get(verdict.state, 'not checked yet')}: {verdict.message}"


def needs(entry: Entry, venv: str) -> list[tuple[str, str, str | None]]:
    """The packages an entry's environment adds to (or changes in) its site kernel."""
    try:
        site_lock = site_kernel(venv, (entry.environment or {}).get("base", ""))["lock"]
        return differences(entry.lock, site_lock)
    except (web.HTTPError, ValueError):  # its base kernel is gone, or a lock reads wrong: all of it
        return [(line, "", None) for line in entry.lock.splitlines() if line and not line.startswith("#")]


def resources_text(resources: dict[str, Any]) -> str:
    """Resources in the page's words: "acc: 20 cores, 64G, 1 GPU, 08:00:00"."""
    cpus, gpus = resources.get("cpus") or 0, resources.get("gpus") or 0
    words = [f"{cpus} {'core' if cpus == 1 else 'cores'}", str(resources.get("memory") or "")]
    if gpus:
        words.append(f"{gpus} {'GPU' if gpus == 1 else 'GPUs'}")
    words.append(str(resources.get("walltime") or ""))
    return f"{resources.get('partition') or 'the default partition'}: {', '.join(w for w in words if w)}"


def server_state(spawner: Any) -> str:
    """The person's default server: "running", "starting", "stopping" or "stopped"."""
    if spawner is None:
        return "stopped"
    if spawner.pending == "stop":
        return "stopping"
    if spawner.ready:
        return "running"
    return "starting" if spawner.pending else "stopped"


#: A named server a gallery launch starts: one per entry (launching it again opens that one).
NAMED_PREFIX = "gallery-"


@dataclass(frozen=True)
class NamedServers:
    """Whether this hub lets a person run named servers, how many (0: no limit) and theirs."""

    allowed: bool
    limit: int = 0
    existing: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchChoice:
    """What Launch offers while the person's own JupyterLab is not stopped, with the words the
    page shows: ``here``, the URL that opens the copy in the running JupyterLab ("" when not
    offered, ``here_why_not`` says why); ``named``, the spawn form of a new named server (""
    when not offered; ``named_why_not`` only when named servers are allowed but none is left);
    ``relaunch``, the launch as usual, once the session has stopped (``stop``: the page stops
    it first; a stopping session is only waited for)."""

    entry_id: str
    title: str
    state: str
    copy_path: str
    session: str
    asks: str
    here: str
    here_why_not: str
    named: str
    named_name: str
    named_why_not: str
    relaunch: str
    stop: bool


def launch_choice(
    entry: Entry,
    *,
    state: str,
    base_url: str,
    server_url: str,
    user_name: str,
    session: dict[str, Any] | None,
    site_kernel_found: bool,
    named: NamedServers,
) -> LaunchChoice | None:
    """What Launch offers ``user_name`` for ``entry`` while their default server is ``state``
    (:func:`server_state`); None when it is stopped: Launch is the spawn form, as always.

    (a) The running JupyterLab opens a copy, made by that server as its user (lab/publish.py),
    only if it runs, and only if the entry's kernel is a site kernel there is: an entry's own
    environment is built when a session starts, never in a running one. (b) A new named server
    only if the hub allows them and one is left. (c) Stop and relaunch, always."""
    if state == "stopped":
        return None
    spawn = f"{base_url}spawn"
    if state != "running":
        why_not = {
            "starting": "Your JupyterLab is still starting: come back here once it runs to open the notebook in it.",
            "stopping": "Your JupyterLab is stopping: it cannot open anything any more.",
        }[state]
    elif entry.environment is not None:
        base = entry.environment.get("base", "")
        why_not = (
            f"It needs {entry.author}'s own environment (over the site kernel {base}), which is built only when "
            "a session starts: your running JupyterLab does not have it. Stop your session and relaunch, "
            "and the launch builds it first."
        )
    elif not site_kernel_found:
        why_not = (
            f"Its kernel, {entry.kernel_display}, is not one of this site's kernels any more: your running "
            "JupyterLab does not have it."
        )
    else:
        why_not = ""
    named_name = f"{NAMED_PREFIX}{entry.id}"
    named_url, named_why_not = "", ""
    if named.allowed:
        others = [n for n in named.existing if n != named_name]
        if named.limit and named_name not in named.existing and len(others) >= named.limit:
            named_why_not = (
                f"You already have {len(others)} named {'server' if len(others) == 1 else 'servers'}, the most "
                "this site allows: delete one on your home page to start it in a new one."
            )
        else:
            named_url = f"{spawn}/{quote(user_name, safe='')}/{named_name}?opt-gallery={entry.id}"
    return LaunchChoice(
        entry_id=entry.id,
        title=entry.title,
        state=state,
        copy_path=f"{HOME_FOLDER}/{entry.copy_name}",
        session=resources_text(session) if session else "",
        asks=resources_text(entry.resources),
        here="" if why_not else f"{server_url}aifactory/gallery/{entry.id}",
        here_why_not=why_not,
        named=named_url,
        named_name=named_name,
        named_why_not=named_why_not,
        relaunch=f"{spawn}?opt-gallery={entry.id}",
        stop=state != "stopping",
    )


def session_resources(spawner: Any) -> dict[str, Any] | None:
    """The resources the person's running session asked (its request), None if unknown."""
    try:
        settings = asdict(spawner.job_request().settings)
    except Exception:  # an old session's options that no longer pass: the page says less
        return None
    return {k: settings.get(k) for k in NEEDS}


class GalleryPage(BaseHandler):
    def initialize(self, gallery: Gallery, venv: str) -> None:
        self.gallery, self.venv = gallery, venv

    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        spawner = user.spawner
        state = server_state(spawner)
        launch_id = self.get_argument("launch", "")
        if launch_id:
            await self.choose(launch_id, spawner, state)
            return
        entries = self.gallery.entries()
        launch_urls = {
            e.id: f"{self.base_url}{'gallery?launch=' if state != 'stopped' else 'spawn?opt-gallery='}{e.id}"
            for e in entries
        }
        packages = {e.id: len(pinned(e.lock)) for e in entries}
        environments = {e.id: needs(e, self.venv) for e in entries if e.environment is not None}
        verdicts = await asyncio.gather(*(self.gallery.checks.verdict(e, wait=PAGE_CHECK_WAIT) for e in entries))
        html = await self.render_template(
            "gallery.html",
            entries=entries,
            packages=packages,
            environments=environments,
            verdicts={e.id: v for e, v in zip(entries, verdicts, strict=True) if v is not None},
            human=human_size,
            launch_urls=launch_urls,
            choice=None,
        )
        self.finish(html)

    async def choose(self, entry_id: str, spawner: Any, state: str) -> None:
        """The page of Launch's choices for one entry, while the default server is not stopped."""
        entry = self.gallery.get(entry_id)
        if entry is None:
            raise web.HTTPError(404, f"no entry {entry_id} in the gallery (it may have been withdrawn)")
        if state == "stopped":  # stopped since the gallery page was shown: the launch as always
            self.redirect(f"{self.base_url}spawn?opt-gallery={entry.id}")
            return
        user = self.current_user
        limit = await self.get_current_user_named_server_limit() if self.allow_named_servers else 0
        choice = launch_choice(
            entry,
            state=state,
            base_url=self.base_url,
            server_url=user.server_url(""),
            user_name=user.name,
            session=session_resources(spawner),
            site_kernel_found=has_site_kernel(self.venv, entry.kernel),
            named=NamedServers(
                bool(self.allow_named_servers), int(limit or 0), tuple(n for n in user.orm_user.orm_spawners if n)
            ),
        )
        html = await self.render_template(
            "gallery.html", entries=[], choice=choice, packages={}, environments={}, verdicts={}, launch_urls={}
        )
        self.finish(html)


def has_site_kernel(venv: str, name: str) -> bool:
    try:
        site_kernel(venv, name)
    except web.HTTPError:
        return False
    return True


def pinned(lock: str) -> dict[str, str]:
    try:
        return pins(lock)
    except ValueError:
        return {}
