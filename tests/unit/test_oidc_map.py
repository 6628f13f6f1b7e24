"""OpenID Connect sign-in without a provider: the identity map is applied once, and the
account it names is the one that was checked (issue 21, hole 11)."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from aifactory_workbench.hub.audit import AuditLog
from aifactory_workbench.hub.configure import update_auth
from aifactory_workbench.hub.oidc import WorkbenchOIDCAuthenticator

from .defaults import DEFAULTS


async def test_an_oidc_name_map_is_applied_once_and_its_result_checked(monkeypatch, tmp_path):
    """Issue 21, hole 11: a map whose values are also keys (carol's identity -> alice, and
    alice -> root) must sign carol in as alice, the account that was checked, never as root:
    the map used to be applied again by JupyterHub's own username_map, past the checks."""
    monkeypatch.setattr("aifactory_workbench.hub.oidc.may_sign_in", lambda name, groups: name == "alice")
    endpoints = {f"{k}_endpoint": f"http://127.0.0.1:9/{k}" for k in ("authorization", "token", "userinfo")}
    monkeypatch.setattr("aifactory_workbench.hub.oidc.discover", lambda issuer: endpoints)
    secret = tmp_path / "secret"
    secret.write_text("a-client-secret-of-the-hub")
    secret.chmod(0o600)
    auth_site = replace(
        DEFAULTS.auth,
        method="oidc",
        oidc_issuer="http://127.0.0.1:9",
        oidc_client_id="hub",
        oidc_client_secret_file=str(secret),
        oidc_username_claim="email",
        oidc_username_map={"carol@uni.example": "alice", "alice": "root"},
    )
    site = replace(DEFAULTS, hub=replace(DEFAULTS.hub, public_url="https://hub.example.eu/"), auth=auth_site)
    config = Config()
    update_auth(config, site, AuditLog(tmp_path / "audit.log"))
    auth = WorkbenchOIDCAuthenticator(config=config)
    info = {"email": "carol@uni.example", "email_verified": True}

    async def through_the_provider(handler, data):  # what oauthenticator's authenticate returns
        return {"name": auth.user_info_to_username(info), "auth_state": None}

    monkeypatch.setattr(auth, "authenticate", through_the_provider)
    browser = SimpleNamespace(headers={}, connection=SimpleNamespace(context=SimpleNamespace(address=("127.0.0.1", 1))))
    signed_in = await auth.get_authenticated_user(SimpleNamespace(request=browser), {})
    assert signed_in["name"] == "alice"


def test_jupyterhubs_own_username_map_is_refused_with_oidc():
    """The one map is the site's auth.oidc_username_map; JupyterHub's would apply after the checks."""
    with pytest.raises(TraitError, match="auth.oidc_username_map"):
        WorkbenchOIDCAuthenticator(username_map={"alice": "root"})
