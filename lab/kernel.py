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
import re
import shutil
import subprocess
import sys
from pathlib import Path

# What login shells source: it sets MODULEPATH from /etc/lmod/modulespath, then `module`.
LMOD_INIT = "/usr/share/lmod/lmod/init/profile"
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
    """The command, and its environment, that runs ``command`` after loading ``modules``."""
    check_modules(modules)
    if not modules:
        return command, dict(os.environ)
    env = {**os.environ, "AIFACTORY_LMOD_INIT": LMOD_INIT}
    return ["bash", "-c", _LOAD_THEN_EXEC, "bash", str(len(modules)), *modules, *command], env


def launch(modules: list[str], command: list[str]) -> None:
    if not command:
        raise SystemExit("aifactory-kernel launch: give the kernel's command after --")
    if command[0] in ("python", "python3"):
        command = [sys.executable, *command[1:]]
    argv, env = with_modules(modules, command)
    os.execvpe(argv[0], argv, env)


def kernelspec(python: str, display_name: str, modules: list[str]) -> dict:
    kernel = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    launcher = str(Path(sys.executable).with_name("aifactory-kernel"))
    prefix = [launcher, "launch", *[a for m in modules for a in ("--module", m)], "--"] if modules else []
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
    probe = subprocess.run([python, "-c", "import ipykernel"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SystemExit(f"aifactory-kernel: {python} has no ipykernel; add it: {python} -m pip install ipykernel")
    directory = user_kernel_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    spec = kernelspec(python, display_name or f"Python ({name})", modules)
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
    run.add_argument("kernel", nargs=argparse.REMAINDER)
    reg = sub.add_parser("register", help="add your own Python environment as a kernel")
    reg.add_argument("name")
    reg.add_argument("--python", required=True, help="the environment's python (with ipykernel)")
    reg.add_argument("--display-name")
    reg.add_argument("--module", action="append", default=[], help="module to load first (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "launch":
        launch(args.module, args.kernel[1:] if args.kernel[:1] == ["--"] else args.kernel)
        return 0
    path = register(args.name, args.python, args.display_name, args.module)
    print(f"kernel {args.name!r} registered: {path / 'kernel.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
