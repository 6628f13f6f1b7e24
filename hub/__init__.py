"""What runs in the hub process: the site file and its validation (site.py, defaults.yaml),
its wiring into JupyterHub (configure.py), the hub's own endpoints (routes.py), the audit
log, sign-in (oidc.py), Dask's defaults for every server, and ``aifactory-site``."""
