"""Who may sign in, and PAM sign-in that tells an attacker nothing (PAM itself replaced here;
tests/integration/test_sign_in.py plays the same against the real PAM)."""

import asyncio
import time

import pytest
from jupyterhub.auth import PAMAuthenticator
from traitlets.config import Config

from hub.accounts import may_sign_in
from hub.audit import AuditLog
from hub.configure import update_auth
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
    """Our authenticator over a PAM that accepts password "right" for anyone it is asked about."""
    asked = []

    async def fake_pam(self, handler, data):
        asked.append(data["username"])
        return data["username"] if data["password"] == "right" else None

    monkeypatch.setattr(PAMAuthenticator, "authenticate", fake_pam)
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
