"""Runs inside the JupyterLab job: listen on a free port, tell the hub, serve JupyterLab on it.

The compute node chooses the port (the hub cannot know what is free there; within the site's
``singleuser.port_range`` when it names one, for its firewalls) and reports it
through the job channel with the server's own token; then this process becomes
``jupyterhub-singleuser`` and serves on the very socket it reported.  (Closing it and letting
JupyterLab bind the port again left a window in which another user on the node could take
the port and receive this user's traffic.)

Before that it makes the TLS credentials of the Dask clusters started in this job (a key and a
self-signed certificate, as distributed's ``Security.temporary()`` makes them) in the folder the
job script made for them, and names them in Dask's config for everything the server starts:
schedulers, workers (on any node: the folder is on the shared home) and clients speak TLS and
accept only a peer that holds them.
"""

from __future__ import annotations

import errno
import json
import os
import random
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import urlparse, urlunparse

from aifactory_workbench.job.dask_tls import dask_credentials
from aifactory_workbench.job.server_compat import serve_on_socket

CHANNEL_PATH = "aifactory/job-port"
#: The folder (this job's own, on the shared home) where the job script wants Dask's credentials.
DASK_TLS_ENV = "AIFACTORY_DASK_TLS"
#: The ports JupyterLab may listen on, as the job script names them (LOW-HIGH; "": any).
PORT_RANGE_ENV = "AIFACTORY_PORT_RANGE"


class NoFreePort(OSError):
    """Every port of the site's range is taken on this node."""


def port_range(text: str) -> range | None:
    """The job script's ``LOW-HIGH`` (the site's singleuser.port_range, inclusive) as a range;
    None for "" (any free port). ValueError for anything else."""
    if not text:
        return None
    low, sep, high = text.partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 1 <= int(low) <= int(high) <= 65535):
        raise ValueError(f"{PORT_RANGE_ENV}={text!r} is not LOW-HIGH")
    return range(int(low), int(high) + 1)


def listening_socket(ports: range | None = None) -> socket.socket:
    """A TCP socket on a free port (one of ``ports``, tried from a random one on so that jobs
    sharing a node seldom try the same; any port for None), already listening: from the moment
    its port is known, no one else on the node can bind it (SO_REUSEPORT is not set, and would
    need the same user). :class:`NoFreePort` when every port of ``ports`` is taken."""
    if ports is None:
        return _listen(0)
    start = random.randrange(len(ports))
    for port in (*ports[start:], *ports[:start]):
        try:
            return _listen(port)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise NoFreePort(
        f"no free port in {ports[0]}-{ports[-1]} on {socket.gethostname()} (the site's singleuser.port_range): "
        f"all {len(ports)} are in use; tell the site's support, or start again on another node"
    )


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


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
    """POST {"port": N, "job_id": ID} to the hub with the server's token (the job id: so that a
    replaced job's report is not taken for its replacement's); raise on any refusal."""
    url = env["JUPYTERHUB_API_URL"].rstrip("/") + "/" + CHANNEL_PATH
    request = urllib.request.Request(
        url,
        data=json.dumps({"port": port, "job_id": env.get("SLURM_JOB_ID", "")}).encode(),
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


def stamp() -> str:
    """Now, as the job's log writes times: local ISO 8601 to the millisecond."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def main(argv: list[str] | None = None) -> int:
    started = stamp()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or os.path.basename(args[0]) != "jupyterhub-singleuser":
        print("usage: aifactory-singleuser /path/to/jupyterhub-singleuser [ARGS...]", file=sys.stderr)
        return 2
    if os.environ.get(DASK_TLS_ENV):
        try:
            os.environ.update(dask_credentials(os.environ[DASK_TLS_ENV]))
        except OSError as e:
            print(f"aifactory-singleuser: could not make this job's Dask credentials: {e}", file=sys.stderr)
            return 4
    try:
        sock = listening_socket(port_range(os.environ.get(PORT_RANGE_ENV, "")))
    except (NoFreePort, ValueError) as e:
        print(f"aifactory-singleuser: {e}", file=sys.stderr)
        return 5
    port = sock.getsockname()[1]
    try:
        report_port_with_retries(port, dict(os.environ))
    except (urllib.error.URLError, KeyError, OSError) as e:
        print(f"aifactory-singleuser: could not report port {port} to the hub: {e}", file=sys.stderr)
        return 3
    # The times (to the millisecond) let benchmarks/start_phases.py cut a start into phases.
    print(
        f"aifactory-singleuser: JupyterLab serves on port {port} (launcher {started}, reported {stamp()})", flush=True
    )
    if os.environ.get("JUPYTERHUB_SERVICE_URL"):
        os.environ["JUPYTERHUB_SERVICE_URL"] = with_port(os.environ["JUPYTERHUB_SERVICE_URL"], port)
    # sudo's secure_path replaced PATH on the way in: put this environment first again
    # so that terminals and kernels find its python, pip and jupyter.
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([bindir, *(p for p in path if p and p != bindir)])
    serve_on_socket(sock)
    from jupyterhub.singleuser import main as singleuser_main

    sys.argv = args
    return singleuser_main() or 0


if __name__ == "__main__":
    sys.exit(main())
