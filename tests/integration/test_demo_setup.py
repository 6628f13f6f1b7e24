"""What a person walks, in the setup `make demo` runs (issue 22): the https front with the
demo's CA, each user's server on its own origin, internal TLS to the compute nodes. Several
paths passed the suite's plainer hubs and broke there."""

from __future__ import annotations

import re
import time

import pytest

from .conftest import HubProcess, chromium_page, queued_jobs, sh, sign_in


@pytest.mark.slow
def test_a_stopped_servers_address_says_why_and_leads_to_the_hub(demo_setup_hub: HubProcess):
    """Item 3: after alice's job ended, her server's address gave an unstyled 503 (the proxy
    refused the hub's internal certificate for alice's host) whose "home" link stayed on her
    origin and looped. Now: the hub's page, styled, with why the job ended and a way home."""
    hub = demo_setup_hub
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    sh("scancel", job_id)  # root, as an admin would (or the walltime): the hub learns why
    deadline = time.monotonic() + 60
    while hub.server("alice") is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert hub.server("alice") is None, "the hub did not notice the job's end"
    lab = f"{hub.user_url('alice')}lab"
    with chromium_page(*hub.chromium_args) as page:
        sign_in(page, hub, "alice")
        answers = []
        page.on("response", lambda r: answers.append((r.status, r.url)))
        page.goto(lab)
        page.wait_for_selector("#aifw-not-running-heading", timeout=30_000)
        assert [a for a in answers if a[0] >= 500] == [], answers
        assert page.inner_text("#aifw-not-running-heading") == "Your JupyterLab is not running"
        reason = page.inner_text("#aifw-last-end")
        assert re.match(rf"Your JupyterLab job {job_id} has ended: ", reason), reason
        styled = page.evaluate("getComputedStyle(document.querySelector('#start')).backgroundColor")
        assert styled not in ("", "rgba(0, 0, 0, 0)"), "the page's stylesheet did not load"
        page.click("#aifw-not-running-home")
        page.wait_for_url(f"{hub.url}/hub/home", timeout=30_000)
        assert page.locator("#start").count() == 1
