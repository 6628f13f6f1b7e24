"""A JupyterLab server extension (runs in the user's server): an open websocket (a kernel, a
terminal, a collaborative document) ends when its holder's access to this server ends, as a
new request would be refused.

JupyterHub's HubOAuth asks the hub about a token at most every ``HubOAuth.cache_max_age``
seconds (15: config/jupyter); a revoked share or an expired token is refused from then on.
A websocket is checked only as it opens; here every open one is checked again every
``CHECK_INTERVAL`` seconds with that same cached answer, so it closes within the re-check
(plus a second).  An unreachable hub closes nothing: a hub restart does not cut kernels.

A refused page (a revoked colleague reloading) is ours too (``templates/error.html``): whose
JupyterLab it is and a way to the hub, not "403 : Forbidden".
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader
from tornado.ioloop import PeriodicCallback
from tornado.websocket import WebSocketHandler

from aifactory_workbench.lab.session import hub_home_url

TEMPLATES = Path(__file__).with_name("templates")

CHECK_INTERVAL = 1.0
#: The close code a revoked holder's websocket gets (RFC 6455: policy violation).
POLICY_VIOLATION = 1008


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "aifactory_workbench.lab.access"}]


class OpenSockets:
    """The server's open websockets, each with the credential it was opened with."""

    def __init__(self, hub_auth: Any, log: Any) -> None:
        self.hub_auth, self.log = hub_auth, log
        self.sockets: weakref.WeakKeyDictionary[WebSocketHandler, tuple[str, str]] = weakref.WeakKeyDictionary()

    def note(self, handler: Any) -> None:
        if isinstance(handler, WebSocketHandler):
            token = self.hub_auth.get_token(handler)
            if token:
                self.sockets[handler] = (token, self.hub_auth.get_session_id(handler))

    async def allowed(self, token: str, session_id: str) -> bool:
        try:
            user = await self.hub_auth.user_for_token(token, session_id=session_id, sync=False)
        except Exception as e:  # the hub is down or restarting: it says nothing about access
            self.log.warning(
                "aifactory_workbench.lab.access: the hub did not answer a token check (%s); nothing closed", e
            )
            return True
        return bool(user) and bool(self.hub_auth.check_scopes(self.hub_auth.access_scopes, user))

    async def check(self) -> None:
        holders: dict[tuple[str, str], list[WebSocketHandler]] = {}
        for handler, credential in list(self.sockets.items()):
            if handler.ws_connection is not None:
                holders.setdefault(credential, []).append(handler)
        for credential, handlers in holders.items():
            if not await self.allowed(*credential):
                for handler in handlers:
                    path = handler.request.path
                    self.log.warning("aifactory_workbench.lab.access: closing %s: its holder's access has ended", path)
                    self.sockets.pop(handler, None)
                    handler.close(POLICY_VIOLATION, "access to this server has ended")


def use_our_error_page(serverapp: Any) -> None:
    env = serverapp.web_app.settings["jinja2_env"]
    env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), env.loader])
    env.globals.update(aifw_owner=os.environ.get("JUPYTERHUB_USER", "its owner"), aifw_hub_home=hub_home_url())


def _load_jupyter_server_extension(serverapp: Any) -> None:
    use_our_error_page(serverapp)
    provider = serverapp.identity_provider
    hub_auth = getattr(provider, "hub_auth", None)
    if hub_auth is None:  # not a server of a hub
        return
    sockets = OpenSockets(hub_auth, serverapp.log)
    identify = provider.get_user

    async def get_user(handler: Any) -> Any:
        user = await identify(handler)
        if user is not None:
            sockets.note(handler)
        return user

    provider.get_user = get_user
    PeriodicCallback(sockets.check, CHECK_INTERVAL * 1000).start()
    serverapp.log.info(
        "aifactory_workbench.lab.access: open websockets end within %ss of their holder's access",
        hub_auth.cache_max_age,
    )
