"""The gallery of published notebooks: each entry is what reproduces a notebook (the notebook,
the kernel with its modules and exact package lock, the resources it ran with, the data paths
it reads), written once by the hub into a folder users can read but not change.

The hub writes entries (``hub/gallery_pages.py``); a spawner reads one when a user launches it:
the job then starts with the entry's resources and copies the notebook into the user's home.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ENTRY_ID = re.compile(r"[0-9a-f]{12}")
#: The folder in a user's home where launched notebooks are copied.
HOME_FOLDER = "gallery"


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    author: str
    published: str  # ISO 8601
    notebook_name: str
    kernel: str  # kernelspec name
    kernel_display: str
    modules: tuple[str, ...]
    lock: str  # the kernel's exact packages, one "name==version" per line
    resources: dict[str, Any]  # partition, account, qos, cpus, memory, gpus, walltime
    data_paths: tuple[str, ...]  # on shared storage: named, not copied

    @property
    def copy_name(self) -> str:
        """The notebook's name in a launcher's home (~/gallery/NAME): the entry's id keeps
        versions apart."""
        return f"{Path(self.notebook_name).stem}-{self.id}.ipynb"

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["modules"], data["data_paths"] = list(self.modules), list(self.data_paths)
        return data


def data_paths(notebook: dict[str, Any], shared_storage: list[str]) -> list[str]:
    """Paths on shared storage that the notebook's code names (read from there, not copied)."""
    if not shared_storage:
        return []
    roots = "|".join(re.escape(r.rstrip("/")) for r in shared_storage)
    pattern = re.compile(rf"""(?<![\w/])((?:{roots})/[^\s'"(),]+)""")
    found: list[str] = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            source = "".join(cell.get("source", ""))
            found += [p for p in pattern.findall(source) if p not in found]
    return found


class Gallery:
    """Entries under ``directory``: ``ID/entry.json`` and ``ID/notebook.ipynb``, read-only."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def entries(self) -> list[Entry]:
        found = []
        for path in sorted(self.directory.glob("*/entry.json")) if self.directory.is_dir() else []:
            entry = self.get(path.parent.name)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: e.published, reverse=True)

    def get(self, entry_id: str) -> Entry | None:
        if not ENTRY_ID.fullmatch(entry_id or ""):
            return None
        try:
            data = json.loads((self.directory / entry_id / "entry.json").read_text())
        except (OSError, ValueError):
            return None
        data["modules"], data["data_paths"] = tuple(data["modules"]), tuple(data["data_paths"])
        return Entry(**data)

    def notebook_path(self, entry: Entry) -> Path:
        return self.directory / entry.id / "notebook.ipynb"

    def publish(
        self,
        *,
        title: str,
        author: str,
        notebook_name: str,
        notebook: dict[str, Any],
        kernel: dict[str, Any],
        lock: str,
        resources: dict[str, Any],
        shared_storage: list[str],
    ) -> Entry:
        """A new entry (never a change to an old one: a new version is a new entry)."""
        text = json.dumps(notebook, sort_keys=True)
        published = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        entry_id = hashlib.sha256(f"{author}\0{published}\0{time.monotonic_ns()}\0{text}".encode()).hexdigest()[:12]
        entry = Entry(
            id=entry_id,
            title=title,
            author=author,
            published=published,
            notebook_name=Path(notebook_name).name,
            kernel=kernel["name"],
            kernel_display=kernel.get("display_name", kernel["name"]),
            modules=tuple(kernel.get("modules", [])),
            lock=lock,
            resources=resources,
            data_paths=tuple(data_paths(notebook, shared_storage)),
        )
        folder = self.directory / entry_id
        folder.mkdir(parents=True)
        (folder / "notebook.ipynb").write_text(json.dumps(notebook, indent=1))
        (folder / "entry.json").write_text(json.dumps(entry.as_data(), indent=1))
        for path in (folder / "notebook.ipynb", folder / "entry.json"):
            path.chmod(0o444)
        folder.chmod(0o555)
        return entry

    def withdraw(self, entry: Entry) -> None:
        folder = self.directory / entry.id
        folder.chmod(stat.S_IRWXU)
        shutil.rmtree(folder)


def copy_command(gallery: Gallery, entry: Entry, home: str) -> list[str]:
    """The job's step that puts the entry's notebook into ~/gallery (never over a copy there:
    a relaunch keeps what the user changed)."""
    folder = os.path.join(home, HOME_FOLDER)
    target = os.path.join(folder, entry.copy_name)
    script = 'mkdir -p "$1" && cp -n "$2" "$3" && chmod u+w "$3"'
    return ["sh", "-c", script, "sh", folder, str(gallery.notebook_path(entry)), target]
