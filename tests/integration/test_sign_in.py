"""PAM sign-in against the real PAM: no password oracle, and a lockout (issue 11, hole 7).

An attacker with a list of user names and guessed passwords learns nothing from the answer:
a right password for an account that may not use the hub, a wrong one for a member and a
locked account all get the same page after the same time."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from tests.harness import demo_password

from .conftest import HubProcess, launch

OUTSIDER, OUTSIDER_PASSWORD = "aifw-outsider", "outsider-pw-1"
DELAY, LOCK_AFTER, LOCK_SECONDS = 4.0, 3, 20.0


@pytest.fixture(scope="module")
def guarded() -> Iterator[HubProcess]:
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", OUTSIDER], check=False, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{OUTSIDER}:{OUTSIDER_PASSWORD}\n", text=True, check=True)
    hub = launch(auth={"failure_delay": DELAY, "lockout_failures": LOCK_AFTER, "lockout_seconds": LOCK_SECONDS})
    yield hub
    hub.shutdown()
    subprocess.run(["userdel", OUTSIDER], check=False, capture_output=True)


def attempt(hub: HubProcess, user: str, password: str) -> tuple[bool, float, str]:
    """(signed in, seconds the answer took, the error shown)."""
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    t0 = time.monotonic()
    r = session.post(f"{hub.url}/hub/login", data={"username": user, "password": password, "_xsrf": xsrf}, timeout=60)
    took = time.monotonic() - t0
    error = re.search(r'class="[^"]*login_error[^"]*"[^>]*>\s*([^<]*)', r.text)
    return "/hub/login" not in r.url, took, error.group(1).strip() if error else ""


@pytest.mark.slow
def test_refusals_look_the_same_whatever_the_reason(guarded: HubProcess):
    outsider = attempt(guarded, OUTSIDER, OUTSIDER_PASSWORD)  # right password, not a member
    wrong = attempt(guarded, "alice", "not-her-password")
    nobody = attempt(guarded, "no-such-user", "x")
    assert not outsider[0] and not wrong[0] and not nobody[0]
    assert outsider[2] == wrong[2] == nobody[2] != ""
    times = [outsider[1], wrong[1], nobody[1]]
    assert min(times) >= DELAY and max(times) - min(times) < 0.5, times
    assert attempt(guarded, "alice", demo_password("alice"))[0]


@pytest.mark.slow
def test_an_account_is_locked_after_repeated_failures_then_released(guarded: HubProcess):
    for _ in range(LOCK_AFTER):
        assert not attempt(guarded, "bob", "guess")[0]
    locked = attempt(guarded, "bob", demo_password("bob"))
    assert not locked[0] and locked[1] >= DELAY  # the right password, refused like any other
    assert attempt(guarded, "alice", demo_password("alice"))[0]  # only bob is locked
    time.sleep(LOCK_SECONDS)
    assert attempt(guarded, "bob", demo_password("bob"))[0]
