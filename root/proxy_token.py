"""The token that the hub and its proxy share when the proxy runs on its own
(``hub.proxy_token_file``): made once by ``aifactory-site install``, kept after (both read it as
they start, so a new one would need both restarted), root's, readable by the hub's account alone."""

from __future__ import annotations

import grp
import os
import secrets
from pathlib import Path

#: root's file, of the hub account's group: neither may write it, the hub's account reads it.
MODE = 0o640


def proxy_token(path: Path, hub_group: str) -> bool:
    """Make ``path`` (in a folder of root's) hold a new token if it holds none, then make it
    root's, of ``hub_group``, ``MODE``; True when anything changed. A link there is refused."""
    gid = grp.getgrnam(hub_group).gr_gid
    changed = False
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        changed = True
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise RuntimeError(
            f"{path} (hub.proxy_token_file) is not a file ({e.strerror}): remove it, then install again"
        ) from None
    try:
        info = os.fstat(descriptor)
        if (info.st_uid, info.st_gid, info.st_mode & 0o7777) != (0, gid, MODE):
            os.fchown(descriptor, 0, gid)
            os.fchmod(descriptor, MODE)
            changed = True
    finally:
        os.close(descriptor)
    return changed
