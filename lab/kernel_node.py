"""The node's side of a kernel in a job of its own (lab/slurm_kernel.py): the kernel's job runs
``python -m aifactory_workbench.lab.kernel_node CONNECTION_FILE -- KERNEL...``, which writes this
node's address into the connection file and becomes the kernel. Kept apart from the provisioner,
and light (no Jupyter import): it is on the path from "start kernel" to the first output."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.parsers import SlurmError, parse_scontrol_oneliner


def node_address(slurm: Slurm, node: str) -> str:
    """The address other nodes reach ``node`` at: SLURM's own (its NodeAddr), as an IP address
    (a kernel binds there); the host name's where SLURM does not answer."""
    try:
        record = parse_scontrol_oneliner(slurm.run_blocking(["scontrol", "show", "node", node, "-o"]).stdout)
    except SlurmError:
        record = {}
    return socket.gethostbyname(record.get("NodeAddr") or node or socket.gethostname())


def write_private(path: Path, text: str) -> None:
    """A new file only this user reads, never through a link; replaces ``path`` atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temporary, path)


def on_node(connection_file: Path, cmd: list[str]) -> None:
    """In the kernel's job: write this node's address into the connection file, then become the
    kernel (which binds its ports there and writes them into the same file)."""
    info = json.loads(connection_file.read_text())
    info["ip"] = node_address(Slurm(), os.environ.get("SLURMD_NODENAME", ""))
    write_private(connection_file, json.dumps(info))
    os.execvp(cmd[0], cmd)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[0] != "on-node" or args[2] != "--":
        print(
            "usage: python -m aifactory_workbench.lab.kernel_node on-node CONNECTION_FILE -- KERNEL...",
            file=sys.stderr,
        )
        return 2
    on_node(Path(args[1]), args[3:])
    return 1  # not reached: the kernel took this process over


if __name__ == "__main__":
    sys.exit(main())
