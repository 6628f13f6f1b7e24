"""A wrong password in a real browser (Debian's Chromium); the whole journey is test_journey.py."""

from __future__ import annotations

import pytest

from .conftest import HubProcess, chromium_page, queued_jobs


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


def test_a_wrong_password_is_refused_in_the_page(hub: HubProcess, page):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", "not-the-password")
    page.click("#login_submit")
    page.wait_for_selector("text=Invalid username or password", timeout=30_000)
    assert queued_jobs("alice") == {}
