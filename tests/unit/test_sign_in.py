"""Who may sign in, and PAM sign-in that tells an attacker nothing (PAM itself replaced here;
tests/integration/test_sign_in.py plays the same against the real PAM)."""

import asyncio
import io
import time

import pamela
import pytest
from traitlets.config import Config

from aifactory_workbench.hub.audit import AuditLog
from aifactory_workbench.hub.configure import update_auth
from aifactory_workbench.hub.pam import WorkbenchPAMAuthenticator
from aifactory_workbench.hub.site import SiteConfigError
from aifactory_workbench.root import check_password
from aifactory_workbench.root.accounts import may_sign_in

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
        ),
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
    monkeypatch.setattr("aifactory_workbench.hub.pam.may_sign_in", lambda name, groups: name in ("alice", "bob"))
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
    monkeypatch.setattr(
        "aifactory_workbench.root.check_password.may_sign_in",
        lambda name, groups: name == "alice" and "users" in groups,
    )
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


def test_the_password_helper_imports_only_what_it_needs():
    """Each sign-in starts the root-run helper anew (50 at once in a workshop): it imported the
    spawners' discovery and the SLURM client (0.10 s of imports of its 0.19 s; now 0.035 s)."""
    import subprocess
    import sys

    code = (
        "import sys, aifactory_workbench.root.check_password\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('aifactory_workbench'))))"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert loaded <= {
        "aifactory_workbench",
        "aifactory_workbench.root",
        "aifactory_workbench.root.accounts",
        "aifactory_workbench.root.check_password",
        "aifactory_workbench.slurm",
        "aifactory_workbench.slurm.values",
    }, loaded
