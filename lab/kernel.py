"""``aifactory-kernel``: start a kernel after loading environment modules; register a user's
own Python environment as a kernel with one command.

HPC sites deliver software as environment modules (Lmod): a kernelspec names the modules
in its argv (``python -m aifactory_workbench.lab.kernel launch --module NAME -- python -m
ipykernel_launcher ...``) and they are loaded in a shell before the kernel process replaces it.

The site's kernelspecs name no path: Jupyter starts a leading ``python`` as its own Python (the
venv's, wherever the site put it), and ``launch`` does the same for the kernel's ``python``, so
a module that puts another Python first on PATH does not change the kernel's.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

# What login shells source: it sets MODULEPATH from /etc/lmod/modulespath, then `module`. In a
# JupyterLab job the site's own (its site file's singleuser.lmod_init) is named by the job script.
LMOD_INIT = "/usr/share/lmod/lmod/init/profile"
LMOD_INIT_ENV = "AIFACTORY_LMOD_INIT"
_MODULE = re.compile(r"[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*")
_KERNEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
# Loads "$1" modules named in the next arguments, then becomes the rest.
_LOAD_THEN_EXEC = (
    'source "$AIFACTORY_LMOD_INIT" || exit 97; n=$1; shift; '
    'module load "${@:1:$n}" || { echo "aifactory-kernel: could not load module(s): ${*:1:$n}" >&2; exit 98; }; '
    'shift "$n"; exec "$@"'
)


def check_modules(modules: list[str]) -> None:
    bad = [m for m in modules if not _MODULE.fullmatch(m)]
    if bad:
        raise SystemExit(f"aifactory-kernel: {bad[0]!r} is not a module name (e.g. climate-tools/1.0)")


def with_modules(modules: list[str], command: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command, and its environment, that runs ``command`` after loading ``modules`` (with
    the Lmod the job names, else Debian's and Lmod's own default path)."""
    check_modules(modules)
    if not modules:
        return command, dict(os.environ)
    env = {**os.environ, LMOD_INIT_ENV: os.environ.get(LMOD_INIT_ENV) or LMOD_INIT}
    return ["bash", "-c", _LOAD_THEN_EXEC, "bash", str(len(modules)), *modules, *command], env


#: What makes a folder a Python environment (a venv): its ``bin/python``'s parent's parent holds it.
VENV_MARKER = "pyvenv.cfg"
#: Within an environment, what decides the code its Python runs before any cell: these must be its
#: creator's and writable by no one else (the site-packages folders are checked as well).
_CHECKED = ("", "bin", "bin/python", VENV_MARKER, "lib")


def environment_of(python: str) -> Path | None:
    """The environment (venv) whose ``bin/python`` this is, or None for any other Python."""
    prefix = Path(python).parent.parent
    return prefix if Path(python).parent.name == "bin" and (prefix / VENV_MARKER).is_file() else None


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def environment_problem(prefix: Path, owner: str) -> str | None:
    """Why the environment at ``prefix`` may run someone else's code (None: it may not). Its
    folder, ``bin/``, ``bin/python`` (the link, and what it points to), ``pyvenv.cfg`` and its
    ``lib/`` and site-packages folders must be ``owner``'s (what it points to may be root's) and
    writable by no one else: in a project's shared folder a teammate could otherwise put their own
    Python in its place, which every member's kernel and Dask workers would run as that member."""
    paths = (
        [prefix / p for p in _CHECKED]
        + sorted(prefix.glob("lib/python3*"))
        + sorted(prefix.glob("lib/python3*/site-packages"))
    )
    python = prefix / "bin" / "python"
    for path in [*paths, python.resolve()]:
        try:
            info = path.lstat()
        except OSError:
            return f"{path} is missing"
        trusted = {owner, "root"} if path == python.resolve() else {owner}
        if owner_name(info.st_uid) not in trusted:
            return f"{path} is {owner_name(info.st_uid)}'s, not {owner}'s (who made this environment)"
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path} may be changed by others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def check_environment(prefix: Path, owner: str) -> None:
    """Refuse (SystemExit, saying what to do) an environment that is not ``owner``'s alone."""
    problem = environment_problem(prefix, owner)
    if problem:
        raise SystemExit(
            f"aifactory-kernel: not starting the kernel of {prefix}: {problem}. Someone else may have "
            f"replaced or changed it; ask {owner} (who made it) to check it and build it again "
            f"(aifactory-env remove, then create), and tell the site's support if you did not expect this."
        )


def launch(modules: list[str], command: list[str], env: tuple[Path, str] | None = None) -> None:
    """Run the kernel's ``command`` after loading ``modules``; with ``env`` (its prefix and the
    user who made it), only after :func:`check_environment` has found it that user's alone."""
    if not command:
        raise SystemExit("aifactory-kernel launch: give the kernel's command after --")
    if env is not None:
        check_environment(*env)
    if command[0] in ("python", "python3"):
        command = [sys.executable, *command[1:]]
    argv, env = with_modules(modules, command)
    os.execvpe(argv[0], argv, env)


def kernelspec(python: str, display_name: str, modules: list[str], env: tuple[Path, str] | None = None) -> dict:
    """A kernelspec; with ``env`` (an environment's prefix and its maker), the launcher checks
    that environment at every start (:func:`check_environment`) before it runs its Python."""
    kernel = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    launcher = str(Path(sys.executable).with_name("aifactory-kernel"))
    checked = ["--env", str(env[0]), "--owner", env[1]] if env else []
    loads = [a for m in modules for a in ("--module", m)]
    prefix = [launcher, "launch", *checked, *loads, "--"] if modules or env else []
    return {
        "display_name": display_name,
        "language": "python",
        "argv": prefix + kernel,
        "metadata": {"aifactory": {"modules": modules}},
    }


def check_kernel_name(name: str) -> None:
    if not _KERNEL_NAME.fullmatch(name):
        raise SystemExit(f"aifactory-kernel: {name!r} is not a kernel name (lower-case letters, digits, . _ -)")


def user_kernel_dir(name: str) -> Path:
    """Where a user's own kernelspec lives (Jupyter's user data folder)."""
    data_home = os.environ.get("JUPYTER_DATA_DIR") or os.path.expanduser("~/.local/share/jupyter")
    return Path(data_home) / "kernels" / name


def kernel_specs() -> dict[str, str]:
    """Every kernel Jupyter offers here, name to folder: the user's own and the site's (the
    server never adds ipykernel's stock one: ``ensure_native_kernel`` is off)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager(ensure_native_kernel=False).find_kernel_specs()


def register(
    name: str,
    python: str,
    display_name: str | None,
    modules: list[str],
    description: str = "",
    metadata: dict | None = None,
    logo: Path | None = None,
) -> Path:
    """Write the kernelspec; ``metadata`` joins its ``metadata.aifactory``, ``logo`` (an SVG)
    is shown in the launcher."""
    check_kernel_name(name)
    check_modules(modules)
    python = os.path.abspath(os.path.expanduser(python))
    if not os.access(python, os.X_OK):
        raise SystemExit(f"aifactory-kernel: {python} is not an executable Python")
    prefix = environment_of(python)
    env = (prefix, owner_name(prefix.lstat().st_uid)) if prefix else None
    if env is not None:
        check_environment(*env)
    probe = subprocess.run([python, "-c", "import ipykernel"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SystemExit(f"aifactory-kernel: {python} has no ipykernel; add it: {python} -m pip install ipykernel")
    directory = user_kernel_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    spec = kernelspec(python, display_name or f"Python ({name})", modules, env)
    spec["metadata"]["aifactory"].update(metadata or {})
    if description:
        spec["metadata"]["description"] = description
    if logo and logo.is_file():
        shutil.copyfile(logo, directory / "logo-svg.svg")
    (directory / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aifactory-kernel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("launch", help="load modules, then run the kernel command given after --")
    run.add_argument("--module", action="append", default=[], help="module to load (repeatable)")
    run.add_argument("--env", type=Path, help="the environment whose Python this is: checked first")
    run.add_argument("--owner", help="who made --env: it must be theirs alone")
    run.add_argument("kernel", nargs=argparse.REMAINDER)
    reg = sub.add_parser("register", help="add your own Python environment as a kernel")
    reg.add_argument("name")
    reg.add_argument("--python", required=True, help="the environment's python (with ipykernel)")
    reg.add_argument("--display-name")
    reg.add_argument("--module", action="append", default=[], help="module to load first (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "launch":
        if bool(args.env) != bool(args.owner):
            raise SystemExit("aifactory-kernel launch: --env and --owner go together")
        command = args.kernel[1:] if args.kernel[:1] == ["--"] else args.kernel
        launch(args.module, command, (args.env, args.owner) if args.env else None)
        return 0
    path = register(args.name, args.python, args.display_name, args.module)
    print(f"kernel {args.name!r} registered: {path / 'kernel.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
