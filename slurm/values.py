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


# The site's hooks in every JupyterLab job (site file: singleuser.prologue, lmod_init, port_range;
# spawners/jobscript.py SiteHooks renders them): rules the site file's schema and the job script share.
#: A word of a site's command before JupyterLab: none of these characters means anything to the
#: shell, so the job runs the words exactly as the site file writes them (no variable, glob, quote,
#: pipe, redirection or second command to be read otherwise).
_PROLOGUE_TEXT = re.compile(r"[A-Za-z0-9_@%+=:,./ -]{1,500}")
#: The first word: a command's name or path (not an option).
_PROLOGUE_COMMAND = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./+-]*")
#: The site's commands that are Lmod's shell function: the job sources ``lmod_init`` before them.
LMOD_COMMANDS = ("module", "ml")
#: Lmod's shell set-up file, as the site file names it: an absolute path of plain characters.
_LMOD_INIT = re.compile(r"/[A-Za-z0-9_./+-]*")
#: JupyterLab's ports with a range: no well-known port (below 1024), none above 65535.
PORT_RANGE_LIMITS = (1024, 65535)

PROLOGUE_ACCEPTED = (
    "one simple command of words made of letters, digits, spaces and _@%+=:,./- (no $, quotes, "
    "globs, ;, &&, | or redirections; put anything more in a root-owned script and name it: source /path)"
)


def prologue_words(command: object) -> list[str] | None:
    """A site's command before JupyterLab (site file ``singleuser.prologue``) as its words, or None
    when it is not one simple command of plain words (:data:`PROLOGUE_ACCEPTED`)."""
    if not isinstance(command, str) or not _PROLOGUE_TEXT.fullmatch(command):
        return None
    words = command.split()
    return words if words and _PROLOGUE_COMMAND.fullmatch(words[0]) else None


def lmod_init_ok(path: object) -> bool:
    """Lmod's set-up file as the site file names it (``singleuser.lmod_init``): "" (no Lmod) or
    an absolute path of plain characters without '..'."""
    return isinstance(path, str) and (
        path == "" or (_LMOD_INIT.fullmatch(path) is not None and ".." not in path.split("/"))
    )


def port_range_ok(value: object) -> bool:
    """JupyterLab's ports (``singleuser.port_range``): [] (any free port) or [LOW, HIGH], whole
    numbers with 1024 <= LOW <= HIGH <= 65535."""
    if value in ([], ()):
        return True
    lo, hi = PORT_RANGE_LIMITS
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(type(p) is int for p in value)
        and lo <= value[0] <= value[1] <= hi
    )


@dataclass(frozen=True)
class SiteHooks:
    """What the site's own file (root's, never a user's) adds to every JupyterLab job: commands
    run before JupyterLab (``prologue``: ``module load ...``, ``source /etc/site/job.sh``), Lmod's
    set-up file (``lmod_init``; sourced before a ``module`` or ``ml`` command, and named to the
    job's kernels as ``AIFACTORY_LMOD_INIT``) and the ports JupyterLab may listen on
    (``port_range``, inclusive; None: any free port).

    The commands are rendered into each batch script, not written by ``aifactory-site install`` as
    a root-owned script that jobs source: the script SLURM keeps for each job then shows exactly
    what that job ran, no file must exist on every compute node, and a change takes effect at the
    hub's next start like every other site key. What reaches the script is safe by construction:
    the hub reads the commands from the site file alone (no user option, form field or workshop
    names them), and each is one simple command of plain words (:func:`prologue_words`), joined
    with ``shlex.join``, so it runs as written and can add no second command. One that fails stops
    the job before JupyterLab, saying which, in the job's log."""

    prologue: tuple[str, ...] = ()
    lmod_init: str = ""
    port_range: tuple[int, ...] | None = None

    def problems(self) -> list[tuple[str, Any, str]]:
        """Each value that breaks its rule, as (name, value, what is accepted); empty: none."""
        found: list[tuple[str, Any, str]] = [
            ("prologue", c, PROLOGUE_ACCEPTED) for c in self.prologue if prologue_words(c) is None
        ]
        if not lmod_init_ok(self.lmod_init):
            found.append(("lmod_init", self.lmod_init, '"" or the absolute path of Lmod\'s init/profile'))
        if self.needs_lmod and not self.lmod_init:
            found.append(("lmod_init", "", "the path of Lmod's init/profile (a prologue command is module or ml)"))
        if self.port_range is not None and not port_range_ok(list(self.port_range)):
            found.append(("port_range", self.port_range, "[LOW, HIGH] with 1024 <= LOW <= HIGH <= 65535"))
        return found

    @property
    def needs_lmod(self) -> bool:
        return any((prologue_words(c) or [""])[0] in LMOD_COMMANDS for c in self.prologue)

    @property
    def port_range_text(self) -> str:
        """The range as the launcher reads it (``LOW-HIGH``), "" for any port."""
        return f"{self.port_range[0]}-{self.port_range[1]}" if self.port_range else ""
