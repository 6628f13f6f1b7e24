"""The end of a workshop keeps its seats' work: every seat's home in one archive, a copy for
each instructor. Root never follows a seat's link: each home is read by its seat, and each
instructor writes their own copy."""

from __future__ import annotations

import datetime
import pwd
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from aifactory_workbench.root.workshop_accounts import as_user, user_exists
from aifactory_workbench.spawners.seats import Workshop


def archive_homes(workshop: Workshop, out: Callable[[str], None]) -> str:
    """Every seat's home in one file, a copy in each instructor's ~/workshop-archives (what
    could not be read is said through ``out``); where the copies are.

    Each home is read by its seat (``tar`` as the seat: a link or a folder swapped for one
    leads nowhere the seat could not read itself), root takes the stream as data (files
    and folders only), and each instructor writes their own copy."""
    homes = [(seat, pwd.getpwnam(seat).pw_dir) for seat in workshop.seats if user_exists(seat)]
    if not homes:
        return "(no seat left to archive)"
    filename = f"{workshop.name}-{datetime.date.today().isoformat()}.tar.gz"
    notes = []
    with tempfile.TemporaryFile() as made:
        with tarfile.open(fileobj=made, mode="w:gz") as tar:
            for seat, home in homes:
                notes += _add_home(tar, seat, home)
        copies = []
        for instructor in workshop.instructors:
            if not user_exists(instructor):
                continue
            made.seek(0)
            folder = Path(pwd.getpwnam(instructor).pw_dir) / "workshop-archives"
            write = 'mkdir -p -m 700 -- "$1" && cat > "$1/.$2.part" && mv -f -- "$1/.$2.part" "$1/$2"'
            result = subprocess.run(
                ["sh", "-c", write, "sh", str(folder), filename],
                stdin=made,
                capture_output=True,
                text=True,
                **as_user(instructor),
            )
            copies.append(
                str(folder / filename) if result.returncode == 0 else f"{instructor}: no copy ({result.stderr.strip()})"
            )
    for note in notes:
        out(note)
    return ", ".join(copies) or "(no instructor left to receive it)"


def _add_home(tar: tarfile.TarFile, seat: str, home: str) -> list[str]:
    """``seat``'s home, as the seat reads it, into ``tar`` under ``seat/``; what it could not read, said."""
    with tempfile.TemporaryFile() as errors:
        reading = subprocess.Popen(
            ["tar", "-C", home, "--hard-dereference", "-cf", "-", "."],
            stdout=subprocess.PIPE,
            stderr=errors,
            **as_user(seat),
        )
        try:
            with tarfile.open(fileobj=reading.stdout, mode="r|") as theirs:
                for member in theirs:
                    parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                    if ".." in parts or PurePosixPath(member.name).is_absolute():
                        continue
                    if member.isfile() or member.isdir():
                        member.name = str(PurePosixPath(seat, *parts))
                        tar.addfile(member, theirs.extractfile(member) if member.isfile() else None)
        except tarfile.TarError as e:
            errors.write(f"{e}\n".encode())
        finally:
            reading.stdout.close()
            code = reading.wait()
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip()
    return [f"archive: {seat}: {said.splitlines()[0]}"] if code != 0 and said else []
