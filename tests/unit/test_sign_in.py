"""Who may sign in, and PAM sign-in that tells an attacker nothing (PAM itself replaced here;
tests/integration/test_sign_in.py plays the same against the real PAM)."""

import asyncio
import io
import time

import pamela
import pytest
from traitlets.config import Config

from hub import check_password
from hub.accounts import may_sign_in
from hub.audit import AuditLog
from hub.configure import update_auth
from hub.oidc import WorkbenchOIDCAuthenticator
from hub.pam import WorkbenchPAMAuthenticator
from hub.site import SiteConfigError

from .defaults import DEFAULTS


def test_only_existing_non_system_members_of_a_named_group_may_sign_in():
    assert not may_sign_in("root", {"root"})  # a system account, even in the group
    assert not may_sign_in("nobody-here-xyz", {"aifactory-users"})
    assert not may_sign_in("root", set())  # an empty list allows no one
    assert not may_sign_in("../etc", {"aifactory-users"})


def test_oidc_with_no_allowed_group_stops_the_hub(tmp_path):
    from dataclasses import replace

    site = replace(
        DEFAULTS,
        hub=replace(DEFAULTS.hub, allowed_groups=[], public_url="https://hub.example.eu/"),
        auth=replace(
            DEFAULTS.auth,
            method="oidc",
            oidc_issuer="http://127.0.0.1:9",
            oidc_client_id="hub",
            oidc_client_secret_file="/x",
        ),  # fmt: skip
    )
    with pytest.raises(SiteConfigError, match="key 'hub.allowed_groups': value \\[\\] is not accepted with auth"):
        update_auth(Config(), site, AuditLog(tmp_path / "audit.log"))


@pytest.fixture
def pam(monkeypatch):
    """Our authenticator over a password helper that accepts "right" for anyone it is asked about."""
    asked = []

    async def fake_helper(self, name, password):
        asked.append(name)
        return password == "right"

    monkeypatch.setattr(WorkbenchPAMAuthenticator, "password_is_right", fake_helper)
    monkeypatch.setattr("hub.pam.may_sign_in", lambda name, groups: name in ("alice", "bob"))
    auth = WorkbenchPAMAuthenticator(failure_delay=0.3, lockout_failures=3, lockout_seconds=60)
    return auth, asked


def sign_in(auth, name, password):
    t0 = time.monotonic()
    result = asyncio.run(auth.authenticate(None, {"username": name, "password": password}))
    return result, time.monotonic() - t0


def test_a_non_member_is_refused_before_the_password_is_checked_and_as_slowly(pam):
    auth, asked = pam
    refused, slow = sign_in(auth, "outsider", "right")
    wrong, also_slow = sign_in(auth, "alice", "wrong")
    assert refused is None and wrong is None and asked == ["alice"]
    assert 0.3 <= slow < 0.5 and 0.3 <= also_slow < 0.5
    assert sign_in(auth, "alice", "right")[0] == "alice"


def test_repeated_failures_lock_the_account_even_for_the_right_password(pam):
    auth, asked = pam
    for _ in range(3):
        assert sign_in(auth, "bob", "wrong")[0] is None
    assert sign_in(auth, "bob", "right")[0] is None and asked.count("bob") == 3  # locked: PAM not asked
    assert sign_in(auth, "alice", "right")[0] == "alice"  # others are not locked out
    auth.failures["bob"] = (3, time.monotonic() - 61)  # the lock has run out
    assert sign_in(auth, "bob", "right")[0] == "bob"


async def test_an_oidc_name_map_is_applied_once_and_its_result_checked(monkeypatch, tmp_path):
    """Issue 21, hole 11: a map whose values are also keys (carol's identity -> alice, and
    alice -> root) must sign carol in as alice, the account that was checked, never as root:
    the map used to be applied again by JupyterHub's own username_map, past the checks."""
    monkeypatch.setattr("hub.oidc.may_sign_in", lambda name, groups: name == "alice")
    endpoints = {f"{k}_endpoint": f"http://127.0.0.1:9/{k}" for k in ("authorization", "token", "userinfo")}
    monkeypatch.setattr("hub.oidc.discover", lambda issuer: endpoints)
    secret = tmp_path / "secret"
    secret.write_text("a-client-secret-of-the-hub")
    secret.chmod(0o600)
    auth_site = replace(DEFAULTS.auth, method="oidc", oidc_issuer="http://127.0.0.1:9", oidc_client_id="hub",
                        oidc_client_secret_file=str(secret), oidc_username_claim="email",
                        oidc_username_map={"carol@uni.example": "alice", "alice": "root"})  # fmt: skip
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


@pytest.fixture
def fake_pamela(monkeypatch):
    """PAM that accepts password "right" for anyone it is asked about, and says whom it was asked."""
    asked = []

    def authenticate(name, password, service):
        asked.append((name, service))
        if password != "right":
            raise pamela.PAMError("Authentication failure")

    monkeypatch.setattr(pamela, "authenticate", authenticate)
    monkeypatch.setattr(pamela, "check_account", lambda name, service: None)
    monkeypatch.setattr("hub.check_password.may_sign_in", lambda name, groups: name == "alice" and "users" in groups)
    return asked


def helper(user, password: bytes, *extra):
    return check_password.main(["users"], [user, *extra], io.BytesIO(password))


def test_the_password_helper_answers_yes_or_no_for_members(fake_pamela):
    assert helper("alice", b"right") == check_password.YES
    assert helper("alice", b"wrong") == check_password.NO
    assert fake_pamela == [("alice", "login")] * 2


def test_the_password_helper_never_asks_pam_about_others(fake_pamela, capsys):
    """A compromised hub tries root's password through the helper (issue 21, hole 10)."""
    for user in ("root", "daemon", "bob"):
        assert helper(user, b"right") == check_password.REFUSED
        assert "refused" in capsys.readouterr().err
    assert helper("alice", b"right", "--extra") == check_password.REFUSED
    too_long = b"x" * (check_password.MAX_PASSWORD_BYTES + 1)
    assert helper("alice", too_long) == helper("alice", b"\xff") == helper("alice", b"right\0") == check_password.NO
    assert fake_pamela == []


def test_the_helper_refuses_system_accounts_whatever_the_groups():
    assert check_password.check("root", "x", {"root"}) == check_password.REFUSED
