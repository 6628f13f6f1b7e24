"""``aifactory-env``: build your own Python environment, with a lock and a kernel, in one command.

    aifactory-env create my-env --file requirements.txt      # or environment.yml, pyproject.toml
    aifactory-env create my-env --from-kernel aifactory-climate --file requirements.txt
    aifactory-env create team-env --project ehpc01 --file requirements.txt
    aifactory-env list [--json] | lock NAME | remove NAME
    aifactory-env build-lock LOCK NAME --from-kernel KERNEL   # a gallery launch's step, in the job

An environment is a venv made by uv (``uv venv``, ``uv pip install``) on the site's Python, in
``~/.aifactory/envs/NAME`` (or, with ``--project ACCOUNT``, in the project's shared folder).  It
is a layer over a site kernel (``--from-kernel``, by default the site's default kernel): what
its file names is installed into the environment and comes first; everything else the kernel
needs (ipykernel, Dask, the workbench) is the site kernel's own, exactly as its lock says, and
its modules are loaded.  So a build installs only what differs, and needs no index for the rest:
a requirement the site layer already satisfies as written (same name, a version its specifier
accepts, no extras or marker) is not installed, needs no download, and is recorded as the site's
(its pin in the lock's header and in ``build.json``'s ``from_site``); the rest are installed with
those as constraints.  A requirements file with option lines (``-r``, ``-e``, ``--index-url``)
is installed as written.

``create`` installs from the site's package index (its site file's ``environments``, which the
JupyterLab job exports as uv's options in ``AIFACTORY_PACKAGE_INDEX``), after the command line's
own options: ``--index-url`` or ``--no-index`` there replaces the site's indexes (its folders of
wheels are still read).  Before uv runs, each index it would read must answer within
:data:`INDEX_ANSWER_SECONDS`; one that does not is named, with what to do instead, rather than
uv's retries and its raw network error; uv's own network errors are told the same way.

The file may ask for more of the site's modules (a compiler, a library its packages build or
link against), one form per kind of file (:func:`modules_asked`):

    # aifactory: module gcc/12                     (requirements.txt: a comment line per module)
    aifactory: {modules: [gcc/12]}                 (environment.yml: a top-level key)
    [tool.aifactory]  modules = ["gcc/12"]         (pyproject.toml)

They are loaded, after the site kernel's, for the build (a module the site lacks fails it, by
name) and by the kernel when it starts, so Dask workers it submits inherit them; ``build.json``
records them.

The build runs in a folder of its own beside the others and becomes ``NAME`` only when it has
succeeded: a failed build leaves nothing, and says which requirement failed.  Then its exact
lock is written into it (``share/aifactory/kernel.lock``, where the site venv keeps its own),
and beside it what the build took (``build.json``: seconds, size, the index options it used),
its Dask config is made (workers run the environment's Python, with the site's settings), and
the kernel is registered (``aifactory-kernel``'s register).  Builds run as the user, in their
job: never as root.

``list`` reads each environment's size from its ``build.json`` (recorded by the build, and again
by ``lock``), never by walking its files: the hub runs ``list --json`` as the user on the login
node for the spawn form and the home page, so it must answer in a fraction of a second.

``build-lock`` builds a published environment again from its hashed lock (the gallery's Launch
runs it in the relauncher's job, before JupyterLab, with the site's index options the hub puts
in its argv): every file it installs must have a hash the lock pins (``uv pip install
--require-hashes --no-deps``), into a fresh folder named by the hub's hash of the recipe, once:
a second launch finds it built, and reuses it only if that build recorded the same recipe and
no one else could have changed it (:func:`reuse_problem`); anything else found there is refused,
never installed into.
"""

from __future__ import annotations

import argparse
import grp
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion

from aifactory_workbench.job import PACKAGE_INDEX_ENV, index_options
from aifactory_workbench.job.locks import human_size, normalised, pins
from aifactory_workbench.lab.batch import DEFAULT_KERNEL
from aifactory_workbench.lab.kernel import (
    check_kernel_name,
    check_modules,
    kernel_specs,
    register,
    user_kernel_dir,
    with_modules,
)

ENVS_HOME = Path("~/.aifactory/envs")
#: Projects' shared folders, one per SLURM account, each owned by the Unix group of that name
#: (setgid, so what is made inside stays the group's). A site with another layout sets this.
PROJECTS_DIR_ENV = "AIFACTORY_PROJECTS_DIR"
PROJECTS_DIR = "/srv/aifactory/projects"
#: A project's ``envs/``: the group's (setgid) and sticky, so that a member may add environments
#: but never rename or remove a teammate's (and put their own Python in its place).
PROJECT_ENVS_MODE = 0o3770
#: Where an environment's lock is, relative to its prefix: where the site venv keeps its own.
LOCK = Path("share/aifactory/kernel.lock")
#: Beside it: what the build took (seconds, size on disk, Python, the index options it used),
#: which publishing records for the gallery page.
BUILD_RECORD = Path("share/aifactory/build.json")
#: Beside it, in a gallery build only: what it was built from (the hashed lock, the base kernel,
#: the Python), which a relaunch compares before it reuses the build.
RECIPE = Path("share/aifactory/gallery-recipe.json")
#: Puts the site kernel's packages after the environment's own on sys.path.
SITE_LAYER = "aifactory-site.pth"
#: Dask reads {sys.prefix}/etc/dask in file-name order, later files winning: the site's files
#: (linked, so the site's changes are followed) and then this kernel's Python for the workers.
SITE_DASK_PREFIX = "10-site-"
KERNEL_DASK_FILE = "90-kernel-python.yaml"


@dataclass(frozen=True)
class SiteKernel:
    name: str
    folder: Path
    spec: dict

    @property
    def modules(self) -> list[str]:
        return self.spec.get("metadata", {}).get("aifactory", {}).get("modules", [])

    @property
    def lock(self) -> Path | None:
        relative = self.spec.get("metadata", {}).get("aifactory", {}).get("lock")
        return Path(sys.prefix) / relative if relative else None


def fail(message: str) -> SystemExit:
    return SystemExit(f"aifactory-env: {message}")


def refuse_root() -> None:
    if os.geteuid() == 0:
        raise fail("run this as yourself, in your JupyterLab session: it never builds as root")


def envs_folder(project: str | None) -> Path:
    if not project:
        return ENVS_HOME.expanduser()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", project):
        raise fail(f"{project!r} is not a project (a SLURM account, such as ehpc01)")
    return Path(os.environ.get(PROJECTS_DIR_ENV) or PROJECTS_DIR) / project / "envs"


def site_kernels() -> dict[str, SiteKernel]:
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels"
    specs = sorted(folder.glob("*/kernel.json"))
    return {f.parent.name: SiteKernel(f.parent.name, f.parent, json.loads(f.read_text())) for f in specs}


def site_kernel(name: str) -> SiteKernel:
    kernels = site_kernels()
    if name not in kernels:
        raise fail(f"{name!r} is not a site kernel; the site's: {', '.join(kernels) or 'none'}")
    return kernels[name]


# What a file asks for ------------------------------------------------------------------------

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_MODULE_LINE = re.compile(r"#\s*aifactory:\s*module\s+(\S+)\s*")
_PINNED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?==[^=\s]+")


def requirement_name(requirement: str) -> str:
    """A requirement's project name, normalised (PEP 503), or "" for a line that names none."""
    match = _NAME.match(requirement)
    return normalised(match.group(1)) if match else ""


def from_environment_yml(text: str) -> list[str]:
    """pip's requirements in a conda environment file: its ``pip:`` section and plain
    ``name==version`` entries. Anything only conda can install is refused, by name."""
    dependencies = (yaml.safe_load(text) or {}).get("dependencies") or []
    requirements, conda_only = [], []
    site_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for entry in dependencies:
        if isinstance(entry, dict) and list(entry) == ["pip"]:
            requirements += [str(r) for r in entry["pip"] or []]
        elif isinstance(entry, str) and entry.strip() == "pip":
            continue
        elif isinstance(entry, str) and re.fullmatch(r"python(\s*[=<>!~]=?\s*[0-9.*]+)?", entry.strip()):
            wanted = re.sub(r"^python\s*[=<>!~]*=?\s*", "", entry.strip()).rstrip(".*")
            if wanted and not (site_python + ".").startswith(wanted + "."):
                raise fail(f"environment file asks for {entry!r}; the site's Python is {site_python}")
        elif isinstance(entry, str) and _PINNED.fullmatch(entry.strip()):
            requirements.append(entry.strip())
        else:
            conda_only.append(str(entry))
    if conda_only:
        raise fail(
            "these entries are conda packages, which this tool does not install: "
            + ", ".join(conda_only)
            + ". Write each as name==version (from PyPI) under dependencies or its pip: section, "
            "or load the site's module that provides it (aifactory: {modules: [NAME]} in this file)"
        )
    return requirements


def modules_asked(file: Path) -> list[str]:
    """The site's modules ``file`` asks for: ``# aifactory: module NAME`` lines of a requirements
    file, an environment file's top-level ``aifactory: {modules: [...]}``, a pyproject's
    ``[tool.aifactory] modules``. Each a module name (lab/kernel.py), or the file is refused."""
    if not file.is_file():
        raise fail(f"{file}: no such file")
    text = file.read_text()
    if file.name == "pyproject.toml":
        modules = tomllib.loads(text).get("tool", {}).get("aifactory", {}).get("modules", [])
    elif file.suffix in (".yml", ".yaml"):
        section = (yaml.safe_load(text) or {}).get("aifactory") or {}
        modules = section.get("modules", []) if isinstance(section, dict) else None
    else:
        modules = [m.group(1) for line in text.splitlines() if (m := _MODULE_LINE.fullmatch(line.strip()))]
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise fail(f"{file}: its aifactory modules are not a list of module names")
    check_modules(modules)
    return modules


def requirements_of(file: Path, folder: Path) -> tuple[list[str], list[str]]:
    """uv's arguments that install what ``file`` asks for, and the requirements it names (to
    say which failed); an environment file's are written into ``folder`` first."""
    if not file.is_file():
        raise fail(f"{file}: no such file")
    if file.name == "pyproject.toml":
        project = tomllib.loads(file.read_text()).get("project", {})
        return ["-r", str(file)], list(project.get("dependencies", []))
    if file.suffix in (".yml", ".yaml"):
        requirements = from_environment_yml(file.read_text())
        file = folder / "requirements-from-environment.txt"
        file.write_text("".join(f"{r}\n" for r in requirements))
        return ["-r", str(file)], requirements
    lines = [line.split(" #")[0].strip() for line in file.read_text().splitlines()]
    return ["-r", str(file)], [line for line in lines if line and not line.startswith(("#", "-"))]


def failed_requirement(uv_error: str, requirements: list[str]) -> str:
    """Which of the file's requirements uv's error is about (its first line when none is)."""
    lines = [line.strip(" ×╰─▶│") for line in uv_error.splitlines()]
    lines = [line for line in lines if line and not line.startswith("Using Python")]
    names = {requirement_name(r): r for r in requirements}
    for line in lines:
        for mentioned in re.findall(r"`?([A-Za-z0-9][A-Za-z0-9._-]*)(?:[=<>!~@ `]|$)", line):
            if requirement_name(mentioned) in names:
                return f"{names[requirement_name(mentioned)]!r} failed: {' '.join(lines)}"
    return " ".join(lines) or "uv failed without saying why"


# What the site provides -----------------------------------------------------------------------


def site_versions() -> dict[str, str]:
    """The site layer's packages (:func:`site_layer`: every environment sees them after its own),
    each normalised name with its version."""
    paths = list(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=paths):
        if dist.metadata["Name"]:
            found.setdefault(normalised(dist.metadata["Name"]), dist.version)
    return found


def provided_by_site(requirements: list[str], site: dict[str, str]) -> dict[str, str]:
    """Those of ``requirements`` the site layer satisfies as they are (a name, with no extras,
    marker or URL, whose version there matches its specifier), each with the site's pin: they
    need no download and no index."""
    provided = {}
    for line in requirements:
        try:
            wanted = Requirement(line)
            have = site.get(normalised(wanted.name))
            plain = not wanted.extras and wanted.url is None and wanted.marker is None
            if plain and have is not None and wanted.specifier.contains(have, prereleases=True):
                provided[line] = f"{wanted.name}=={have}"
        except (InvalidRequirement, InvalidVersion):
            continue
    return provided


def has_option_lines(file: Path) -> bool:
    """A requirements file with option lines (-r, -c, -e, --index-url...): installed as written,
    since its lines may name files relative to it."""
    if file.name == "pyproject.toml" or file.suffix in (".yml", ".yaml"):
        return False
    return any(line.strip().startswith("-") for line in file.read_text().splitlines())


def apart_from_site(requirements: list[str], provided: dict[str, str], folder: Path) -> list[str]:
    """uv's arguments for the requirements the site does not provide ([]: none left), with those
    it does as constraints, so that a package needing one of them gets the version asked."""
    rest = [r for r in requirements if r not in provided]
    if not rest:
        return []
    (folder / "not-in-site.txt").write_text("".join(f"{r}\n" for r in rest))
    (folder / "provided-by-site.txt").write_text("".join(f"{r}\n" for r in provided))
    return ["-r", str(folder / "not-in-site.txt"), "-c", str(folder / "provided-by-site.txt")]


# The package index ---------------------------------------------------------------------------

#: uv's own index when no option, UV_DEFAULT_INDEX or UV_INDEX_URL names one.
UV_DEFAULT_INDEX = "https://pypi.org/simple"
#: How long a build waits for the package indexes it will read to answer before it says which
#: did not and what to do (uv itself retries for half a minute or more, then prints its causes).
INDEX_ANSWER_SECONDS = 5.0
#: uv's wait for a connection (its UV_HTTP_CONNECT_TIMEOUT), unless the user's environment sets one.
UV_CONNECT_SECONDS = "5"
_NETWORK = re.compile(
    r"dns error|failed to lookup address|tcp connect error|connection refused|network is unreachable|"
    r"timed out|error sending request|client error \(connect\)",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(r"was not found in the (provided package locations|package registry)")
_OFFLINE = re.compile(r"network (connectivity )?(was|is) disabled|not found in the cache", re.IGNORECASE)


def site_index() -> list[str]:
    """The site's package index as uv's options, which the JupyterLab job sets
    (:data:`PACKAGE_INDEX_ENV`, from the site file's ``environments``); [] outside such a job."""
    try:
        words = shlex.split(os.environ.get(PACKAGE_INDEX_ENV, ""))
        index_options(words)
    except ValueError as e:
        raise fail(f"{PACKAGE_INDEX_ENV} (the site's package index, which your job sets): {e}") from None
    return words


def folders_of(index: list[str]) -> list[str]:
    return [index[i + 1] for i, option in enumerate(index[:-1]) if option == "--find-links"]


def with_site_index(own: list[str], site: list[str]) -> list[str]:
    """``create``'s index options: the command line's, then the site's; but the site's indexes
    are left out when the command line names an index (``--index-url``) or none (``--no-index``):
    its folders of wheels are still read."""
    if "--index-url" in own or "--no-index" in own:
        site = [word for folder in folders_of(site) for word in ("--find-links", folder)]
    return own + site


def index_urls(index: list[str]) -> list[str]:
    """The package indexes uv reads with these options: none with --no-index or --offline."""
    if "--no-index" in index or "--offline" in index:
        return []
    named = [index[i + 1] for i, option in enumerate(index[:-1]) if option in ("--index-url", "--extra-index-url")]
    if "--index-url" in index:
        return named
    return [os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or UV_DEFAULT_INDEX, *named]


def network_words(reason: object) -> str | None:
    """Why a request got no answer, in plain words; None for a TLS complaint (an answer, which uv judges)."""
    if isinstance(reason, ssl.SSLError):
        return None
    if isinstance(reason, socket.gaierror):
        return "its host name is not known here (no DNS answer)"
    if isinstance(reason, ConnectionRefusedError):
        return "nothing answers at its address (connection refused)"
    if isinstance(reason, TimeoutError):
        return "it did not answer (timed out)"
    return f"it cannot be reached ({getattr(reason, 'strerror', None) or reason})"


def why_silent(url: str, seconds: float) -> str | None:
    """Why the index at ``url`` does not answer (None: it does): a ``file://`` one must be a
    folder; any other must answer a HEAD request, through the proxy the environment names as uv
    would, with a status below 500."""
    if url.startswith("file://"):
        return None if Path(urllib.parse.urlparse(url).path).is_dir() else "no such folder"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=seconds).close()
    except urllib.error.HTTPError as e:
        return f"it answered {e.code} {e.reason}" if e.code >= 500 else None
    except (OSError, ValueError) as e:
        return network_words(getattr(e, "reason", e))
    return None


def silent_indexes(urls: list[str], seconds: float = INDEX_ANSWER_SECONDS) -> dict[str, str]:
    """Those of ``urls`` that do not answer within ``seconds`` in all, with why: asked at once,
    each in a thread of its own, since looking a host name up has no timeout of its own."""
    said: dict[str, str | None] = {}

    def ask(url: str) -> None:
        said[url] = why_silent(url, seconds)

    asking = [threading.Thread(target=ask, args=(url,), daemon=True) for url in urls]
    for thread in asking:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in asking:
        thread.join(max(0.0, deadline - time.monotonic()))
    waited = f"no answer within {seconds:.0f} s"
    return {url: why for url in urls if (why := said.get(url, waited)) is not None}


def no_index_answers(silent: dict[str, str]) -> SystemExit:
    """What to do when a package index does not answer, the site's named."""
    url, why = next(iter(silent.items()))
    site = site_index()
    whose = "the site's package index" if url in site else "the package index"
    folders = folders_of(site)
    wheels = f" (the site's: {', '.join(folders)})" if folders else ""
    return fail(
        f"{whose} {url} did not answer: {why}. Nothing was built. To build from a folder of wheels "
        f"instead, add --no-index --find-links FOLDER{wheels}; to use another index, --index-url URL; "
        "or ask your site's support whether its package index is down."
    )


def network_trouble(uv_error: str) -> str | None:
    """uv's failure in plain words with what to do, when the network (or --offline) caused it."""
    if _OFFLINE.search(uv_error):
        return (
            "with --offline only uv's cache and the --find-links folders are read, and a package this "
            "file needs is in neither: add --find-links FOLDER with its wheel, or build without --offline"
        )
    cause = _NETWORK.search(uv_error)
    if cause is None:
        return None
    url = re.search(r"https?://[^\s)`'\"]+", uv_error)
    where = f" ({url.group(0)})" if url else ""
    return (
        f"a download failed{where}: {cause.group(0)}. To build from a folder of wheels instead, add "
        "--no-index --find-links FOLDER; or ask your site's support whether its package index is down"
    )


# Building ------------------------------------------------------------------------------------


def uv(args: list[str], modules: list[str] = ()) -> subprocess.CompletedProcess:
    from uv import find_uv_bin

    # No colour, whatever the session asks for (a kernel sets FORCE_COLOR): the lock is made of what uv prints.
    argv, env = with_modules(list(modules), [find_uv_bin(), "--color", "never", *args])
    env.setdefault("UV_HTTP_CONNECT_TIMEOUT", UV_CONNECT_SECONDS)
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def site_layer(prefix: Path) -> None:
    """The site kernel's packages after the environment's own (its .pth files are read too)."""
    own = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    site_dirs = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in site_dirs)
    (own / SITE_LAYER).write_text(lines)


def dask_config(prefix: Path, site_prefix: Path = Path(sys.prefix)) -> Path:
    """Dask in the environment: the site's settings, and the environment's Python for workers."""
    folder = prefix / "etc" / "dask"
    folder.mkdir(parents=True, exist_ok=True)
    for site_file in sorted((site_prefix / "etc" / "dask").glob("*.y*ml")):
        (folder / f"{SITE_DASK_PREFIX}{site_file.name}").symlink_to(site_file)
    python = {"jobqueue": {"slurm": {"python": str(prefix / "bin" / "python")}}}
    path = folder / KERNEL_DASK_FILE
    path.write_text("# aifactory-env: Dask workers run this environment's Python.\n" + yaml.safe_dump(python))
    return path


def write_lock(prefix: Path, base: SiteKernel, from_site: list[str] = ()) -> Path:
    """``uv pip freeze`` of the environment, under a line naming the site kernel it extends and
    one for each package its file asked for that the site provides (``from_site``, its pins),
    unless the environment now has its own."""
    frozen = uv(["pip", "freeze", "--python", str(prefix / "bin" / "python")])
    if frozen.returncode != 0:
        raise fail(f"uv pip freeze: {frozen.stderr.strip()}")
    header = f"# Over site kernel {base.name!r}" + (f", whose lock is {base.lock}" if base.lock else "") + "\n"
    own = {requirement_name(line) for line in frozen.stdout.splitlines()}
    header += "".join(
        f"# {pin}: the site's, as the file asked\n" for pin in from_site if requirement_name(pin) not in own
    )
    path = prefix / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + frozen.stdout)
    return path


def build(
    folder: Path,
    name: str,
    modules: list[str],
    file: Path | None,
    index: list[str],
    base: SiteKernel,
    recipe: dict | None = None,
) -> tuple[Path, list[str]]:
    """Build in a folder of its own, with ``modules`` loaded, then rename it to ``name``: nothing
    is left when it fails. What the site layer already provides as the file asks is not
    installed (:func:`provided_by_site`); returns the prefix and the site's pins of those. With
    a ``recipe`` (a gallery build), ``file`` is a hashed lock: only files with its hashes are
    installed, nothing beyond it, and the recipe is recorded."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / name).exists():
        raise fail(f"{folder / name} exists already: remove it first (aifactory-env remove {name})")
    building = Path(tempfile.mkdtemp(dir=folder, prefix=f".{name}.building-"))
    try:
        made = uv(["venv", "--quiet", "--relocatable", "--python", sys.executable, str(building / "env")])
        if made.returncode != 0:
            raise fail(f"uv venv: {made.stderr.strip()}")
        prefix = building / "env"
        site_layer(prefix)
        provided: dict[str, str] = {}
        if file:
            args, requirements = requirements_of(file, building)
            if recipe is None and not has_option_lines(file):
                provided = provided_by_site(requirements, site_versions())
                args = apart_from_site(requirements, provided, building) if provided else args
            if args:
                install(prefix, args, requirements, index, modules, hashed=recipe is not None)
        write_lock(prefix, base, list(provided.values()))
        if recipe is not None:
            (prefix / RECIPE).write_text(json.dumps(recipe, indent=1, sort_keys=True) + "\n")
        prefix.rename(folder / name)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder / name, list(provided.values())


def install(
    prefix: Path, args: list[str], requirements: list[str], index: list[str], modules: list[str], hashed: bool
) -> None:
    """``uv pip install`` into the environment, once the indexes it reads have answered (within
    :data:`INDEX_ANSWER_SECONDS`); a failure says which requirement failed, or in plain words
    what the network did and what to do. ``hashed``: a gallery build's lock, files by hash only."""
    silent = silent_indexes(index_urls(index))
    if silent:
        raise no_index_answers(silent)
    pinned = ["--require-hashes", "--no-deps"] if hashed else []
    installed = uv(["pip", "install", "--python", str(prefix / "bin" / "python"), *pinned, *index, *args], modules)
    if installed.returncode != 0:
        why = network_trouble(installed.stderr) or failed_requirement(installed.stderr, requirements)
        raise fail(f"the build failed, and left nothing: {why}{missing_hint(installed.stderr, index)}")


def missing_hint(uv_error: str, index: list[str]) -> str:
    """Where a package that is not found was looked for, and what to do ("" for other failures)."""
    if not _NOT_FOUND.search(uv_error):
        return ""
    where = shlex.join(index) if index else f"uv's default index, {UV_DEFAULT_INDEX}"
    return (
        f" (looked for with {where}: add --find-links FOLDER with its wheel, "
        "or ask your site's support to add it to the site's package index)"
    )


def share_with_group(prefix: Path) -> None:
    """A project's environment: readable (and its folders enterable) by the project's group."""
    for path in [prefix, *prefix.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o050 if path.is_dir() else 0o040))


def project_folder(project: str) -> Path:
    folder = envs_folder(project)
    if not folder.parent.is_dir():
        raise fail(
            f"project {project} has no shared folder {folder.parent}: ask the site to make it "
            f"(group {project}, mode 3770), or set {PROJECTS_DIR_ENV}"
        )
    if not folder.is_dir():
        folder.mkdir(mode=PROJECT_ENVS_MODE)
        folder.chmod(PROJECT_ENVS_MODE)  # mkdir's mode passes the umask
    return folder


def create(
    name: str,
    file: Path | None,
    from_kernel: str = DEFAULT_KERNEL,
    project: str | None = None,
    index: list[str] = (),
    display_name: str | None = None,
    recipe: dict | None = None,
) -> Path:
    check_kernel_name(name)
    if name in kernel_specs():
        raise fail(f"a kernel {name!r} exists already: choose another name (jupyter kernelspec list)")
    base = site_kernel(from_kernel)
    modules = list(dict.fromkeys(base.modules + (modules_asked(file) if file else [])))
    check_modules(modules)
    folder = project_folder(project) if project else envs_folder(None)
    started = time.monotonic()
    prefix, from_site = build(folder, name, modules, file.resolve() if file else None, list(index), base, recipe)
    try:
        dask_config(prefix)
        record_build(prefix, time.monotonic() - started, list(index), modules, from_site)
        if project:
            share_with_group(prefix)
        source = f" from {file.name}" if file else ""
        register_environment(name, prefix, base, modules, display_name, f"Your environment {name}{source}")
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        raise
    return prefix


def register_environment(
    name: str, prefix: Path, base: SiteKernel, modules: list[str], display_name: str | None, what: str
) -> Path:
    """Its kernel: its Python, after ``modules`` (the site kernel's and those its file asked for)."""
    return register(
        name,
        str(prefix / "bin" / "python"),
        display_name or f"Python ({name})",
        modules,
        description=f"{what}, over {base.spec.get('display_name', base.name)}.",
        metadata={"lock": str(prefix / LOCK), "env": str(prefix), "base": base.name},
        logo=base.folder / "logo-svg.svg",
    )


def record_build(prefix: Path, seconds: float, index: list[str], modules: list[str], from_site: list[str]) -> Path:
    """What the build took, beside the lock: the gallery shows it to whoever would relaunch;
    ``from_site``: the pins of what the file asked that the site provides (not installed)."""
    record = {
        "seconds": round(seconds, 1),
        "size": size_on_disk(prefix),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "index": index,
        "modules": modules,
        "from_site": from_site,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = prefix / BUILD_RECORD
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def locked(lock: Path) -> dict[str, str]:
    try:
        return pins(lock.read_text())
    except ValueError as e:
        raise fail(f"{lock}: {e}") from None


def hashed_lock(lock: Path) -> str:
    """A published environment's lock as the hub wrote it: exact pins, each with its files'
    hashes (``--hash=sha256:...``); refused unless every pin has one."""
    if not lock.is_file():
        raise fail(f"{lock}: no such lock")
    text = lock.read_text()
    lines = [line.split() for line in text.replace("\\\n", " ").splitlines() if line.split()]
    lines = [words for words in lines if not words[0].startswith("#")]
    unhashed = [words[0] for words in lines if not any(w.startswith("--hash=sha256:") for w in words[1:])]
    if unhashed:
        raise fail(f"{lock}: {unhashed[0]!r} has no hash: a gallery build installs only files pinned by hash")
    try:
        pins("\n".join(words[0] for words in lines))
    except ValueError as e:
        raise fail(f"{lock}: {e}") from None
    return text


def gallery_recipe(lock_text: str, base: str) -> dict:
    """What decides what a gallery build installs, as it records it and a reuse compares it:
    with every file pinned by hash, the index only says where those files are found."""
    return {"lock": lock_text, "base": base, "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


def reuse_problem(prefix: Path, recipe: dict) -> str | None:
    """Why the environment at ``prefix`` is not a build of ``recipe`` that only this user could
    have changed (None: it is): a real folder of theirs, everything in it theirs and writable by
    no one else, whose recorded recipe is this one."""
    me = os.geteuid()
    for path in [prefix, *walk(prefix)]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            if path == prefix:
                return "is a link, not a folder of its own"
            continue
        if st.st_uid != me or st.st_mode & 0o022:
            return f"holds {path}, which is not yours alone (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
    if read_record(prefix / RECIPE) != recipe:
        return "holds another build than this lock's (its recorded recipe differs, or it has none)"
    return None


def walk(prefix: Path):
    """Every path under ``prefix``, links not followed."""
    if prefix.is_symlink() or not prefix.is_dir():
        return
    for folder, dirs, files in os.walk(prefix):
        yield from (Path(folder) / name for name in dirs + files)


def build_from_lock(lock: Path, name: str, from_kernel: str, index: list[str] = (), display_name: str | None = None):
    """A published environment, built from its hashed lock (:func:`hashed_lock`) with ``index``
    (the site's, which the hub passes) into a fresh folder ``name`` in the user's home, or found
    built there: reused only when :func:`reuse_problem` finds none (its kernel registered again
    if it was removed); anything else there is refused, and nothing is installed into it.
    Returns its prefix and whether it was built now."""
    recipe = gallery_recipe(hashed_lock(lock), from_kernel)
    prefix = envs_folder(None) / name
    if os.path.lexists(prefix):
        problem = reuse_problem(prefix, recipe)
        if problem is not None:
            raise fail(
                f"{prefix} {problem}: it is not used and nothing is installed into it; "
                f"remove it (aifactory-env remove {name}) and launch again"
            )
        if name not in kernel_specs():
            base = site_kernel(from_kernel)
            modules = recorded_build(prefix).get("modules")
            modules = modules if isinstance(modules, list) else base.modules
            register_environment(name, prefix, base, modules, display_name, f"Rebuilt from {lock}")
        return prefix, False
    stale = kernel_of_environment(name, prefix)
    if stale is not None:  # its environment was removed by hand (to free space): built again below
        shutil.rmtree(stale)
    prefix = create(name, lock, from_kernel, None, index, display_name, recipe)
    for path in [prefix, *walk(prefix)]:  # writable by its builder alone, whatever the umask: as a reuse requires
        if not path.is_symlink() and path.stat().st_mode & 0o022:
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o022)
    return prefix, True


def published(kernel: str) -> dict | None:
    """What publishing a notebook of this kernel sends, when it is one of the user's
    environments (None for any other kernel): its lock, the site kernel it extends, and what
    its build took."""
    spec_file = user_kernel_dir(kernel) / "kernel.json"
    if not spec_file.is_file():
        return None
    spec = json.loads(spec_file.read_text())
    meta = spec.get("metadata", {}).get("aifactory", {})
    if not meta.get("env") or not Path(meta.get("lock", "")).is_file():
        return None
    record = Path(meta["env"]) / BUILD_RECORD
    return {
        "kernel": kernel,
        "display_name": spec.get("display_name", kernel),
        "base": meta.get("base", DEFAULT_KERNEL),
        "lock": Path(meta["lock"]).read_text(),
        "build": json.loads(record.read_text()) if record.is_file() else {},
    }


def size_on_disk(path: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in [path, *path.rglob("*")])


#: What the listing reads of a record it finds (build.json, a kernel's kernel.json): the first
#: bytes of a regular file; and the longest text it prints of one (longer is left out).
RECORD_MAX_BYTES = 64 * 1024
FIELD_MAX_CHARS = 64


def read_record(path: Path) -> dict:
    """The JSON object in ``path``, or {} when there is none: only a regular file (opened without
    following a link, and without blocking: a FIFO swapped in after any check cannot hold the
    listing) of at most :data:`RECORD_MAX_BYTES` is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return {}
            data = f.read(RECORD_MAX_BYTES + 1)
        record = json.loads(data) if len(data) <= RECORD_MAX_BYTES else None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def short_text(value: object) -> str:
    """A record's text as the listing prints it: "" for anything but a string of at most
    :data:`FIELD_MAX_CHARS` characters."""
    return value if isinstance(value, str) and len(value) <= FIELD_MAX_CHARS else ""


def recorded_build(prefix: Path) -> dict:
    """What the build recorded (``build.json``, by :func:`read_record`), or {} when there is
    none or it is not a record."""
    return read_record(prefix / BUILD_RECORD)


def environments(project: str | None = None) -> list[dict]:
    """The environments in one folder (yours, or ``project``'s), with the size their build
    recorded (None when it recorded none): nothing is walked, so this answers at once, and its
    records are read bounded (:func:`read_record`, :func:`short_text`): the hub reads it."""
    folder = envs_folder(project)
    found = []
    for prefix in sorted(folder.iterdir()) if folder.is_dir() else []:
        if prefix.name.startswith(".") or not (prefix / "bin" / "python").exists():
            continue
        record = recorded_build(prefix)
        size = record.get("size") if type(record.get("size")) is int else None
        kernel = kernel_of_environment(prefix.name, prefix)
        meta = read_record(kernel / "kernel.json").get("metadata") if kernel else {}
        meta = meta.get("aifactory") if isinstance(meta, dict) else {}
        found.append(
            {
                "name": prefix.name,
                "path": str(prefix),
                "size": size,
                "size_text": human_size(size) if size is not None else "size unknown",
                "kernel": prefix.name if kernel else "",
                "base": short_text(meta.get("base") if isinstance(meta, dict) else ""),
                "scope": "project" if project else "personal",
                "project": project or "",
                "built": short_text(record.get("built", "")),
                "locked": (prefix / LOCK).is_file(),
            }
        )
    return found


#: What ``list --json`` prints at most (the hub shows 100, and reads 256 KiB of it): more are
#: counted; and the names it prints (an environment's, as the hub checks them).
JSON_MAX_ENVIRONMENTS = 200
_LISTED_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def listing_json(listed: list[dict]) -> str:
    """``list --json``'s answer, bounded whatever a project's shared folder holds: at most
    :data:`JSON_MAX_ENVIRONMENTS` environments (``more``: how many others), and none whose name
    no environment could have (``unreadable``: how many), so a teammate's thousand folders or
    long odd names cannot push it past what the hub reads, which would blank every member's."""
    named = [env for env in listed if _LISTED_NAME.fullmatch(env["name"])]
    shown = named[:JSON_MAX_ENVIRONMENTS]
    return json.dumps({"environments": shown, "more": len(named) - len(shown), "unreadable": len(listed) - len(named)})


def my_projects() -> list[str]:
    """The projects whose shared folder holds environments and whose group I am in."""
    names = sorted({grp.getgrgid(g).gr_name for g in os.getgroups() if _known_group(g)})
    return [n for n in names if re.fullmatch(r"[A-Za-z0-9_.-]+", n) and envs_folder(n).is_dir()]


def _known_group(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


def all_environments() -> list[dict]:
    """Yours, then those of each of your projects."""
    return environments() + [env for project in my_projects() for env in environments(project)]


def existing(name: str, project: str | None) -> Path:
    check_kernel_name(name)
    prefix = envs_folder(project) / name
    if not (prefix / "bin" / "python").exists():
        raise fail(f"no environment {name!r} in {prefix.parent}")
    return prefix


def relock(name: str, project: str | None = None) -> Path:
    """Rewrite the lock after changing the environment by hand (uv pip install --python ...)."""
    prefix = existing(name, project)
    spec = json.loads((user_kernel_dir(name) / "kernel.json").read_text()) if user_kernel_dir(name).is_dir() else {}
    base = spec.get("metadata", {}).get("aifactory", {}).get("base", DEFAULT_KERNEL)
    record = recorded_build(prefix)
    from_site = record.get("from_site")
    from_site = [p for p in from_site if isinstance(p, str)] if isinstance(from_site, list) else []
    lock = write_lock(prefix, site_kernel(base), from_site)
    record = record | {"size": size_on_disk(prefix)}  # what ``list`` shows
    (prefix / BUILD_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return lock


def kernel_of_environment(name: str, prefix: Path) -> Path | None:
    """The user's kernel ``name``, if it runs the Python of the environment at ``prefix`` (whether
    or not that environment is still there); None for no such kernel, or anyone else's."""
    kernel = user_kernel_dir(name) / "kernel.json"
    argv = read_record(kernel).get("argv")
    if isinstance(argv, list) and str(prefix / "bin" / "python") in argv:
        return kernel.parent
    return None


def remove(name: str, project: str | None = None) -> None:
    """The environment and its kernel (only a kernel that runs this environment's Python)."""
    prefix = existing(name, project)
    kernel = kernel_of_environment(name, prefix)
    if kernel is not None:
        shutil.rmtree(kernel)
    shutil.rmtree(prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aifactory-env", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("create", help="build an environment from a file, lock it, register its kernel")
    new.add_argument("name")
    new.add_argument("--file", type=Path, help="requirements.txt, environment.yml or pyproject.toml")
    new.add_argument(
        "--from-kernel", default=DEFAULT_KERNEL, help=f"the site kernel it extends (default {DEFAULT_KERNEL})"
    )
    new.add_argument("--display-name")
    for command, what in (("list", "your environments, with their size"), ("lock", "rewrite NAME's lock")):
        sub.add_parser(command, help=what)
    sub.choices["lock"].add_argument("name")
    sub.choices["list"].add_argument(
        "--json", action="store_true", help="as JSON (the hub's spawn form and home page read it)"
    )
    sub.add_parser("remove", help="remove an environment and its kernel").add_argument("name")
    for command in sub.choices.values():
        command.add_argument("--project", metavar="ACCOUNT", help="in the project's shared folder")
    again = sub.add_parser("build-lock", help="build a published lock as NAME in your home, or find it built")
    again.add_argument("lock", type=Path)
    again.add_argument("name")
    for command in (new, again):
        command.add_argument("--find-links", action="append", default=[], help="a folder of wheels (repeatable)")
        command.add_argument("--no-index", action="store_true", help="only --find-links, no package index")
        command.add_argument("--offline", action="store_true", help="only what uv has cached, and --find-links")
        command.add_argument(
            "--index-url",
            help="the package index (create: the site's by default, which your job names; build-lock: the hub's)",
        )
        command.add_argument("--extra-index-url", action="append", default=[], help="another index (repeatable)")
    again.add_argument("--from-kernel", default=DEFAULT_KERNEL, help="the site kernel the lock extends")
    again.add_argument("--display-name")
    args = parser.parse_args(argv)
    refuse_root()
    if args.command in ("create", "build-lock"):
        index = [a for d in args.find_links for a in ("--find-links", d)]
        index += ["--no-index"] * args.no_index + ["--offline"] * args.offline
        index += ["--index-url", args.index_url] if args.index_url else []
        index += [a for url in args.extra_index_url for a in ("--extra-index-url", url)]
    if args.command == "create":
        index = with_site_index(index, site_index())
        prefix = create(args.name, args.file, args.from_kernel, args.project, index, args.display_name)
        print(f"environment {args.name!r} built in {prefix}; its lock {prefix / LOCK}; kernel {args.name!r} registered")
    elif args.command == "list":
        listed = environments(args.project) if args.project else all_environments()
        if args.json:
            print(listing_json(listed))
        for env in [] if args.json else listed:
            kernel = "kernel" if env["kernel"] else "no kernel"
            print(f"{env['name']:<20} {env['size_text']:>12}  {kernel:<9}  {env['path']}")
    elif args.command == "build-lock":
        started = time.monotonic()
        prefix, built = build_from_lock(args.lock, args.name, args.from_kernel, index, args.display_name)
        took = f"built in {time.monotonic() - started:.1f} s" if built else "found built (no rebuild)"
        print(f"environment {args.name!r} {took} in {prefix}; kernel {args.name!r} registered")
    elif args.command == "lock":
        print(relock(args.name, args.project).read_text(), end="")
    else:
        remove(args.name, args.project)
        print(f"environment {args.name!r} and its kernel removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
