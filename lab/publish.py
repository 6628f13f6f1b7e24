"""``aifactory-publish``: publish a notebook of this JupyterLab session to the site's gallery.

    aifactory-publish analysis.ipynb --title "Monthly climatology, 10 years"

Run in a JupyterLab terminal or a notebook cell.  The hub reads the notebook from this server
and records what reproduces it: the kernel with its exact package lock, its modules, the
resources this session runs with, and the shared-storage paths it reads.  A notebook in one
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aifactory-publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--title", required=True)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if "JUPYTERHUB_API_TOKEN" not in env:
        print("aifactory-publish: run it inside a JupyterLab session of the hub", file=sys.stderr)
        return 1
    path = server_path(args.notebook, Path(env.get("JUPYTERHUB_ROOT_DIR", env.get("HOME", "."))))
    server = env.get("JUPYTERHUB_SERVER_NAME", "")
    url = f"{env['JUPYTERHUB_API_URL'].rstrip('/')}/aifactory/gallery/publish/{env['JUPYTERHUB_USER']}/{server}"
    environment = environment_of(args.notebook)
    body = json.dumps({"path": path, "title": args.title, "environment": environment}).encode()
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
    if entry.get("environment"):
        print(f"its environment {environment['kernel']!r}: {entry['environment']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
