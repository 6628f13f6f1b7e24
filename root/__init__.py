"""What runs as root, or as root through sudo: the privilege line of the workbench.

Everything here runs with more rights than whoever calls it: the sudo helpers the hub asks
(``check_password``: yes or no for a password; ``extend_job``: more walltime for a running job),
``aifactory-site install`` (``site_install``, with the users' Dask config in ``dask_config``), and
the root operations of ``aifactory-workshop`` (seat accounts, materials, archives). The sign-in
rule both the helpers and the hub apply lives here too (``accounts``).

Its import contract (``pyproject.toml``, checked by ``make lint``): this package imports only the
SLURM layer, the job's constants and the schemas of the site file and the workshop file; nothing
of the hub's web code, JupyterHub or tornado. Every way into it is listed, with the test that
plays its attack, in ``docs/security/entry-points.md``.
"""
