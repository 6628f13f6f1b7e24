"""The gallery on the hub's side: publishing a notebook from a running session, the gallery
page, and withdrawing an entry.  Entries are written by the hub into a folder users can read
but not change (spawners/gallery.py); launching one is an ``opt-gallery=ID`` link, which opens
the filled spawn form for the user to confirm.

* ``POST /hub/api/aifactory/gallery/publish/USER[/SERVER]`` ``{"path": ..., "title": ...}``:
  whoever may access that server (its user, or its own token from a terminal: see
  ``aifactory-publish``) publishes a notebook of it.  The hub reads the notebook from the
  server itself, and records the server's accepted resources and the kernel's lock.
* ``DELETE /hub/api/aifactory/gallery/ID``: its author or an admin withdraws it.
* ``/hub/gallery``: every entry, what it needs, a Launch link.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from spawners.gallery import Gallery

PUBLISH_ROUTE = r"/api/aifactory/gallery/publish/([^/]+)/?([^/]*)"
ENTRY_ROUTE = r"/api/aifactory/gallery/([0-9a-f]{12})"
GALLERY_PAGE_ROUTE = r"/gallery"
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024


def site_kernel(venv: str, name: str) -> dict[str, Any]:
    """A site kernel's spec, with its modules and exact package lock; 400 for any other kernel."""
    spec_file = Path(venv) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    if "/" in name or not spec_file.is_file():
        raise web.HTTPError(400, f"kernel {name!r} is not a site kernel: publish with one, whose packages are known")
    spec = json.loads(spec_file.read_text())
    meta = spec.get("metadata", {}).get("aifactory", {})
    lock = Path(meta["lock"]).read_text() if meta.get("lock") and Path(meta["lock"]).is_file() else ""
    return {"name": name, "display_name": spec.get("display_name", name), "modules": meta.get("modules", []),
            "lock": lock}  # fmt: skip


class GalleryPublishHandler(APIHandler):
    def initialize(self, gallery: Gallery, venv: str, shared_storage: list[str], audit: Any) -> None:
        self.gallery, self.venv, self.shared_storage, self.audit = gallery, venv, shared_storage, audit

    @needs_scope("access:servers")
    async def post(self, user_name: str, server_name: str = "") -> None:
        author = self.current_user
        body = self.get_json_body() or {}
        path, title = str(body.get("path", "")), str(body.get("title", "")).strip()
        if not path.endswith(".ipynb") or ".." in path.split("/") or not 0 < len(title) <= 120 or "<" in title:
            raise web.HTTPError(400, "give the notebook's path in the server (.ipynb) and a title of 1 to 120 "
                                     "characters")  # fmt: skip
        owner = self.find_user(user_name)
        spawner = owner.spawners.get(server_name) if owner is not None else None
        if spawner is None or not spawner.ready or getattr(spawner, "request", None) is None:
            raise web.HTTPError(409, "publish from a running session: the resources it runs with are recorded")
        notebook = await self.read_notebook(spawner, path)
        kernel_name = notebook.get("metadata", {}).get("kernelspec", {}).get("name", "")
        kernel = site_kernel(self.venv, kernel_name)
        entry = self.gallery.publish(
            title=title,
            author=author.name,
            notebook_name=path,
            notebook=notebook,
            kernel=kernel,
            lock=kernel.pop("lock"),
            resources=asdict(spawner.request.settings),
            shared_storage=self.shared_storage,
        )
        if self.audit is not None:
            self.audit.record("publish", user=author.name, entry=entry.id, server=f"{user_name}/{server_name}",
                              path=path)  # fmt: skip
        self.set_status(201)
        self.finish({"id": entry.id, "url": f"{self.hub.base_url}gallery#{entry.id}",
                     "launch": f"{self.hub.base_url}spawn?opt-gallery={entry.id}"})  # fmt: skip

    async def read_notebook(self, spawner: Any, path: str) -> dict[str, Any]:
        """The notebook as the server has it, read with the server's own token (internal_ssl:
        JupyterHub's HTTP client carries the hub's certificate)."""
        url = f"{spawner.server.url.rstrip('/')}/api/contents/{quote(path)}?content=1&type=notebook"
        try:
            reply = await AsyncHTTPClient().fetch(
                url, headers={"Authorization": f"token {spawner.api_token}"}, request_timeout=60
            )
        except HTTPClientError as e:
            raise web.HTTPError(404 if e.code == 404 else 502, f"{path}: the server says {e.code}") from e
        if len(reply.body) > MAX_NOTEBOOK_BYTES:
            limit = MAX_NOTEBOOK_BYTES // 2**20
            raise web.HTTPError(413, f"{path} is over {limit} MB: keep its data on shared storage and name it")
        return json.loads(reply.body)["content"]


class GalleryEntryHandler(APIHandler):
    def initialize(self, gallery: Gallery) -> None:
        self.gallery = gallery

    def delete(self, entry_id: str) -> None:
        entry = self.gallery.get(entry_id)
        user = self.current_user
        if entry is None:
            raise web.HTTPError(404, f"no entry {entry_id}")
        if user is None or not (getattr(user, "admin", False) or user.name == entry.author):
            raise web.HTTPError(403, "only its author or an admin may withdraw an entry")
        self.gallery.withdraw(entry)
        self.set_status(204)
        self.finish()


class GalleryPage(BaseHandler):
    def initialize(self, gallery: Gallery) -> None:
        self.gallery = gallery

    @web.authenticated
    async def get(self) -> None:
        entries = self.gallery.entries()
        packages = {e.id: len([line for line in e.lock.splitlines() if "==" in line]) for e in entries}
        html = await self.render_template("gallery.html", entries=entries, packages=packages)
        self.finish(html)
