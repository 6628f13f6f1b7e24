"""Start-time choices: the time from a change in the spawn form to its alternatives shown, and the
``sbatch --test-only`` calls each form state costs.

With one of the acc node's two GPUs held by bob's job, alice asks for 2 GPUs on acc (which waits),
each time with another walltime, so that every request is a new form state: SLURM is asked for
the request and up to three alternatives, one at a time.  The time is the estimate endpoint's
answer (what the form shows), plus the form's own pause of 0.4 s after a keystroke before it asks
(spawners/js/spawn-form.js).  The same state asked again is timed too (answered from the hub's
memory, no call).  Prints p50 and p95; asserts nothing.  Needs the mini cluster up.
Usage: /opt/aifactory/dev-venv/bin/python -m benchmarks.alternatives_latency [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from tests.harness import gpus_held, launch

#: spawn-form.js waits this long after a change before it asks the hub.
FORM_PAUSE = 0.4


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    hub = launch(form={"discovery_cache": 600, "usage_days": 30, "alternatives_after": 60})
    fresh: list[float] = []
    again: list[float] = []
    calls: list[float] = []
    offered: list[int] = []
    try:
        url = f"{hub.url}/hub/api/aifactory/estimate/alice"
        headers = {"Authorization": f"token {hub.user_token('alice')}"}
        with gpus_held("bob", 1):
            for i in range(args.runs):
                options = {"partition": "acc", "gpus": 2, "walltime": f"02:{i % 60:02d}:00"}
                before, t0 = hub.test_only_calls(), time.monotonic()
                r = requests.post(url, json={"user_options": options}, headers=headers, timeout=120)
                fresh.append(time.monotonic() - t0 + FORM_PAUSE)
                r.raise_for_status()
                calls.append(hub.test_only_calls() - before)
                offered.append(len(r.json()["alternatives"]))
                t0 = time.monotonic()
                requests.post(url, json={"user_options": options}, headers=headers, timeout=120).raise_for_status()
                again.append(time.monotonic() - t0 + FORM_PAUSE)
                print(f"run {i + 1}: {fresh[-1]:.2f} s, {calls[-1]:.0f} test-only, {offered[-1]} offered", flush=True)
    finally:
        hub.shutdown()
    print(f"\nform change to alternatives shown, {args.runs} new form states (2 GPUs on acc, 1 of 2 held):")
    print("| | p50 | p95 | max |")
    print("|---|---:|---:|---:|")
    for name, values in (("new form state", fresh), ("the same state again", again)):
        print(f"| {name} | {percentile(values, 50):.2f} s | {percentile(values, 95):.2f} s | {max(values):.2f} s |")
    print(
        f"test-only calls per form state: mean {statistics.mean(calls):.1f}, max {max(calls):.0f} (bound 4); "
        f"alternatives offered: {min(offered)}-{max(offered)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
