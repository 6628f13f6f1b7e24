"""The gallery of published notebooks: each entry is what reproduces a notebook (the notebook,
the kernel with its modules and exact package lock, the resources it ran with, the data paths
it reads), written once by the hub into a folder users can read but not change.

The hub writes entries (``hub/gallery_pages.py``); a spawner reads one when a user launches it:
the job then starts with the entry's resources and copies the notebook into the user's home.

A notebook published from a user's own environment (``aifactory-env``) brings that
environment's lock.  Whoever launches it installs it as themselves, so what it installs is
never the publisher's choice: when publishing, the hub resolves every pin against the SITE's
package index (``environments`` in the site file, :attr:`Gallery.index`) and records the sha256
of each file it may install (:meth:`EnvironmentChecks.hashes`; a pin the site's index lacks is
refused, by name).  The entry's ``environment.lock`` is that hashed lock; a launch's job builds it
(``aifactory-env build-lock``, ``uv pip install --require-hashes --no-deps``) from the site's
index options, which the hub puts into the step's argv (:func:`build_command`), never an
entry's.  The kernel's name is the hash of everything that decides what is installed (the
hashed lock, the index options, the base kernel, the Python: :func:`environment_kernel`), and
the build there is reused only if it recorded that same recipe (lab/envs.py).  Whether the
pinned files can still be installed is checked on the hub, bounded and cached, so the page says
so before anyone starts a job.
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
from typing import TYPE_CHECKING, Any

from aifactory_workbench.job.locks import GALLERY_ENV_PREFIX, normalised, pins
from aifactory_workbench.slurm.job_fields import USER_OPTIONS, problems
from aifactory_workbench.slurm.values import format_duration, format_memory, parse_duration, parse_memory_mb

if TYPE_CHECKING:
    from aifactory_workbench.slurm.choices import Choices, Partition

ENTRY_ID = re.compile(r"[0-9a-f]{12}")
#: The folder in a user's home where launched notebooks are copied.
HOME_FOLDER = "gallery"
#: The gallery's folder, as every job has it: a running JupyterLab opens an entry from it
#: (lab/publish.py, the gallery page's "Open in your running JupyterLab").
GALLERY_DIR_ENV = "AIFACTORY_GALLERY_DIR"
#: lab/envs.py's command, in the users' venv: its build-lock is a launch's first step.
ENV_COMMAND = "aifactory-env"
#: An entry's environment lock, beside its notebook: what the launch's build reads.
LOCK_FILE = "environment.lock"
MAX_LOCK_BYTES = 1024 * 1024
#: The index options of a site that lists none: nothing can be installed, so an environment
#: is refused at publish ("not on the site's index"). The hub passes the site file's.
NO_SITE_INDEX = ("--no-index",)
#: The index options an environment's own build record may name (aifactory-env create's): each
#: must be the site's own (a folder or URL of the site file's), or publishing is refused.
INDEX_FLAGS = ("--no-index", "--offline")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
#: What an entry records of its resources: what the notebook needs, never whose hours pay for
#: it (account, QoS, reservation: each launcher's own). Entries published before record more.
NEEDS = ("partition", "cpus", "memory", "gpus", "walltime")
#: A publisher's choice of the session's resources (``aifactory-publish --like-session``).
LIKE_SESSION = "session"


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
    #: it extends, its build's seconds and size, its Python, the site's index options it was
    #: pinned against and each package's file hashes (``hashes``: absent in entries published
    #: before hashes were recorded, which are never built).
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


def recorded_resources(chosen: Any, session: dict[str, Any], site: dict[str, Any]) -> dict[str, Any]:
    """What an entry records (:data:`NEEDS`), as its publisher chose: nothing chosen (None) is
    the site's default request without a GPU, never the session's GPUs or cores unasked;
    ``"session"`` the session's; a mapping those fields over the site's default (GPUs without a
    partition: the session's partition). ValueError says what is wrong with a choice."""
    if chosen == LIKE_SESSION:
        return {k: session[k] for k in NEEDS}
    modest = {k: site[k] for k in NEEDS} | {"gpus": 0}
    if chosen is None:
        return modest
    if not isinstance(chosen, dict) or not set(chosen) <= set(NEEDS):
        raise ValueError(f'resources are "{LIKE_SESSION}" or an object of {", ".join(NEEDS)}')
    for name, value in chosen.items():
        number = name in ("cpus", "gpus")
        if type(value) is not (int if number else str):
            raise ValueError(f"{name} is {'a whole number' if number else 'text'}, not {value!r}")
    wrong = problems(chosen)
    if wrong:
        raise ValueError("; ".join(f"{name}: {value!r} is not {accepted}" for name, value, accepted in wrong))
    partition = {"partition": session["partition"]} if chosen.get("gpus") and "partition" not in chosen else {}
    recorded: dict[str, Any] = modest | partition | chosen
    return recorded


@dataclass(frozen=True)
class Launch:
    """An entry's recorded resources as one launcher may ask them (``options``: what the form
    shows and a start asks, before the launcher's own choices), and each change made for them,
    in plain words (``adapted``): the form says them in one sentence (:attr:`text`)."""

    options: dict[str, Any]
    adapted: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return f"Adapted for you: {'; '.join(self.adapted)}." if self.adapted else ""


def launch_options(entry: Entry, choices: Choices) -> Launch:
    """The entry's resources adapted to the launcher's ``choices``, quietly: a partition, account,
    QoS or reservation that is not theirs becomes their own (their default account, a partition
    with the GPUs it asks if they have one), and what the partition or QoS cannot give becomes
    the most it gives. What the launcher may ask is kept as recorded."""
    recorded = {k: v for k, v in entry.resources.items() if k in USER_OPTIONS and v not in ("", None)}
    options, said = dict(recorded), []
    for adapt in (_partition, _account, _qos, _reservation, _limits):
        options, words = adapt(options, choices)
        said += words
    return Launch(options, tuple(said))


Adapted = tuple[dict[str, Any], list[str]]


def _partition(options: dict[str, Any], choices: Choices) -> Adapted:
    """A partition not open to the launcher: theirs with the GPUs asked, else their default."""
    old = options.get("partition")
    if not old or old in choices.partitions or not choices.partitions:
        return options, []
    gpus = options.get("gpus") or 0
    new = min(choices.partitions.values(), key=lambda p: (p.max_gpus < gpus, not p.default, p.name)).name
    return options | {"partition": new}, [f"partition {new} (the publisher's {old} is not open to you)"]


def _account(options: dict[str, Any], choices: Choices) -> Adapted:
    """An account that is not the launcher's: their default (or first) on the partition."""
    old, partition = options.get("account"), options.get("partition")
    mine = choices.accounts(partition)
    if not old or old in mine:
        return options, []
    new = mine[0] if mine else ""
    return options | {"account": new}, [f"account {new or 'your default'} (the publisher's {old} is not yours)"]


def _qos(options: dict[str, Any], choices: Choices) -> Adapted:
    """A QoS the launcher's account may not use: the account's default QoS."""
    old, partition = options.get("qos"), options.get("partition") or ""
    account = options.get("account") or choices.default_account
    if not old or old in choices.qos(account, partition):
        return options, []
    new = choices.default_qos(account, partition)
    return options | {"qos": ""}, [f"QoS {new or 'your default'} (the publisher's {old} is not open to you)"]


def _reservation(options: dict[str, Any], choices: Choices) -> Adapted:
    """A reservation not open to the launcher (or on another partition): none."""
    old = options.get("reservation")
    found = choices.reservations.get(old or "")
    if not old or (found is not None and found.partition in ("", options.get("partition"))):
        return options, []
    return options | {"reservation": ""}, [f"no reservation (the publisher's {old} is not open to you)"]


def _limits(options: dict[str, Any], choices: Choices) -> Adapted:
    """Cores, memory, GPUs and walltime over the partition's (or QoS's) limits: its most."""
    part = choices.partitions.get(options.get("partition") or "")
    if part is None:
        return options, []
    changed, said = dict(options), []
    for name, most, words in _most(part, options, choices):
        changed[name] = most
        said.append(words)
    return changed, said


def _most(part: Partition, options: dict[str, Any], choices: Choices) -> list[tuple[str, Any, str]]:
    """(field, the most the partition gives, in words) for each request over its limit."""
    over: list[tuple[str, Any, str]] = []
    where = f"the most on partition {part.name}"
    if (options.get("cpus") or 0) > part.max_cpus:
        over.append(("cpus", part.max_cpus, f"{part.max_cpus} cores ({where})"))
    if (parse_memory_mb(str(options.get("memory") or "0")) or 0) > part.max_memory_mb:
        memory = format_memory(part.max_memory_mb)
        over.append(("memory", memory, f"{memory} memory ({where})"))
    if (options.get("gpus") or 0) > part.max_gpus:
        gpus = f"{part.max_gpus} GPUs ({where})" if part.max_gpus else f"no GPU (partition {part.name} has none)"
        over.append(("gpus", part.max_gpus, gpus))
    account = options.get("account") or choices.default_account
    qos = options.get("qos") or choices.default_qos(account, part.name)
    limit = choices.max_walltime(part, qos)
    if limit and (parse_duration(str(options.get("walltime") or "0")) or 0) > limit:
        walltime = format_duration(limit)
        over.append(("walltime", walltime, f"walltime {walltime} (the most you may ask there)"))
    return over


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
    """Entries under ``directory``: ``ID/entry.json`` and ``ID/notebook.ipynb``, read-only.
    ``index``: the site's package index options (hub/site.py's ``environments``), the only ones
    environments are pinned against and rebuilt from."""

    def __init__(self, directory: str | Path, index: list[str] | tuple[str, ...] = NO_SITE_INDEX) -> None:
        self.directory = Path(directory)
        self.index = list(index)
        self.checks = EnvironmentChecks(self.index)

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
        ``environment`` (:func:`pinned_environment`), the stored notebook names its kernel and
        its hashed lock (:func:`hashed_lock`) is written beside it, what a launch builds."""
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
            (folder / LOCK_FILE).write_text(hashed_lock(lock, environment["hashes"]))
            written.append(folder / LOCK_FILE)
        for path in written:
            path.chmod(0o444)
        folder.chmod(0o555)
        return entry

    def withdraw(self, entry: Entry) -> None:
        folder = self.directory / entry.id
        folder.chmod(stat.S_IRWXU)
        shutil.rmtree(folder)


def environment_kernel(hashed: str, index: list[str], base: str, python: str | None) -> str:
    """The kernel (and environment folder) a published environment is built as, in each
    launcher's home: the hash of everything that decides what is installed."""
    recipe = json.dumps([hashed, list(index), base, python])
    return GALLERY_ENV_PREFIX + hashlib.sha256(recipe.encode()).hexdigest()[:32]


def site_folders(index: list[str]) -> list[str]:
    """The folders of wheels that index options name (``--find-links DIR``)."""
    return [index[i + 1] for i, option in enumerate(index[:-1]) if option == "--find-links"]


def site_urls(index: list[str]) -> list[str]:
    """The package indexes that index options name (``--index-url``, ``--extra-index-url``)."""
    return [index[i + 1] for i, option in enumerate(index[:-1]) if option in ("--index-url", "--extra-index-url")]


def checked_index(options: Any, site_index: list[str]) -> None:
    """An environment's own build record may name only the site's indexes (its folders of
    wheels, its URLs): ValueError names any other, which publishing refuses. What it names is
    never used: a rebuild installs from the site's index options (:func:`build_command`)."""
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError("its index options are not a list of strings")
    sites, rest = set(site_folders(site_index)) | set(site_urls(site_index)), list(options)
    while rest:
        option = rest.pop(0)
        if option in INDEX_FLAGS:
            continue
        if option in ("--find-links", "--index-url", "--extra-index-url") and rest and rest[0] in sites:
            rest.pop(0)
            continue
        named = f"{option} {rest[0]}" if option.startswith("--") and rest else option
        raise ValueError(
            f"it was built from {named!r}, which is not the site's package index: a gallery launch installs "
            "only from the site's, so build the environment from the site's index "
            f"({' '.join(site_index)}) and publish again"
        )


def checked_environment(sent: Any, notebook_kernel: str, site_index: list[str]) -> tuple[dict[str, Any], str]:
    """What an entry records of the environment a publisher sends (lab/envs.py's ``published``),
    before its pins are hashed (:func:`pinned_environment`), and its lock; ValueError says
    what is wrong with it."""
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
    checked_index(build.get("index", []), site_index)
    return {"display_name": display, "base": base, "seconds": seconds, "size": size, "python": python}, lock


def pinned_environment(
    environment: dict[str, Any], lock: str, hashes: dict[str, list[str]], index: list[str]
) -> dict[str, Any]:
    """The entry's record of a checked environment, with the hashes of its files on the site's
    index (``index``): the kernel a launch builds is named by all of it."""
    recipe = hashed_lock(lock, hashes)
    kernel = environment_kernel(recipe, index, environment["base"], environment["python"])
    return {**environment, "kernel": kernel, "index": list(index), "hashes": hashes}


def hashed_lock(lock: str, hashes: dict[str, list[str]]) -> str:
    """The requirements file a launch installs with ``--require-hashes``: each pin of ``lock``
    with the hashes of the files the site's index has of it."""
    return "".join(
        f"{name}=={version}" + "".join(f" \\\n    --hash={h}" for h in hashes[name]) + "\n"
        for name, version in sorted(pins(lock).items())
    )


def hashes_in(requirements: str) -> dict[str, set[str]]:
    """Each package's hashes in a hashed requirements file (uv pip compile --generate-hashes's)."""
    found: dict[str, set[str]] = {}
    for line in requirements.replace("\\\n", " ").splitlines():
        words = line.split("#")[0].split()
        if words and "==" in words[0]:
            name = normalised(words[0].split("==")[0])
            found[name] = {w.removeprefix("--hash=") for w in words[1:] if _SHA256.fullmatch(w.removeprefix("--hash="))}
    return found


def distribution_of(filename: str) -> tuple[str, str] | None:
    """(name, version) of a wheel's or source archive's file name (normalised name), or None."""
    if filename.endswith(".whl") and filename.count("-") >= 4:
        name, version = filename.split("-")[:2]
        return normalised(name), version
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix) and "-" in filename:
            name, version = filename.removesuffix(suffix).rsplit("-", 1)
            return normalised(name), version
    return None


def folder_hashes(folders: list[str], wanted: dict[str, str]) -> dict[str, set[str]]:
    """The sha256 of each regular file (never a link) in the site's folders of wheels that is a
    distribution of a wanted pin: uv hashes none of a --find-links folder's files."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        try:
            listed = list(os.scandir(folder))
        except OSError:
            continue
        for item in listed:
            dist = distribution_of(item.name)
            if dist is None or wanted.get(dist[0]) != dist[1] or not item.is_file(follow_symlinks=False):
                continue
            digest = hashlib.sha256()
            with open(item.path, "rb") as f:
                for chunk in iter(lambda: f.read(2**20), b""):
                    digest.update(chunk)
            found.setdefault(dist[0], set()).add(f"sha256:{digest.hexdigest()}")
    return found


def untrusted_folder(path: str) -> str | None:
    """Why a folder of wheels the site lists is not root's alone (None: it is): it, and every
    folder above it, must be root's and writable by no one else (a sticky folder above it, such
    as /tmp, counts as root's: no one else may move what root made in it). A folder not made yet
    counts as empty, if the folder above it is root's alone."""
    current = Path(path)
    while not current.exists() and current != current.parent:
        current = current.parent
    for folder in [current, *current.parents]:
        st = folder.lstat()
        sticky_above = folder != current and st.st_mode & stat.S_ISVTX
        if stat.S_ISLNK(st.st_mode) or st.st_uid != 0 or (st.st_mode & 0o022 and not sticky_above):
            return f"{folder} is not root's alone (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
    return None


class NotOnSiteIndex(ValueError):
    """A pin the site's package index lacks (or gives no hash for); the message names them."""


class SiteIndexUnavailable(RuntimeError):
    """The site's index could not be read (unreachable, too slow, a folder not root's)."""


def differences(lock: str, site_lock: str) -> list[tuple[str, str, str | None]]:
    """The packages of an entry's lock that the site kernel lacks or has at another version:
    (name, the entry's version, the site's or None)."""
    site = pins(site_lock)
    return [
        (name, version, site.get(name)) for name, version in sorted(pins(lock).items()) if site.get(name) != version
    ]


def build_command(gallery: Gallery, entry: Entry, venv: str) -> list[str] | None:
    """The job's step that builds the entry's environment (or finds it built) in the home, from
    its hashed lock and the site's index options (never the entry's); None for an entry
    published before hashes were recorded, which is never built."""
    env = entry.environment or {}
    if not env.get("hashes"):
        return None
    return [
        os.path.join(venv, "bin", ENV_COMMAND),
        "build-lock",
        str(gallery.directory / entry.id / LOCK_FILE),
        env["kernel"],
        f"--from-kernel={env['base']}",
        f"--display-name={env['display_name']} (gallery)",
        *gallery.index,
    ]


def launch_steps(gallery: Gallery, entry: Entry, home: str, venv: str) -> list[list[str]]:
    """A launch's steps before JupyterLab: its environment built (or found), its notebook copied."""
    build = build_command(gallery, entry, venv) if entry.environment is not None else None
    return [*([build] if build else []), copy_command(gallery, entry, home)]


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
    """What the site's package index (``index``: the site file's options) has of a lock's pins:
    ``uv pip compile --generate-hashes`` with no dependencies (the lock is whole), the lock's
    Python and the site's index options, and the sha256 of the site's folders' files (uv hashes
    none of a --find-links folder's). :meth:`hashes` when publishing (each pin must be there);
    :meth:`verdict` for the page (are the pinned files still there?): one check at a time per
    entry, ``concurrent`` at most, each within ``timeout`` seconds, its verdict kept ``ttl``
    seconds."""

    def __init__(self, index: list[str], ttl: float = 3600.0, timeout: float = 30.0, concurrent: int = 2) -> None:
        self.index, self.ttl, self.timeout = list(index), ttl, timeout
        self._verdicts: dict[str, tuple[float, Verdict]] = {}
        self._running: dict[str, asyncio.Task[Verdict]] = {}
        self._slots = asyncio.Semaphore(concurrent)

    def argv(self, python: str | None) -> list[str]:
        from uv import find_uv_bin

        version = ["--python-version", python] if python else []
        compile_ = ["pip", "compile", "-", "--no-deps", "--no-header", "--no-annotate", "--generate-hashes"]
        return [find_uv_bin(), *compile_, "--quiet", "--no-cache", *version, *self.index]

    async def hashes(self, lock: str, python: str | None) -> dict[str, list[str]]:
        """Each pin's file hashes on the site's index. NotOnSiteIndex names the pins it lacks
        (or gives no hash of); SiteIndexUnavailable says why it could not be read."""
        for folder in site_folders(self.index):
            problem = untrusted_folder(folder)
            if problem is not None:
                raise SiteIndexUnavailable(
                    f"the site's folder of wheels {folder} cannot be trusted ({problem}): nothing is pinned from it"
                )
        wanted = pins(lock)
        found = hashes_in(await self.compile(wanted, python))
        local = await asyncio.to_thread(folder_hashes, site_folders(self.index), wanted)
        merged = {name: sorted(found.get(name, set()) | local.get(name, set())) for name in wanted}
        missing = [f"{name}=={wanted[name]}" for name, hashes in merged.items() if not hashes]
        if missing:
            raise NotOnSiteIndex(f"{', '.join(missing)}: not on the site's index with a file hash")
        return merged

    async def compile(self, wanted: dict[str, str], python: str | None) -> str:
        """uv's hashed requirements of ``wanted``, resolved on the site's index."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(python),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except (ImportError, OSError) as e:
            raise SiteIndexUnavailable(f"uv could not run on the hub ({type(e).__name__})") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate("".join(f"{n}=={v}\n" for n, v in wanted.items()).encode()), self.timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SiteIndexUnavailable(f"the site's package index did not answer within {self.timeout:.0f} s") from None
        said = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
        text = " ".join(line.removeprefix("error: ").removeprefix("cause: ") for line in said)[:400]
        if proc.returncode == 0:
            return out.decode(errors="replace")
        if said and "No solution found" in said[0]:
            words = {normalised(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)}
            named = [f"{n}=={v}" for n, v in wanted.items() if n in words] or ["a pinned package"]
            reason = text.removeprefix("No solution found when resolving dependencies").strip(" :")
            raise NotOnSiteIndex(f"{', '.join(named)}: not on the site's index ({reason})")
        raise SiteIndexUnavailable(text or f"uv exited with {proc.returncode}")

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
        """ "ok" while the site's index still has a pinned file of every package."""
        env = entry.environment or {}
        if not env.get("hashes"):
            return Verdict(
                "broken",
                "it was published before the gallery pinned each file by its hash on the site's index, "
                "so a launch does not build it: its author may publish it again",
            )
        try:
            now = await self.hashes(entry.lock, env.get("python"))
        except NotOnSiteIndex as e:
            return Verdict("broken", str(e))
        except (SiteIndexUnavailable, ValueError) as e:
            return Verdict("unchecked", str(e))
        gone = sorted(name for name, pinned in env["hashes"].items() if not set(pinned) & set(now.get(name, [])))
        if gone:
            return Verdict("broken", f"the site's index no longer has the files pinned of {', '.join(gone)}")
        return Verdict("ok", "every pinned file is on the site's index")
