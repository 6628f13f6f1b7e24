"""Hub under load: N users log in, submit the spawn form and reach JupyterLab at once (default 50).

Creates N demo Unix users (group aifactory-users, SLURM account ehpc01) with passwords,
runs a hub against the mini cluster, and has every user, in parallel, log in (PAM), get a
JupyterLab job and reach it through the proxy, as a browser would (cookies, XSRF, OAuth).
Prints p50/p95 latency of pages and API calls, failures, and the hub's CPU and memory.
Removes the users afterwards.  Usage: python benchmarks/hub_load.py [--users 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.harness import DEPLOYED_FORM, HubProcess, launch, postgres_database

PASSWORD = "bench-load-pw"
TICKS = 100  # clock ticks per second for /proc/PID/stat


def create_users(names: list[str]) -> None:
    for name in names:
        subprocess.run(["useradd", "-m", "-G", "aifactory-users", name], check=False, capture_output=True)
    subprocess.run(["chpasswd"], input="".join(f"{n}:{PASSWORD}\n" for n in names), text=True, check=True)
    subprocess.run(["sacctmgr", "-i", "add", "user", ",".join(names), "account=ehpc01"], capture_output=True)


def remove_users(names: list[str]) -> None:
    subprocess.run(["sacctmgr", "-i", "delete", "user", ",".join(names)], capture_output=True)
    for name in names:
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


class Sampler(threading.Thread):
    """Hub process CPU seconds and peak resident memory, sampled every 0.5 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_rss_mb, self.running = pid, 0.0, True
        self.cpu0 = self.cpu_seconds()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def run(self) -> None:
        while self.running:
            rss = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{self.pid}/status").read_text())
            self.peak_rss_mb = max(self.peak_rss_mb, int(rss.group(1)) / 1024 if rss else 0)
            time.sleep(0.5)


#: As a user who picks the quick preset and tunes its memory down (50 servers of 320M fill the 16000M node).
QUICK_AND_SMALL = {"preset": "quick", "memory": "320M"}


def one_user(
    hub: HubProcess,
    name: str,
    pages: list,
    apis: list,
    timeout: float,
    password: str = PASSWORD,
    choice: dict[str, str] = QUICK_AND_SMALL,
    labs: list | None = None,
) -> str:
    """Log in, submit the spawn form with ``choice``, reach JupyterLab; return '' or what failed.
    The hub's pages are timed into ``pages``, its API into ``apis``, and JupyterLab's first page
    (served by the job, through OAuth and the proxy) into ``labs`` (default: ``pages``)."""
    s = requests.Session()
    s.verify = hub.verify  # an https front with its own CA (the demo's setup)

    def timed(bucket: list, method: str, url: str, **kw) -> requests.Response:
        t0 = time.monotonic()
        r = s.request(method, url if "://" in url else hub.url + url, timeout=60, verify=hub.verify, **kw)
        bucket.append(time.monotonic() - t0)
        return r

    page = timed(pages, "GET", "/hub/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    form = {"username": name, "password": password, "_xsrf": xsrf.group(1) if xsrf else ""}
    r = timed(pages, "POST", "/hub/login?next=/hub/spawn", data=form)  # follows to the spawn form
    if r.status_code >= 400 or 'id="aifw-form"' not in r.text:
        return f"login/spawn form {r.status_code}"
    r = timed(pages, "POST", "/hub/spawn", data={**choice, "_xsrf": s.cookies.get("_xsrf", "")})  # to spawn-pending
    if r.status_code >= 400:
        return f"spawn {r.status_code}"
    headers = {"X-XSRFToken": s.cookies.get("_xsrf", "")}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # As the spawn-pending page: follow the start's event stream until it says ready.
        said = follow_progress(s, hub, name, apis)
        if said.get("failed"):
            return f"server failed to start: {said.get('message', '')}"
        model = timed(apis, "GET", "/hub/api/user", headers=headers)
        if model.status_code >= 400:
            return f"api {model.status_code}"
        server = model.json().get("servers", {}).get("")
        if server and server.get("ready"):
            # As a browser: the page, through the OAuth redirects to the hub and back.
            lab = timed(pages if labs is None else labs, "GET", hub.user_url(name) + "lab")
            if lab.status_code == 200 and "jupyter-config-data" in lab.text:
                return ""
        elif server is None and model.json().get("pending") is None:
            return "server failed to start (the hub's errors are printed below)"
        time.sleep(1)
    return "timeout"


def follow_progress(s: requests.Session, hub: HubProcess, name: str, apis: list) -> dict:
    """The start's progress events (the stream the spawn-pending page's EventSource reads) until
    one says ready or failed, or the stream ends; returns the last event. The wait for the
    stream's first answer is timed into ``apis``."""
    url = f"{hub.url}/hub/api/users/{name}/server/progress"
    t0, last = time.monotonic(), {}
    with s.get(url, stream=True, timeout=60, verify=hub.verify) as r:
        apis.append(time.monotonic() - t0)
        if r.status_code != 200:
            return last
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                last = json.loads(line[len("data:") :])
                if last.get("ready") or last.get("failed"):
                    break
    return last


def outcome_of(hub: HubProcess, name: str, pages: list, apis: list, labs: list, timeout: float) -> str:
    """One user's run; a request that fails or times out is that user's failure, not the run's."""
    try:
        return one_user(hub, name, pages, apis, timeout, labs=labs)
    except requests.RequestException as e:
        return f"request failed: {e}"


def node_cpu_weight() -> str:
    """The CPU weight the mini cluster gave its nodes (cluster/minicluster.sh NODE_CPU_WEIGHT)."""
    pids = subprocess.run(["pgrep", "-x", "slurmd"], capture_output=True, text=True).stdout.split()
    if not pids:
        return "no slurmd"
    for line in Path(f"/proc/{pids[0]}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "aifactory-nodes" in path:
            v1 = "cpu" in controllers.split(",")  # cgroup v1's cpu controller, else v2's unified tree
            folder = Path("/sys/fs/cgroup/cpu" if v1 else "/sys/fs/cgroup", path.lstrip("/"))
            name, of = ("cpu.shares", 1024) if v1 else ("cpu.weight", 100)
            return f"{name} {(folder / name).read_text().strip()} of {of}"
    return "the login node's CPU weight (no cgroup of their own)"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the hub's database: SQLite (embedded) or the mini cluster's PostgreSQL",
    )
    args = parser.parse_args()
    names = [f"bench{i:02d}" for i in range(args.users)]
    create_users(names)
    pages: list[float] = []
    apis: list[float] = []
    labs: list[float] = []
    stack = contextlib.ExitStack()
    try:
        db_url = stack.enter_context(postgres_database()) if args.db == "postgresql" else ""
        hub = launch(hub={"poll_interval": 10, "db_url": db_url}, slurm={"memory": "320M"}, form=DEPLOYED_FORM)
        sampler = Sampler(hub.process.pid)
        sampler.start()
        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(args.users) as pool:
                outcomes = list(pool.map(lambda n: outcome_of(hub, n, pages, apis, labs, args.timeout), names))
            wall = time.monotonic() - t0
            cpu = sampler.cpu_seconds() - sampler.cpu0
            errors = [line for line in hub.log.read_text().splitlines() if line.startswith("[E ")]
        finally:
            sampler.running = False
            hub.shutdown()
            for name in names:
                subprocess.run(["scancel", "-u", name], check=False)
    finally:
        stack.close()
        remove_users(names)
    failures = [f"{n}: {o}" for n, o in zip(names, outcomes, strict=True) if o]
    print(f"\nhub under load ({args.db}): {args.users} users logging in and spawning at once")
    print(f"(the compute nodes' slurmd and jobs: {node_cpu_weight()})")
    print("| figure | value |")
    print("|---|---:|")
    print(f"| all users in JupyterLab (wall) | {wall:.1f} s |")
    for what, times in (("hub page", pages), ("JupyterLab's first page (the job serves it)", labs)):
        p50, p95 = percentile(times, 50), percentile(times, 95)
        print(f"| {what} latency p50 / p95 ({len(times)} requests) | {p50:.3f} / {p95:.3f} s |")
    print(
        f"| API latency p50 / p95 ({len(apis)} requests) | {percentile(apis, 50):.3f} / {percentile(apis, 95):.3f} s |"
    )
    print(f"| failures | {len(failures)} |")
    print(f"| hub CPU | {cpu:.1f} s ({100 * cpu / wall:.0f}% of one core) |")
    print(f"| hub peak memory (RSS) | {sampler.peak_rss_mb:.0f} MB |")
    for f in failures[:10]:
        print("  failed:", f)
    if failures:
        print(f"the hub logged {len(errors)} errors; the last ones:", *errors[-10:], sep="\n  ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
