"""``aifactory-publish``: publish a notebook of this JupyterLab session to the site's gallery.

    aifactory-publish analysis.ipynb --title "Monthly climatology, 10 years"

Run in a JupyterLab terminal or a notebook cell.  The hub reads the notebook from this server
and records what reproduces it: the kernel with its exact package lock, its modules, the
resources the notebook needs, and the shared-storage paths it reads.  The resources are yours to
choose (``--cpus 4 --memory 8G --gpus 1 --walltime 02:00:00 --partition acc``, or
``--like-session`` for this session's); unchosen, the site's default request without a GPU is
recorded, and the reply names this session's as a suggestion.  A notebook in one
of your own environments (``aifactory-env``) is published with that environment's lock, which
this command sends (the hub cannot read your home): whoever launches the entry gets it built.
An entry never
changes (publish again for a new version); its author may withdraw it from the gallery page.

Its server extension (``aifactory/gallery/ID``) opens an entry in this running session: the
gallery page's "Open in your running JupyterLab" (hub/gallery_pages.py, issue 36, item 1).  This
server, as its user, copies the entry's notebook from the gallery's folder (the hub's, which every
user may read: ``AIFACTORY_GALLERY_DIR``, from the spawner) into ``~/gallery`` (never over a copy
there, as a launch's job step does) and opens it; the hub writes nothing into a home.  A link
followed from this hub's own pages (``Sec-Fetch-Site``: same-origin) opens at once; from anywhere
else, the page asks first (a form with this server's XSRF token).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from aifactory_workbench.job.launcher import tls_context
from aifactory_workbench.lab.envs import published


def server_path(notebook: Path, root: Path) -> str:
    """The notebook's path as this server's contents API names it (relative to its root)."""
    try:
        return notebook.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise SystemExit(f"aifactory-publish: {notebook} is outside this server's files ({root})") from None


def environment_of(notebook: Path) -> dict | None:
    """The user's environment the notebook's kernel is, as publishing sends it (None: a site kernel)."""
    try:
        kernel = json.loads(notebook.read_text()).get("metadata", {}).get("kernelspec", {}).get("name", "")
    except (OSError, ValueError, AttributeError):
        return None  # the hub reads the notebook itself, and says what is wrong with it
    return published(kernel) if isinstance(kernel, str) and kernel else None


#: The resources a publisher may choose, with their types: the hub checks them
#: (spawners/gallery.py's NEEDS and recorded_resources).
CHOICES = (("partition", str), ("cpus", int), ("memory", str), ("gpus", int), ("walltime", str))


def chosen_resources(args: argparse.Namespace) -> str | dict[str, Any] | None:
    """The resources the publisher chose, as the hub takes them (None: the site's default)."""
    if args.like_session:
        return "session"
    chosen = {name: getattr(args, name) for name, _ in CHOICES if getattr(args, name) is not None}
    return chosen or None


def needs_text(resources: dict[str, Any]) -> str:
    """Recorded resources in words: "acc: 4 cores, 8G, 1 GPU, 02:00:00"."""
    gpus = resources.get("gpus") or 0
    gpu_text = f", {gpus} GPU{'s' if gpus > 1 else ''}" if gpus else ", no GPU"
    return (
        f"{resources['partition']}: {resources['cpus']} cores, {resources['memory']}{gpu_text}, {resources['walltime']}"
    )


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="aifactory-publish", description=__doc__.split("\n\n")[0])
    made.add_argument("notebook", type=Path)
    made.add_argument("--title", required=True)
    made.add_argument("--like-session", action="store_true", help="record this session's resources")
    for name, kind in CHOICES:
        made.add_argument(f"--{name}", type=kind, help=f"the {name} the notebook needs")
    return made


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = dict(os.environ)
    if "JUPYTERHUB_API_TOKEN" not in env:
        print("aifactory-publish: run it inside a JupyterLab session of the hub", file=sys.stderr)
        return 1
    path = server_path(args.notebook, Path(env.get("JUPYTERHUB_ROOT_DIR", env.get("HOME", "."))))
    server = env.get("JUPYTERHUB_SERVER_NAME", "")
    url = f"{env['JUPYTERHUB_API_URL'].rstrip('/')}/aifactory/gallery/publish/{env['JUPYTERHUB_USER']}/{server}"
    environment = environment_of(args.notebook)
    sent = {"path": path, "title": args.title, "environment": environment, "resources": chosen_resources(args)}
    body = json.dumps(sent).encode()
    headers = {"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120, context=tls_context(env)) as reply:
            entry = json.loads(reply.read())
    except urllib.error.HTTPError as e:
        message = json.loads(e.read() or b"{}").get("message", e.reason)
        print(f"aifactory-publish: the hub refused: {message}", file=sys.stderr)
        return 1
    print(f"published {path} as entry {entry['id']}: {entry['url']}\nlaunch link: {entry['launch']}")
    if entry.get("resources"):
        print(
            f"it needs {needs_text(entry['resources'])} (this session: {needs_text(entry['session'])}; "
            "choose with --like-session or --partition/--cpus/--memory/--gpus/--walltime)"
        )
    if entry.get("environment"):
        print(f"its environment {environment['kernel']!r}: {entry['environment']}")
    return 0


#: The gallery's folder, which the spawner exports to the job (spawners/spawner.py's get_env).
GALLERY_ENV = "AIFACTORY_GALLERY_DIR"
#: The folder of the home that launched notebooks are copied into (spawners/gallery.py's HOME_FOLDER).
HOME_FOLDER = "gallery"
ENTRY_ID = re.compile(r"[0-9a-f]{12}")
#: Where a request came from, by the browser's word: from this origin, or typed / bookmarked.
OPENS_AT_ONCE = ("same-origin", "none")
#: What a colleague the session is shared with is told by the route.
REFUSED = "Only its owner opens gallery notebooks here"


def copy_name(notebook_name: str, entry_id: str) -> str:
    """The copy's name in the home, a launch's (spawners/gallery.py's Entry.copy_name)."""
    return f"{Path(notebook_name).stem}-{entry_id}.ipynb"


def copy_entry(gallery: Path, entry_id: str, root: Path) -> str:
    """Copy entry ``entry_id``'s notebook from the gallery into ``root``/gallery, as whoever runs
    this (the session's user), never over a copy there; its path under ``root``. LookupError
    when there is no such entry."""
    if not ENTRY_ID.fullmatch(entry_id):
        raise LookupError(entry_id)
    try:
        entry = json.loads((gallery / entry_id / "entry.json").read_text())
        notebook = (gallery / entry_id / "notebook.ipynb").read_bytes()
    except (OSError, ValueError):
        raise LookupError(entry_id) from None
    name = copy_name(str(entry.get("notebook_name") or "notebook.ipynb"), entry_id)
    folder = root / HOME_FOLDER
    folder.mkdir(exist_ok=True)
    try:
        with open(folder / name, "xb") as f:  # a relaunch keeps what the user changed
            f.write(notebook)
    except FileExistsError:
        pass
    return f"{HOME_FOLDER}/{name}"


class GalleryOpenHandler(JupyterHandler):
    """``GET|POST aifactory/gallery/ID``: copy the entry's notebook into ~/gallery, open it."""

    @web.authenticated
    def get(self, entry_id: str) -> None:
        if self.request.headers.get("Sec-Fetch-Site", "") in OPENS_AT_ONCE:
            self.open_entry(entry_id)
            return
        self.finish(
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Open a gallery notebook</title></head>"
            "<body><main id='aifw-gallery-open'><h1>Open a gallery notebook in this JupyterLab?</h1>"
            f"<p>A copy of gallery entry {html.escape(entry_id)} goes to <code>~/{HOME_FOLDER}</code> "
            "(a copy already there is kept) and opens here, with this session's resources.</p>"
            f"<form method='post'>{self.xsrf_form_html()}<button type='submit'>Copy and open</button></form>"
            "</main></body></html>"
        )

    @web.authenticated
    def post(self, entry_id: str) -> None:
        self.open_entry(entry_id)

    def open_entry(self, entry_id: str) -> None:
        name, owner = getattr(self.current_user, "username", ""), os.environ.get("JUPYTERHUB_USER", "")
        if not name or name != owner:  # a colleague it is shared with: the copy would go into the owner's home
            self.refuse_colleague(owner)
            return
        gallery = os.environ.get(GALLERY_ENV, "")
        if not gallery:
            raise web.HTTPError(
                404,
                "this session does not know the gallery's folder (it started before the gallery could open notebooks "
                "in a running session): stop it and launch the notebook from the gallery page",
            )
        root = Path(self.settings["server_root_dir"]).expanduser()
        try:
            path = copy_entry(Path(gallery), entry_id, root)
        except LookupError:
            raise web.HTTPError(404, f"no entry {entry_id} in the gallery (it may have been withdrawn)") from None
        except OSError as e:
            raise web.HTTPError(500, f"the copy into ~/{HOME_FOLDER} failed: {e.strerror}") from None
        self.log.info("aifactory_workbench.lab.publish: gallery entry %s opened as %s", entry_id, path)
        self.redirect(url_path_join(self.base_url, "lab", "tree", quote(path)))

    def refuse_colleague(self, owner: str) -> None:
        """A 403 that says why, to a colleague the session is shared with (the server's own 403
        page says a share has ended, which is not so here)."""
        self.set_status(403)
        self.finish(
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{REFUSED}</title></head><body><main id='aifw-gallery-refused'><h1>{REFUSED}</h1>"
            f"<p>This JupyterLab is {html.escape(owner)}'s, shared with you: a gallery notebook opened here would be "
            f"copied into {html.escape(owner)}'s home. Open it from the gallery in your own session instead.</p>"
            "</main></body></html>"
        )


def _load_jupyter_server_extension(serverapp: Any) -> None:
    route = url_path_join(serverapp.web_app.settings["base_url"], "aifactory", "gallery", "([0-9a-f]{12})")
    serverapp.web_app.add_handlers(".*$", [(route, GalleryOpenHandler)])
    serverapp.log.info("aifactory_workbench.lab.publish: %s", route)


if __name__ == "__main__":
    sys.exit(main())
