"""Federated login: OpenID Connect through oauthenticator, mapped to local Unix accounts.

Outside companies sign in with their own identity provider, but JupyterLab still runs as
a Unix user of the machine (SLURM charges and isolates by Unix user).  An identity claim
is mapped to that account; a person whose identity maps to none is refused with a page
that says so and whom to ask, never with a traceback and never with a hub user that
could not start anything.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any, NoReturn

from oauthenticator.generic import GenericOAuthenticator
from traitlets import Any as AnyTrait
from traitlets import Dict, Set, TraitError, Unicode, validate

from aifactory_workbench.root.accounts import may_sign_in
from aifactory_workbench.spawners.messages import spawn_exception

DISCOVERY_PATH = "/.well-known/openid-configuration"


def discover(issuer: str, timeout: float = 10) -> dict[str, Any]:
    """The provider's endpoints, from its discovery document (checked at hub start-up)."""
    url = issuer.rstrip("/") + DISCOVERY_PATH
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - an admin-set https/http URL
        meta: dict[str, Any] = json.load(response)
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint") if k not in meta]
    if missing:
        raise ValueError(f"{url} lacks {', '.join(missing)}")
    return meta


class WorkbenchOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator whose hub user is the Unix account linked to the identity."""

    unix_account_map = Dict(
        help="Identity claim value -> Unix user name (the site's auth.oidc_username_map), applied once, before "
        "the account is checked. Empty: the claim's value must itself be the Unix user name.",
    ).tag(config=True)

    allowed_unix_groups = Set(
        help="Unix groups whose members may use the hub (never empty); an identity mapped to anyone else is refused.",
    ).tag(config=True)

    support_contact = Unicode(help="Whom a refused person should ask, as shown on the refusal page.").tag(config=True)

    audit = AnyTrait(None, allow_none=True, help="The hub.audit.AuditLog that refusals are recorded in.").tag(
        config=True
    )

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        """The Unix account linked to the identity: the claim (a verified e-mail, or the subject)
        through unix_account_map, an existing non-system account in an allowed group; else a 403."""
        identity: str = super().user_info_to_username(user_info)
        if self.username_claim == "email" and user_info.get("email_verified") is not True:
            self.refuse(
                identity,
                "e-mail not verified",
                f"You signed in with {self.login_service} as {identity}, but {self.login_service} does not "
                f"confirm that this e-mail address is yours, so it cannot be linked to an account here. "
                f"Verify the address with {self.login_service}, or ask {self.support_contact}.",
            )
        unix: str = self.unix_account_map.get(identity, "") if self.unix_account_map else identity
        if not (unix and may_sign_in(unix, self.allowed_unix_groups)):
            self.refuse(
                identity,
                "no linked Unix account",
                f"You signed in with {self.login_service} as {identity}, but no account on this "
                f"supercomputer is linked to that identity, so JupyterLab cannot run for you here. "
                f"If you belong to a project on this machine, ask {self.support_contact} to link "
                f"{identity} to your account.",
            )
        return unix

    def normalize_username(self, username: str) -> str:
        """The Unix account checked above is the hub user, as it is: JupyterHub's own
        normalisation (lower case, its username_map) would name another account, unchecked."""
        return username

    @validate("username_map")
    def _one_map(self, proposal: Any) -> dict[str, str]:
        if proposal["value"]:
            raise TraitError(
                "WorkbenchOIDCAuthenticator.username_map: not accepted; identities are mapped to Unix accounts "
                "by the site file's auth.oidc_username_map, once, before the account is checked"
            )
        value: dict[str, str] = proposal["value"]
        return value

    def refuse(self, identity: str, reason: str, message: str) -> NoReturn:
        if self.audit is not None:
            self.audit.record("login_refused", user=str(identity), reason=reason)
        raise spawn_exception(message, reason="no_linked_account", status_code=403)

    async def check_allowed(self, username: str, auth_model: Any) -> bool:
        """The mapping above already required a Unix account in an allowed group."""
        return True
