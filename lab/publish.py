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
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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


if __name__ == "__main__":
    sys.exit(main())
