"""Runs inside the JupyterLab job: pick a free port, tell the hub, become the server.

The compute node chooses the port (the hub cannot know what is free there) and reports
it through the job channel with the server's own token; then this process is replaced by
``jupyterhub-singleuser`` so that SLURM's signals reach JupyterLab directly.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse, urlunparse

CHANNEL_PATH = "aifactory/job-port"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def report_port_with_retries(port: int, env: dict[str, str], attempts: int = 6, pause: float = 5.0) -> None:
    """A hub under load may answer late or restart: retry what may pass later, not a refusal."""
    for attempt in range(attempts):
        try:
            report_port(port, env)
            return
        except urllib.error.HTTPError as e:
            if e.code != 409 or attempt == attempts - 1:  # 409: the hub is not waiting for it (yet)
                raise
        except urllib.error.URLError:
            if attempt == attempts - 1:
                raise
        time.sleep(pause)


def report_port(port: int, env: dict[str, str]) -> None:
    """POST {"port": N} to the hub with the server's token; raise on any refusal."""
    url = env["JUPYTERHUB_API_URL"].rstrip("/") + "/" + CHANNEL_PATH
    request = urllib.request.Request(
        url,
        data=json.dumps({"port": port}).encode(),
        headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30, context=tls_context(env)) as response:
        response.read()


def tls_context(env: dict[str, str]) -> ssl.SSLContext | None:
    """With internal_ssl the hub's API is https and wants this server's certificate."""
    if not env.get("JUPYTERHUB_SSL_CERTFILE"):
        return None
    context = ssl.create_default_context(cafile=env["JUPYTERHUB_SSL_CLIENT_CA"])
    context.load_cert_chain(env["JUPYTERHUB_SSL_CERTFILE"], env["JUPYTERHUB_SSL_KEYFILE"])
    return context


def with_port(service_url: str, port: int) -> str:
    parts = urlparse(service_url)
    return urlunparse(parts._replace(netloc=f"{parts.hostname}:{port}"))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: aifactory-singleuser /path/to/jupyterhub-singleuser [ARGS...]", file=sys.stderr)
        return 2
    env = dict(os.environ)
    port = free_port()
    try:
        report_port_with_retries(port, env)
    except (urllib.error.URLError, KeyError, OSError) as e:
        print(f"aifactory-singleuser: could not report port {port} to the hub: {e}", file=sys.stderr)
        return 3
    print(f"aifactory-singleuser: JupyterLab will listen on port {port}", flush=True)
    if env.get("JUPYTERHUB_SERVICE_URL"):
        env["JUPYTERHUB_SERVICE_URL"] = with_port(env["JUPYTERHUB_SERVICE_URL"], port)
    # sudo's secure_path replaced PATH on the way in: put this environment first again
    # so that terminals and kernels find its python, pip and jupyter.
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bindir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir)])
    os.execve(args[0], args, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
