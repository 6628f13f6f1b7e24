"""papermill's engine ``aifactory`` (pyproject.toml's entry point), which notebook jobs run with:
nbclient's, with the notebook's kernel on Unix sockets of its own (lab/private_kernels.py), never
on TCP ports that another tenant on the node could reach. A module of its own: papermill loads
it while it is itself being imported, and the session's server never imports papermill."""

from __future__ import annotations

from typing import Any

from papermill.engines import NBClientEngine

from aifactory_workbench.lab.private_kernels import PrivateKernelManager


class PrivateEngine(NBClientEngine):
    """nbclient's engine, with the notebook's kernel started by :class:`PrivateKernelManager`."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        return super().execute_managed_notebook(
            nb_man, kernel_name, kernel_manager_class=PrivateKernelManager, **kwargs
        )
