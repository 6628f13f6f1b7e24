"""The one place where the job's side reaches into jupyter_server's internals.

Checked against jupyter_server 2.21.1 (with JupyterHub 6.1.1's ``jupyterhub-singleuser``).
``tests/unit/test_compat.py`` checks each name below in the installed version and fails with
this module's name when an upgrade changes it; it also fails when one of these names is used
anywhere else in hub/, spawners/, lab/, job/ or slurm/.  The hub's side has its own module,
``spawners/jupyterhub_compat.py``: the import contracts (pyproject's ``[tool.importlinter]``) let
``job`` import nothing of ours, so the two cannot be one.

What is relied on, and why:

* ``ServerApp._find_http_port(self) -> None`` (:func:`serve_on_socket`): called by
  ``init_httpserver`` (when no unix socket is set) to pick ``self.port``; replaced so that the
  port is the one of the socket the launcher already holds and reported to the hub.
* ``ServerApp._bind_http_server_tcp(self) -> bool`` (:func:`serve_on_socket`): called by
  ``_bind_http_server`` to listen on ``self.port``, True when it did; replaced so that the
  server adds the held socket (``self.http_server.add_sockets``) instead of binding the port
  again, which would leave a moment in which another user on the node could take it.
"""

from __future__ import annotations

import socket

#: The versions this module was checked against (tests/unit/test_compat.py reads them).
CHECKED_VERSIONS = {"jupyter_server": "2.21.1"}

#: The private names, as source text; no other file of ours may contain them.
PRIVATE_NAMES = ("_find_http_port", "_bind_http_server_tcp")


def serve_on_socket(sock: socket.socket) -> None:
    """Make jupyter_server (2.x) serve on ``sock`` instead of finding and binding a port itself."""
    from jupyter_server.serverapp import ServerApp

    port = sock.getsockname()[1]

    def use_our_port(app: ServerApp) -> None:
        app.port = port

    def serve_on_our_socket(app: ServerApp) -> bool:
        app.http_server.add_sockets([sock])
        return True

    ServerApp._find_http_port = use_our_port
    ServerApp._bind_http_server_tcp = serve_on_our_socket
