"""A wheel the tests write themselves (no build output in the repository, no index needed):
the unit tests of aifactory-env and its integration test install it."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

#: A package no site kernel has, at a pinned version.
PROBE, PROBE_VERSION = "aifw_probe", "0.3.1"


def write_wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module saying its version (PEP 427, written by hand)."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test_envs\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel
