"""JupyterHub's entry point: all site choices live in the site file (see README)."""

import sys

from aifactory.hub_config import configure
from aifactory.site_config import SiteConfigError, load_site_config

try:
    configure(c, load_site_config())  # noqa: F821 - `c` is provided by JupyterHub
except SiteConfigError as error:
    # SystemExit passes through traitlets' config loader: the hub refuses to start.
    sys.exit(f"AI Factory Workbench will not start: {error}")
