"""Spawn latency: from "start server" (REST API) to JupyterLab answering through the proxy.

Runs a hub against the mini cluster (which must be up: `make cluster-start`), starts and
stops one user's server N times on the idle cluster, and prints each time and the median.
Usage: /opt/aifactory/venv/bin/python benchmarks/spawn_latency.py [--runs 5] [--user alice]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.integration.hubprocess import HubError, HubProcess, launch, queued_jobs  # noqa: E402


def one_spawn(hub: HubProcess, user: str, token: str, timeout: float = 120) -> float:
    t0 = time.monotonic()
    r = hub.start(user)
    if r.status_code not in (201, 202):
        raise HubError(f"start refused: {r.status_code} {r.text}")
    while time.monotonic() - t0 < timeout:
        if hub.server(user) and hub.through_proxy(user, token).status_code == 200:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise HubError(f"JupyterLab of {user} did not answer within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--user", default="alice")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aifw-bench-") as directory:
        hub = launch(Path(directory))
        try:
            token = hub.user_token(args.user)
            times = []
            for i in range(args.runs):
                times.append(one_spawn(hub, args.user, token))
                print(f"run {i + 1}: {times[-1]:.2f} s", flush=True)
                hub.stop(args.user)
                while queued_jobs(args.user):
                    time.sleep(0.2)
        finally:
            hub.shutdown()
    print(
        f"spawn to JupyterLab answering, {args.runs} runs: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
