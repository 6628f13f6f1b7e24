"""Waiting on the hub's servers and SLURM's jobs as they end, shared by the integration tests
of ending jobs (test_job_ends.py, test_nodes.py)."""

from __future__ import annotations

import time

from tests.harness import HubProcess, sh, wait_for


def wait_gone(hub: HubProcess, user: str, timeout: float) -> float:
    """Seconds until the hub no longer lists the user's server."""
    t0 = time.monotonic()
    wait_for(
        lambda: hub.server(user) is None, timeout, f"the hub still lists {user}'s server after {timeout}s", every=0.25
    )
    return time.monotonic() - t0


def wait_state(job_id: str, states: set[str], timeout: float = 60) -> str:
    seen = [""]

    def reached() -> str:
        seen[0] = sh("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State").strip().split(" ")[0]
        return seen[0] if seen[0] in states else ""

    if state := wait_for(reached, timeout, f"job {job_id} in one of {states}", fail=False):
        return state
    raise AssertionError(f"job {job_id} is {seen[0]!r}, not one of {states}")


def home_page(hub: HubProcess, user: str) -> str:
    return hub.login(user).get(f"{hub.url}/hub/home", timeout=30).text
