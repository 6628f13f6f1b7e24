"""A kernel's channels reachable by its owner alone.

Every port a user's process opens on a node is reachable by every other tenant with a job or a
login there, loopback included. Jupyter's kernels listen on five TCP ports of 127.0.0.1 by
default: their requests are signed with the connection file's key, so no one else can run code
in them, but the iopub port publishes every output (printed secrets, data, tracebacks) to any
process that subscribes. bob, with a job on alice's node, read her notebook's outputs that way.

Here a kernel speaks ZeroMQ over Unix sockets (Jupyter's ``ipc`` transport) in a folder of its
owner's alone (mode 0700, an unguessable name): no other user can connect to them.

* The JupyterLab session's kernels: :func:`keep_kernels_private`, when the session's server
  extension loads, makes every kernel manager the server creates use that transport, whatever a
  config file says, and puts the connection files, and so the sockets, in a fresh folder inside
  the job's private folder (``TMPDIR``, on the node's own disk; a socket's path must stay under
  108 bytes, which a site's long home paths would break).
* A notebook job's kernel (``aifactory-run-notebook``, papermill): papermill reads no Jupyter
  config, so it runs with the ``aifactory`` engine (lab/notebook_engine.py), whose kernel manager
  is :class:`PrivateKernelManager`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

#: Jupyter's name of the transport over Unix sockets.
TRANSPORT = "ipc"
#: The longest Unix socket path Linux accepts (``sun_path`` less its terminating byte).
MAX_SOCKET_PATH = 107
#: What a socket's path adds to the folder: "/kernel-<uuid>-ipc-<n>" (n below 100000).
SOCKET_NAME_LENGTH = len("/kernel-") + 36 + len("-ipc-") + 5


def private_folder(prefix: str = "aifw-kernels-") -> str:
    """A new folder of this user's alone (mode 0700, a name no one could make first) in the
    job's private folder (``TMPDIR``), or in /tmp when that path would make sockets too long."""
    parent = os.environ.get("TMPDIR") or None
    if parent and len(parent) + 1 + len(prefix) + 8 + SOCKET_NAME_LENGTH > MAX_SOCKET_PATH:
        parent = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=parent)


def keep_kernels_private(serverapp: Any) -> str:
    """Make the server's kernels listen on Unix sockets in a new private folder; returns it.
    Every kernel manager the server's multi-kernel manager makes from now on is made with
    Jupyter's ``ipc`` transport (a kernel's connection file, and so its sockets' paths, are in
    the manager's ``connection_dir``)."""
    kernels = serverapp.kernel_manager
    make = kernels.kernel_manager_factory

    def make_private(*args: Any, **kwargs: Any) -> Any:
        return make(*args, **{**kwargs, "transport": TRANSPORT})

    kernels.kernel_manager_factory = make_private
    kernels.connection_dir = private_folder()
    return str(kernels.connection_dir)


class PrivateKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel listens on Unix sockets in a private folder of its own,
    removed when the kernel is shut down (papermill's and any other Python that starts kernels)."""

    @default("transport")
    def _private_transport(self) -> str:
        return TRANSPORT

    @default("ip")
    def _private_ip(self) -> str:
        self._private_folder = private_folder()
        return os.path.join(self._private_folder, "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        folder = getattr(self, "_private_folder", "")
        if folder and not restart:
            shutil.rmtree(folder, ignore_errors=True)
