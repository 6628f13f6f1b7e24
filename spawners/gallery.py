"""The gallery of published notebooks: each entry is what reproduces a notebook (the notebook,
the kernel with its modules and exact package lock, the resources it ran with, the data paths
it reads), written once by the hub into a folder users can read but not change.

The hub writes entries (``hub/gallery_pages.py``); a spawner reads one when a user launches it:
the job then starts with the entry's resources and copies the notebook into the user's home.

A notebook published from a user's own environment (``aifactory-env``) brings that
environment's lock: its entry names a kernel made from the lock's hash, the stored notebook
names that kernel, and a launch's job builds it first (``aifactory-env build-lock``, once per
lock in the launcher's home: a relaunch finds it built).  Whether every pin of the lock can
still be installed is checked on the hub, with uv and the options the build uses
(:class:`EnvironmentChecks`), so the page says so before anyone starts a job.
"""

from __future__ import annotations

import asyncio
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

from aifactory_workbench.job.locks import GALLERY_ENV_PREFIX, pins

ENTRY_ID = re.compile(r"[0-9a-f]{12}")
#: The folder in a user's home where launched notebooks are copied.
HOME_FOLDER = "gallery"
#: lab/envs.py's command, in the users' venv: its build-lock is a launch's first step.
ENV_COMMAND = "aifactory-env"
#: An entry's environment lock, beside its notebook: what the launch's build reads.
LOCK_FILE = "environment.lock"
MAX_LOCK_BYTES = 1024 * 1024
#: The index options a published environment may carry to its rebuild (those aifactory-env
#: create takes); the index itself is uv's configuration, the site's, on the hub and the nodes.
INDEX_FLAGS = ("--no-index", "--offline")


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
    #: A user's environment (None: a site kernel): the kernel a launch builds, the site kernel
    #: it extends, its build's seconds and size, its Python and index options.
    environment: dict[str, Any] | None = None

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
        self.checks = EnvironmentChecks()

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
        environment: dict[str, Any] | None = None,
    ) -> Entry:
        """A new entry (never a change to an old one: a new version is a new entry). With an
        ``environment`` (:func:`checked_environment`), the stored notebook names its kernel."""
        if environment is not None:
            kernelspec = {"name": kernel["name"], "display_name": kernel.get("display_name", ""), "language": "python"}
            notebook = {**notebook, "metadata": {**notebook.get("metadata", {}), "kernelspec": kernelspec}}
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
            environment=environment,
        )
        folder = self.directory / entry_id
        folder.mkdir(parents=True)
        (folder / "notebook.ipynb").write_text(json.dumps(notebook, indent=1))
        (folder / "entry.json").write_text(json.dumps(entry.as_data(), indent=1))
        written = [folder / "notebook.ipynb", folder / "entry.json"]
        if environment is not None:
            (folder / LOCK_FILE).write_text(lock)
            written.append(folder / LOCK_FILE)
        for path in written:
            path.chmod(0o444)
        folder.chmod(0o555)
        return entry

    def withdraw(self, entry: Entry) -> None:
        folder = self.directory / entry.id
        folder.chmod(stat.S_IRWXU)
        shutil.rmtree(folder)


def environment_kernel(lock: str) -> str:
    """The kernel (and environment) a lock is built as: one per lock, in each launcher's home."""
    return GALLERY_ENV_PREFIX + hashlib.sha256(lock.encode()).hexdigest()[:12]


def checked_index(options: Any) -> list[str]:
    """Index options for the rebuild: only flags and absolute folders of wheels."""
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError("its index options are not a list of strings")
    checked, rest = [], list(options)
    while rest:
        option = rest.pop(0)
        if option in INDEX_FLAGS:
            checked.append(option)
        elif option == "--find-links" and rest and rest[0].startswith("/") and ".." not in rest[0].split("/"):
            checked += [option, rest.pop(0)]
        else:
            raise ValueError(
                f"{option!r} is not an index option a rebuild takes ({', '.join(INDEX_FLAGS)}, --find-links /DIR)"
            )
    return checked


def checked_environment(sent: Any, notebook_kernel: str) -> tuple[dict[str, Any], str]:
    """What an entry records of the environment a publisher sends (lab/envs.py's ``published``),
    and its lock; ValueError says what is wrong with it."""
    if not isinstance(sent, dict):
        raise ValueError("it is not an object")
    lock, build = sent.get("lock"), sent.get("build") or {}
    if sent.get("kernel") != notebook_kernel:
        raise ValueError(f"it is kernel {sent.get('kernel')!r}'s, and the notebook's kernel is {notebook_kernel!r}")
    if not isinstance(lock, str) or len(lock.encode()) > MAX_LOCK_BYTES:
        raise ValueError(f"its lock is not a text of at most {MAX_LOCK_BYTES // 1024} KiB")
    pins(lock)  # every line an exact pin, or ValueError naming the first that is not
    display, base = sent.get("display_name"), sent.get("base")
    if not isinstance(display, str) or not 0 < len(display) <= 120 or not isinstance(base, str):
        raise ValueError("its display name (1 to 120 characters) or its base kernel is missing")
    if not isinstance(build, dict):
        raise ValueError("its build record is not an object")
    seconds, size, python = build.get("seconds"), build.get("size"), build.get("python")
    numbers = all(isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 0 for n in (seconds, size))
    if build and (not numbers or not isinstance(python, str) or not re.fullmatch(r"3\.[0-9]{1,2}", python)):
        raise ValueError("its build record needs seconds and size (numbers) and the Python version (3.N)")
    return {
        "kernel": environment_kernel(lock),
        "display_name": display,
        "base": base,
        "seconds": seconds,
        "size": size,
        "python": python,
        "index": checked_index(build.get("index", [])),
    }, lock


def differences(lock: str, site_lock: str) -> list[tuple[str, str, str | None]]:
    """The packages of an entry's lock that the site kernel lacks or has at another version:
    (name, the entry's version, the site's or None)."""
    site = pins(site_lock)
    return [
        (name, version, site.get(name)) for name, version in sorted(pins(lock).items()) if site.get(name) != version
    ]


def build_command(gallery: Gallery, entry: Entry, venv: str) -> list[str]:
    """The job's step that builds the entry's environment (or finds it built) in the home."""
    env = entry.environment or {}
    return [
        os.path.join(venv, "bin", ENV_COMMAND),
        "build-lock",
        str(gallery.directory / entry.id / LOCK_FILE),
        env["kernel"],
        f"--from-kernel={env['base']}",
        f"--display-name={env['display_name']} (gallery)",
        *env.get("index", []),
    ]


def launch_steps(gallery: Gallery, entry: Entry, home: str, venv: str) -> list[list[str]]:
    """A launch's steps before JupyterLab: its environment built (or found), its notebook copied."""
    build = [build_command(gallery, entry, venv)] if entry.environment is not None else []
    return [*build, copy_command(gallery, entry, home)]


def copy_command(gallery: Gallery, entry: Entry, home: str) -> list[str]:
    """The job's step that puts the entry's notebook into ~/gallery (never over a copy there:
    a relaunch keeps what the user changed)."""
    folder = os.path.join(home, HOME_FOLDER)
    target = os.path.join(folder, entry.copy_name)
    script = 'mkdir -p "$1" && cp -n "$2" "$3" && chmod u+w "$3"'
    return ["sh", "-c", script, "sh", folder, str(gallery.notebook_path(entry)), target]


@dataclass(frozen=True)
class Verdict:
    """Whether an entry's environment can still be built: "ok", "broken" (a pin the index no
    longer has), "unchecked" (the check itself failed: never shown as broken) or "pending"."""

    state: str
    message: str = ""


class EnvironmentChecks:
    """``uv pip compile`` of an entry's pins, with no dependencies (the lock is whole), its Python
    and the index options its build uses: the hub's resolution of what the job would install.
    One check at a time per entry, ``concurrent`` at most, each within ``timeout`` seconds, its
    verdict kept ``ttl`` seconds. The index is uv's own configuration (the site's uv.toml)."""

    def __init__(self, ttl: float = 3600.0, timeout: float = 30.0, concurrent: int = 2) -> None:
        self.ttl, self.timeout = ttl, timeout
        self._verdicts: dict[str, tuple[float, Verdict]] = {}
        self._running: dict[str, asyncio.Task[Verdict]] = {}
        self._slots = asyncio.Semaphore(concurrent)

    def argv(self, entry: Entry) -> list[str]:
        from uv import find_uv_bin

        env = entry.environment or {}
        python = ["--python-version", env["python"]] if env.get("python") else []
        return [
            find_uv_bin(),
            "pip",
            "compile",
            "-",
            "--no-deps",
            "--no-header",
            "--quiet",
            "--no-cache",
            *python,
            *env["index"],
        ]

    async def verdict(self, entry: Entry, wait: float) -> Verdict | None:
        """The entry's verdict (None: a site kernel's entry), waiting at most ``wait`` seconds."""
        if entry.environment is None:
            return None
        known = self._verdicts.get(entry.id)
        if known is not None and time.monotonic() - known[0] < self.ttl:
            return known[1]
        task = self._running.get(entry.id)
        if task is None:
            task = self._running[entry.id] = asyncio.ensure_future(self._check(entry))
        done, _ = await asyncio.wait({task}, timeout=wait)
        return task.result() if done else Verdict("pending", "being checked now: reload the page in a moment")

    async def _check(self, entry: Entry) -> Verdict:
        try:
            async with self._slots:
                verdict = await self.resolve(entry)
        finally:
            self._running.pop(entry.id, None)
        self._verdicts[entry.id] = (time.monotonic(), verdict)
        return verdict

    async def resolve(self, entry: Entry) -> Verdict:
        pinned = "".join(f"{name}=={version}\n" for name, version in pins(entry.lock).items())
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(entry),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except (ImportError, OSError) as e:
            return Verdict("unchecked", f"uv could not run on the hub ({type(e).__name__})")
        try:
            _, err = await asyncio.wait_for(proc.communicate(pinned.encode()), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Verdict("unchecked", f"the package index did not answer within {self.timeout:.0f} s")
        said = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
        text = " ".join(line.removeprefix("error: ").removeprefix("cause: ") for line in said)[:400]
        if proc.returncode == 0:
            return Verdict("ok", "every pinned package can be installed")
        if said and "No solution found" in said[0]:
            return Verdict("broken", text.removeprefix("No solution found when resolving dependencies").strip(" :"))
        return Verdict("unchecked", text or f"uv exited with {proc.returncode}")
