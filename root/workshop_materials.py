"""A workshop's materials: a git repository or a folder, read as the first instructor (root
would follow their links, and read what they may not) and published as a git bundle that
every seat's job can read; nbgitpuller merges it into each seat's home at each start."""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from aifactory_workbench.hub.workshop_file import WorkshopError, WorkshopFile
from aifactory_workbench.root.workshop_accounts import as_user, run
from aifactory_workbench.spawners.seats import Materials

#: A repository of materials, as a bundle on stdout (run as the instructor who reads it).
MIRROR = (
    'd=$(mktemp -d) && git clone -q --bare -- "$1" "$d/m" >&2 && git -C "$d/m" bundle create - HEAD; '
    'rc=$?; rm -rf "$d"; exit $rc'
)


def publish_materials(spec: WorkshopFile, state: Path, materials_dir: Path) -> Materials:
    """The materials as a git bundle every seat's job can read (in ``materials_dir``; the
    workshop's own repository of them in its state folder ``state``) (a repository owned by root
    would be refused by the seats' git as "dubious ownership"): a repository is mirrored,
    a folder is committed, again on a later create, so students' pulls merge.

    The first instructor reads them (root would follow their links, and read what they may
    not): a folder comes as a tar stream whose links must stay inside it, a repository as
    a bundle; root takes both as data."""
    bare = state / "materials.git"
    source, reader = spec.materials, spec.instructors[0]
    source = source if "://" in source else os.path.abspath(source)  # the reader starts in /
    is_repo = "://" in source or (Path(source) / ".git").exists() or (Path(source) / "HEAD").exists()
    git = ["git", "-c", "user.name=AI Factory Workbench", "-c", "user.email=root@localhost"]
    if not bare.exists():
        run(*git, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    with tempfile.TemporaryDirectory() as work:
        if is_repo:
            bundle = Path(work) / "theirs.bundle"
            with bundle.open("wb") as out:
                _as_reader(reader, source, ["sh", "-c", MIRROR, "sh", source], stdout=out)
            run(*git, "-C", str(bare), "fetch", "-q", str(bundle), "+HEAD:refs/heads/main")
        else:
            checkout = Path(work) / "checkout"
            run(*git, "clone", "-q", str(bare), str(checkout))
            for item in checkout.iterdir():
                if item.name != ".git":
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            _unpack_folder(reader, source, checkout)
            run(*git, "-C", str(checkout), "add", "-A")
            if run(*git, "-C", str(checkout), "status", "--porcelain").strip():
                run(*git, "-C", str(checkout), "commit", "-q", "-m", f"materials of {spec.name}")
                run(*git, "-C", str(checkout), "push", "-q", "origin", "HEAD:main")
    materials_dir.mkdir(parents=True, exist_ok=True)
    materials_dir.chmod(0o755)
    bundle = materials_dir / f"{spec.name}.bundle"
    run(*git, "-C", str(bare), "bundle", "create", "-q", str(bundle.with_suffix(".tmp")), "main")
    bundle.with_suffix(".tmp").chmod(0o644)
    os.replace(bundle.with_suffix(".tmp"), bundle)
    return Materials(repo=str(bundle), branch="main", folder=spec.name)


def _as_reader(reader: str, source: str, argv: list[str], stdout: Any) -> None:
    with tempfile.TemporaryFile() as errors:
        code = subprocess.run(argv, stdout=stdout, stderr=errors, **as_user(reader)).returncode
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip()
    if code != 0:
        raise WorkshopError(f"key 'materials': instructor {reader} cannot read {source}: {said}")


def _unpack_folder(reader: str, source: str, into: Path) -> None:
    """The folder ``source`` as ``reader`` reads it, into ``into`` (root's own): files,
    folders and links that stay inside it (one that leaves it is refused, by name); root
    writes no file through a link, so a link is only ever followed by a seat."""
    if not Path(source).is_dir():
        raise WorkshopError(f"key 'materials': {source!r} is neither a git repository nor a folder")
    with tempfile.TemporaryFile() as stream:
        tar_argv = ["tar", "-C", source, "--exclude=./.git", "--hard-dereference", "-cf", "-", "."]
        _as_reader(reader, source, tar_argv, stdout=stream)
        stream.seek(0)
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                if not parts or ".git" in parts:
                    continue  # the folder itself; git's own folders are not materials
                name = PurePosixPath(*parts)
                if name.is_absolute() or ".." in parts:
                    raise WorkshopError(f"key 'materials': {source}: a name that leaves the folder: {member.name}")
                target = into.joinpath(*parts)
                if any(
                    p.is_symlink() or not p.is_dir() for p in [into.joinpath(*parts[:i]) for i in range(1, len(parts))]
                ):
                    raise WorkshopError(f"key 'materials': {source}: {name} lies under a link")
                if member.isdir():
                    target.mkdir(mode=0o755, exist_ok=True)
                elif member.issym():
                    inside = posixpath.normpath(posixpath.join(str(name.parent), member.linkname))
                    if posixpath.isabs(member.linkname) or inside == ".." or inside.startswith("../"):
                        raise WorkshopError(
                            f"key 'materials': {name} in {source} is a link to {member.linkname}, outside the "
                            "materials folder: only links inside it are copied (copy the file in instead)"
                        )
                    os.symlink(member.linkname, target)
                elif member.isfile():
                    mode = 0o755 if member.mode & 0o100 else 0o644
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(tar.extractfile(member), out)
                else:
                    raise WorkshopError(f"key 'materials': {name} in {source} is not a file, folder or link")
