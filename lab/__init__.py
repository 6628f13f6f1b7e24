"""What runs in a user's kernel: ``start_cluster()`` (Dask workers as the user's SLURM jobs)
and ``aifactory-kernel`` (kernels that load environment modules first).

Imports nothing of the hub's side; SLURM is reached through :mod:`slurm` alone."""
