"""Who may sign in at all: one rule for PAM and OpenID Connect alike.

A person's JupyterLab runs as a Unix account, so the account must exist, must not be a
system account (root, daemons, the hub's own) and must belong to one of the site's
allowed groups; an empty group list allows no one."""

from __future__ import annotations

import pwd
import re
from collections.abc import Collection
from functools import cache
from pathlib import Path

# Only the standard library and slurm.values: the root-run password helper (root/check_password.py)
# imports this module, on every sign-in (50 sign-ins at once start 50 helpers).
from aifactory_workbench.slurm.values import is_unix_user, user_groups


@cache
def first_user_uid(login_defs: Path = Path("/etc/login.defs")) -> int:
    """UID_MIN from login.defs (1000 when unset): accounts below it belong to the system."""
    try:
        found = re.search(r"^\s*UID_MIN\s+(\d+)", login_defs.read_text(), re.M)
    except OSError:
        found = None
    return int(found.group(1)) if found else 1000


def may_sign_in(name: str, allowed_groups: Collection[str]) -> bool:
    if not allowed_groups or not is_unix_user(name):
        return False
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return False
    return entry.pw_uid >= first_user_uid() and bool(user_groups(name) & set(allowed_groups))
