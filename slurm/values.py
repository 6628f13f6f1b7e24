"""The values SLURM (and Unix) accept, each as one rule that says what it accepts.

Every check of a partition name, a memory size, a walltime or a user name in the
workbench uses these: the site file's validation, the spawner's option checks and the
client's refusal to run a command as an odd user name.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

UNIX_USER = re.compile(r"[a-z_][a-z0-9_.-]*")
SLURM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MEMORY = re.compile(r"[1-9][0-9]*[KMGT]")
WALLTIME = re.compile(r"(?:[0-9]+-)?[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]")


@dataclass(frozen=True)
class Rule:
    """How one value is checked, and how to tell a person what would be accepted."""

    check: Callable[[Any], bool]
    accepted: str
    explain: Callable[[Any], str] | None = None  # what exactly is wrong, for composite values


def matches(pattern: re.Pattern[str], accepted: str, *, empty: bool = False) -> Rule:
    return Rule(lambda v: isinstance(v, str) and ((empty and v == "") or bool(pattern.fullmatch(v))), accepted)


def is_int(lo: int, hi: int) -> Rule:
    return Rule(lambda v: type(v) is int and lo <= v <= hi, f"an integer from {lo} to {hi}")


def is_unix_user(name: str) -> bool:
    return bool(UNIX_USER.fullmatch(name))


PARTITION = matches(SLURM_NAME, "a SLURM partition name")
ACCOUNT = matches(SLURM_NAME, 'a SLURM account name, or "" for the user\'s default', empty=True)
QOS = matches(SLURM_NAME, 'a SLURM QoS name, or "" for none', empty=True)
RESERVATION = matches(SLURM_NAME, 'a SLURM reservation name, or "" for none', empty=True)
CPUS = is_int(1, 4096)
GPUS = is_int(0, 64)
MEMORY_SIZE = matches(MEMORY, "a memory size such as 512M, 4G or 1T")
WALLTIME_TEXT = matches(WALLTIME, "a walltime HH:MM:SS or D-HH:MM:SS")
JOB_NAME = matches(SLURM_NAME, "letters, digits, '_', '.' and '-'")


def parse_duration(text: str) -> int | None:
    """SLURM's [D-]HH:MM:SS, MM:SS or MM as seconds; None for UNLIMITED or nonsense."""
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+)(?::(\d+))?", text.strip())
    if not m:
        return None
    days, first, second, third = (int(g) if g else 0 for g in m.groups())
    if m.group(4) is not None:  # three fields: H:M:S (with or without days)
        hours, minutes, seconds = first, second, third
    elif m.group(2) is not None:  # two fields: with days D-H:M, else M:S
        hours, minutes, seconds = (first, second, 0) if m.group(1) else (0, first, second)
    else:  # one field: D-H or M
        hours, minutes, seconds = (second, 0, 0) if m.group(1) else (0, second, 0)
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_duration(seconds: int) -> str:
    """Seconds as SLURM's walltime, HH:MM:SS or D-HH:MM:SS (the inverse of parse_duration)."""
    days, rest = divmod(max(0, int(seconds)), 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def format_memory(mb: int) -> str:
    """MB as a size the user can write in the memory field and SLURM reads: 16G, or 15600M."""
    return f"{mb // 1024}G" if mb and mb % 1024 == 0 else f"{mb}M"


def parse_memory_mb(text: str) -> int | None:
    """SLURM sizes (``16000``, ``16000M``, ``2G``, ``1T``) in MB; None for UNLIMITED."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip())
    if not m:
        return None
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return int(float(m.group(1)) * factor)


def user_groups(user: str) -> set[str]:
    """The names of the Unix groups ``user`` belongs to (their primary group's included)."""
    entry = pwd.getpwnam(user)
    names = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names
