"""JupyterHub's entry point: all site choices live in the site file (see README).

A site moving from stock batchspawner may add its ``c.SlurmSpawner.req_*`` lines above the
``configure`` call: they win over the site file, and a setting that cannot be honoured
stops the hub with its name."""

import sys

from aifactory_workbench.hub.configure import configure
from aifactory_workbench.hub.site import SiteConfigError, load_site_config

try:
    configure(c, load_site_config())  # noqa: F821 - `c` is provided by JupyterHub
except SiteConfigError as error:
    # SystemExit passes through traitlets' config loader: the hub refuses to start.
    sys.exit(f"AI Factory Workbench will not start: {error}")
