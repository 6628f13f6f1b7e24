"""Analysis: monthly climatology of the example data on a SLURMCluster, a LocalCluster and
plain NumPy, and flox against use_flox=False (same data, same workers).

The data is made on the workers and persisted before timing, so each figure is the
climatology alone.  SLURM workers are jobs of the user running this (root: account root).
The SLURMCluster speaks TLS with credentials made for it, as in a JupyterLab job (issue 21);
the time until its workers are connected is also measured without TLS, for comparison.
Usage: python benchmarks/analysis.py [--years 10] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

# dask-jobqueue must be imported on the main thread, before anything starts threads.
from dask_jobqueue import SLURMCluster  # isort: skip

import dask.config
import numpy as np
import xarray as xr
from climate_data import Recipe, make_dataset, monthly_climatology_numpy
from dask.distributed import Client, LocalCluster, futures_of, wait

from aifactory_workbench.job.dask_tls import dask_credentials
from tests.harness import LOGIN_NODE

VENV_PYTHON = "/opt/aifactory/venv/bin/python"


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return min(times)


def on_cluster(client: Client, recipe: Recipe, repeat: int) -> dict[str, float]:
    temperature = make_dataset(recipe).temperature.persist()  # made on the workers
    wait(futures_of(temperature))
    out = {}
    for flox in (True, False):
        with xr.set_options(use_flox=flox):
            out[f"flox={flox}"] = best_of(repeat, lambda: temperature.groupby("time.month").mean().compute())
    return out


def slurm_cluster(workers: int) -> SLURMCluster:
    cluster = SLURMCluster(
        cores=1,
        processes=1,
        memory="2GB",
        queue="gpp",
        walltime="00:30:00",
        python=VENV_PYTHON,
        local_directory="/tmp",
        job_name="aifw-bench-dask",
        # Here, on the login node: the workers on compute nodes reach it across the cluster network.
        scheduler_options={"host": LOGIN_NODE.address},
    )
    cluster.scale(workers)
    return cluster


@contextlib.contextmanager
def job_tls() -> Iterator[None]:
    """Dask's config as a JupyterLab job gives it: TLS with credentials made for it (job/launcher.py),
    in a private folder that the worker jobs read (the compute nodes share this machine's /tmp)."""
    with tempfile.TemporaryDirectory(prefix="aifw-bench-dask-tls-") as folder:
        job_config = dask.config.collect_env(dask_credentials(folder))
        with dask.config.set(dask.config.merge(dask.config.config, job_config)):
            yield


def connect_seconds(workers: int) -> float:
    """From SLURMCluster() to ``workers`` workers connected."""
    t0 = time.perf_counter()
    with slurm_cluster(workers) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers, timeout=300)
        return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    recipe = Recipe(years=args.years)
    rows: dict[str, dict[str, float]] = {}

    values = make_dataset(recipe).temperature
    months = values["time.month"].values
    data = values.values  # computed here, in this process
    rows["NumPy (this process)"] = {"flox=n/a": best_of(args.repeat, lambda: monthly_climatology_numpy(data, months))}

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True) as local, Client(local) as client:
        rows[f"LocalCluster ({args.workers} workers)"] = on_cluster(client, recipe, args.repeat)

    with job_tls(), slurm_cluster(args.workers) as cluster, Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tls://"), cluster.scheduler_address
        client.wait_for_workers(args.workers, timeout=300)
        rows[f"SLURMCluster, TLS ({args.workers} worker jobs)"] = on_cluster(client, recipe, args.repeat)

    connected: dict[str, list[float]] = {"TLS": [], "no TLS": []}
    for _ in range(args.repeat):  # interleaved, so that both see the same cluster load
        with job_tls():
            connected["TLS"].append(connect_seconds(args.workers))
        connected["no TLS"].append(connect_seconds(args.workers))

    size_mb = np.prod(values.shape) * 4 / 1e6
    grid = f"{recipe.nlat}x{recipe.nlon}"
    print(f"\nmonthly climatology of {args.years} years, daily, {grid} ({size_mb:.0f} MB), best of {args.repeat}:")
    print("| where | flox | no flox | flox speed-up |")
    print("|---|---:|---:|---:|")
    for where, t in rows.items():
        if "flox=True" in t:
            yes, no = t["flox=True"], t["flox=False"]
            print(f"| {where} | {yes:.3f} s | {no:.3f} s | {no / yes:.1f}x |")
        else:
            print(f"| {where} | {t['flox=n/a']:.3f} s | | |")
    for how, seconds in connected.items():
        median, spread = statistics.median(seconds), f"{min(seconds):.1f}–{max(seconds):.1f} s"
        print(
            f"| SLURM workers connected after scale({args.workers}), {how} | median {median:.1f} s"
            f" ({spread}, {len(seconds)} runs) | | |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
