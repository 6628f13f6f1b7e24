"""A JupyterLab terminal's shell (``ServerApp.terminado_settings``, config/jupyter): the
user's own login shell, with this job's environment first on ``PATH``, as in its kernels.

jupyter_server starts ``$SHELL -l``, and Debian's ``/etc/profile`` sets ``PATH`` afresh for a
login shell, so the terminal lost what the launcher had put first (job/launcher.py) and
``aifactory-publish``, ``aifactory-run-notebook`` and ``aifactory-kernel`` were "command not
found".  For bash, ``terminal.bashrc`` reads what a login shell reads, in bash's order, then
puts the environment's folder back in front.  Other shells start as login shells, unchanged.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: bash's start-up file for the terminal: the login files, then this environment on PATH.
BASHRC = Path(__file__).with_name("terminal.bashrc")
#: Names the folder to put first (this environment's bin) for terminal.bashrc.
BIN_ENV = "AIFACTORY_BIN"


def shell_argv(shell: str) -> list[str]:
    """The command line of the terminal's shell ``shell`` (a path)."""
    if os.path.basename(shell) == "bash":
        return [shell, "--rcfile", str(BASHRC), "-i"]
    return [shell, "-l"]


def main() -> int:
    shell = shutil.which(os.environ.get("SHELL") or "bash") or "/bin/bash"
    os.environ[BIN_ENV] = os.path.dirname(sys.executable)
    argv = shell_argv(shell)
    os.execv(argv[0], argv)
    return 1  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
