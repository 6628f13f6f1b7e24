"""A stop during a pending start (issue 38): JupyterHub cancels the spawn, waits one second and
stops the server.  Whatever step the start is at (sbatch running, job queued, job just running,
JupyterLab not yet reporting its port), the stop answers 202 or 204 (never 500), the job leaves
the queue, the hub forgets the server (no "ready" server left at the hub's own name), the proxy
never routes the user anywhere the job did not report, and the next start works."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import pytest

from .conftest import HubProcess, queued_jobs, wait_for

DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)


def routes_of(hub: HubProcess, user: str) -> list[str]:
    """Where the proxy sends the user's requests (JupyterHub's record of its routes)."""
    return [r["target"] for r in hub.api("GET", "/proxy").json().values() if r.get("data", {}).get("user") == user]


@pytest.mark.slow
@pytest.mark.parametrize("delay", DELAYS)
def test_a_stop_during_a_pending_start_cancels_it_and_leaves_nothing_behind(clean: HubProcess, delay: float):
    hub = clean
    assert hub.start("alice").status_code in (201, 202)
    time.sleep(delay)
    stopped = hub.api("DELETE", "/users/alice/server")
    assert stopped.status_code in (202, 204), f"{stopped.status_code} {stopped.text}"

    seen_routes: list[str] = []

    def settled() -> bool:
        seen_routes.extend(routes_of(hub, "alice"))
        return hub.server("alice") is None and not queued_jobs("alice") and not routes_of(hub, "alice")

    wait_for(settled, 45, "alice's server forgotten, her job out of the queue and her route gone", every=0.25)
    # Held for a while: no phantom server reappears once the cancelled spawn has ended.
    time.sleep(5)
    assert hub.server("alice") is None and not queued_jobs("alice") and not routes_of(hub, "alice")
    # The phantom's route went to the hub's own host name (a server's address before its job reports one).
    assert not [t for t in seen_routes if urlparse(t).hostname in (socket.gethostname(), "0.0.0.0")], seen_routes

    hub.start_ready("alice")  # the user can start again
    hub.stop("alice")
