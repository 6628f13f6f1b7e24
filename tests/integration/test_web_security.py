"""Browser security as JupyterHub recommends: cookies, XSRF, content-security-policy."""

from __future__ import annotations

import time

from .conftest import HubProcess, queued_jobs


def test_hub_pages_forbid_framing_and_sniffing_and_cookies_are_httponly_lax_and_short(hub: HubProcess):
    session = hub.login("alice")
    headers = session.get(f"{hub.url}/hub/home", timeout=30).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "same-origin"
    login = next(c for c in session.cookies if c.name == "jupyterhub-hub-login")
    assert login.has_nonstandard_attr("HttpOnly")
    assert login.get_nonstandard_attr("SameSite", login.get_nonstandard_attr("samesite")) == "Lax"
    assert login.expires - time.time() < 1.01 * 86400  # hub.cookie_max_age_days: 1


def test_cookie_authenticated_posts_without_the_xsrf_token_are_refused(hub: HubProcess):
    session = hub.login("alice")
    for path, kwargs in [
        ("/hub/api/users/alice/server", {"json": {"user_options": {}}}),
        ("/hub/spawn", {"data": {"preset": "quick"}}),
        ("/hub/api/aifactory/estimate/alice", {"json": {"user_options": {}}}),
        ("/hub/api/aifactory/alternatives/alice", {"json": {"user_options": {"gpus": 1}}}),
    ]:
        r = session.post(f"{hub.url}{path}", timeout=30, **kwargs)
        assert r.status_code == 403, (path, r.status_code)
    assert queued_jobs("alice") == {} and hub.server("alice") is None
