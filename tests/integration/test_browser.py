"""A demo user logs in through a real browser (Debian's Chromium) and lands in JupyterLab."""

from __future__ import annotations

import pytest

from tests.harness import demo_password

from .conftest import HubProcess, chromium_page, queued_jobs


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


@pytest.mark.slow
def test_demo_user_logs_in_and_gets_jupyterlab_on_a_slurm_job(clean: HubProcess, page, tmp_path):
    page.goto(f"{clean.url}/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", demo_password("alice"))
    page.click("#login_submit")
    # The spawn form: limits from the cluster, presets that fill the fields, a live estimate.
    page.wait_for_selector("#aifw-form", timeout=60_000)
    assert "acc: up to 80 cores" in page.inner_text("#partition")
    page.check("#preset-gpu")
    assert page.input_value("#partition") == "acc" and page.input_value("#gpus") == "1"
    assert page.inner_text("#gpus-limit") == "at most 2"
    page.wait_for_function("document.getElementById('aifw-start').textContent.includes('SLURM expects')")
    assert page.inner_text("#cost-gpu") == "2.0" and "Account ehpc01 has used" in page.inner_text("#aifw-usage")
    page.check("#preset-quick")
    assert page.input_value("#partition") == "gpp" and page.inner_text("#gpus-limit") == "none on gpp"
    page.click("button[type=submit]")
    page.wait_for_url("**/user/alice/lab**", timeout=120_000)
    page.wait_for_selector(".jp-LauncherCard", timeout=120_000)
    page.screenshot(path=str(tmp_path / "jupyterlab.png"))
    (job,) = queued_jobs("alice").values()
    assert job["state"] == "RUNNING" and job["user"] == "alice" and job["partition"] == "gpp"
    assert "Traceback" not in page.content()


def test_a_wrong_password_is_refused_in_the_page(hub: HubProcess, page):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", "not-the-password")
    page.click("#login_submit")
    page.wait_for_selector("text=Invalid username or password", timeout=30_000)
    assert queued_jobs("alice") == {}
