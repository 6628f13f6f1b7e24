"""What ``aifactory-workshop`` does as root with files that users own, played as their attacks
on real Unix users of this machine (made here, removed after; no daemon is needed): an
instructor's link in place of ~/workshop-archives, a seat that swaps a folder for a link
while its home is archived, a materials folder with a link to a root-only file, and seats
that read each other's homes."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from aifactory_workbench.hub.workshop_file import WorkshopError, read_workshop_file
from aifactory_workbench.hub.workshops import Workshops
from aifactory_workbench.root.workshop_accounts import Made, make_seats
from aifactory_workbench.root.workshop_archive import archive_homes
from aifactory_workbench.root.workshop_materials import publish_materials
from aifactory_workbench.spawners.seats import Workshop

from .defaults import DEFAULTS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="makes Unix users: run as root")

SECRET = "ROOT ONLY " + secrets.token_hex(8)


class Users:
    """Unix users made for one test, removed with their homes and processes after it."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def make(self, name: str) -> str:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
        self.made.append(name)
        return name

    def remove(self) -> None:
        for name in self.made:
            subprocess.run(["pkill", "-KILL", "-u", name], check=False)
            time.sleep(0.2)
            subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


@pytest.fixture
def users() -> Iterator[Users]:
    made = Users()
    yield made
    made.remove()


@pytest.fixture
def root_only() -> Iterator[Path]:
    """A folder only root may read, holding a secret."""
    folder = Path(tempfile.mkdtemp(prefix="aifw-root-only-", dir="/var/tmp"))
    folder.chmod(0o700)
    (folder / "f").write_text(SECRET)
    (folder / "f").chmod(0o600)
    yield folder
    for item in folder.iterdir():
        item.unlink()
    folder.rmdir()


def workshops(tmp_path: Path) -> Workshops:
    places = {"registry": tmp_path / "registry", "state_dir": tmp_path / "state", "materials_dir": tmp_path / "mat"}
    site = replace(DEFAULTS, workshops=replace(DEFAULTS.workshops, **{k: str(v) for k, v in places.items()}))
    return Workshops(site, out=lambda line: None)


def as_user(user: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv],
        capture_output=True,
        text=True,
        cwd="/",
    )


def a_workshop(name: str, seats: tuple[str, ...], instructors: tuple[str, ...]) -> Workshop:
    return Workshop(
        name=name,
        title="t",
        start="2026-11-28T09:00:00",
        end="2099-11-28T17:00:00",
        seats=seats,
        instructors=instructors,
        account=name,
        reservation=name,
    )


def names() -> tuple[str, str]:
    tag = secrets.token_hex(3)
    return f"aiw{tag}", f"aiwi{tag}"


def test_an_instructors_link_for_the_archive_folder_is_followed_as_the_instructor(tmp_path, users, root_only):
    """~/workshop-archives -> a root-owned folder: root must not chown it nor write into it."""
    name, instructor = names()
    seat = users.make(f"{name}-01")
    users.make(instructor)
    home = Path(f"/home/{instructor}")
    target = Path(tempfile.mkdtemp(prefix="aifw-roots-", dir="/var/tmp"))  # stands for /etc
    target.chmod(0o755)
    try:
        (home / "workshop-archives").symlink_to(target)
        os.lchown(home / "workshop-archives", pwd.getpwnam(instructor).pw_uid, pwd.getpwnam(instructor).pw_gid)
        result = archive_homes(a_workshop(name, (seat,), (instructor,)), print)
        info = target.stat()
        assert (info.st_uid, info.st_gid, oct(info.st_mode & 0o7777)) == (0, 0, "0o755")
        assert list(target.iterdir()) == []
        assert f"{instructor}: " in result and "Permission denied" in result
    finally:
        for item in target.iterdir():
            item.unlink()
        target.rmdir()


SWAPPER = """
import ctypes, os, sys
os.chdir(sys.argv[1])
os.mkdir("d"); open("d/f", "w").write("the seat's own")
os.symlink(sys.argv[2], "link")
libc = ctypes.CDLL(None)
while True:  # d is a folder, then a link to root's folder, then a folder... (renameat2 RENAME_EXCHANGE)
    libc.renameat2(-100, b"d", -100, b"link", 2)
"""


def test_a_seat_that_swaps_a_folder_for_a_link_during_the_archive_gets_nothing_of_roots(tmp_path, users, root_only):
    name, instructor = names()
    seat = users.make(f"{name}-01")
    users.make(instructor)
    swapper = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={seat}",
            f"--regid={seat}",
            "--init-groups",
            "/usr/bin/python3",
            "-c",
            SWAPPER,
            f"/home/{seat}",
            str(root_only),
        ],
        cwd="/",
    )
    leaked, failed = [], []
    try:
        time.sleep(0.5)
        for _ in range(40):
            try:
                archive_homes(a_workshop(name, (seat,), (instructor,)), print)
            except OSError as e:
                failed.append(str(e))
                continue
            (archive,) = Path(f"/home/{instructor}/workshop-archives").glob(f"{name}-*.tar.gz")
            with tarfile.open(archive) as tar:
                assert f"{seat}/.bashrc" in tar.getnames()  # the seat's own work is there
                leaked += [
                    m.name for m in tar.getmembers() if m.isfile() and SECRET.encode() in tar.extractfile(m).read()
                ]
    finally:
        swapper.kill()
        swapper.wait()
    assert leaked == [] and failed == []


def test_materials_with_a_link_out_of_their_folder_are_refused_by_name(tmp_path, users, root_only):
    name, instructor = names()
    users.make(instructor)
    materials = Path(f"/home/{instructor}/course")
    assert as_user(instructor, "mkdir", str(materials)).returncode == 0
    as_user(instructor, "sh", "-c", f"echo '# Lesson' > {materials}/lesson.md")
    as_user(instructor, "ln", "-s", str(root_only / "f"), str(materials / "answers.txt"))
    as_user(instructor, "ln", "-s", "lesson.md", str(materials / "intro.md"))  # inside: accepted
    spec_file = tmp_path / "w.yaml"
    spec_file.write_text(
        f"name: {name}\ntitle: t\nend: 2099-01-01T17:00\nseats: 1\ninstructors: [{instructor}]\n"
        f"materials: {materials}\n"
    )
    spec = read_workshop_file(spec_file, DEFAULTS, lambda u: True)
    ws = workshops(tmp_path)
    with pytest.raises(WorkshopError) as refused:
        publish_materials(spec, ws.state / spec.name, ws.materials_dir)
    assert "answers.txt" in str(refused.value) and "outside" in str(refused.value)
    bundles = list(ws.materials_dir.glob("*.bundle")) if ws.materials_dir.exists() else []
    assert not any(SECRET.encode() in b.read_bytes() for b in bundles)
    # Without the link the materials arrive, the link inside the folder as a link.
    (materials / "answers.txt").unlink()
    bundle = publish_materials(spec, ws.state / spec.name, ws.materials_dir).repo
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "main", bundle, str(clone)], check=True)
    assert (clone / "lesson.md").read_text() == "# Lesson\n" and os.readlink(clone / "intro.md") == "lesson.md"


def test_a_repository_of_materials_is_read_as_the_instructor(tmp_path, users, root_only):
    """A repository's link to a root-only file reaches the seats as a link, never its content."""
    name, instructor = names()
    users.make(instructor)
    repo = f"/home/{instructor}/course"
    git = ["git", "-C", repo, "-c", "user.name=i", "-c", "user.email=i@localhost"]
    steps = [
        ["git", "init", "-q", repo],
        ["sh", "-c", f"echo '# Lesson' > {repo}/lesson.md"],
        ["ln", "-s", str(root_only / "f"), f"{repo}/answers.txt"],
        [*git, "add", "-A"],
        [*git, "commit", "-q", "-m", "m"],
    ]
    for step in steps:
        assert as_user(instructor, *step).returncode == 0, step
    spec_file = tmp_path / "w.yaml"
    spec_file.write_text(
        f"name: {name}\ntitle: t\nend: 2099-01-01T17:00\nseats: 1\ninstructors: [{instructor}]\nmaterials: {repo}\n"
    )
    ws = workshops(tmp_path)
    spec = read_workshop_file(spec_file, DEFAULTS, lambda u: True)
    bundle = publish_materials(spec, ws.state / spec.name, ws.materials_dir).repo
    assert SECRET.encode() not in Path(bundle).read_bytes()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "main", bundle, str(clone)], check=True)
    assert (clone / "lesson.md").read_text() == "# Lesson\n" and os.readlink(clone / "answers.txt") == str(
        root_only / "f"
    )


def test_seats_are_strangers_their_homes_are_their_own(tmp_path, users):
    name, _ = names()
    spec_file = tmp_path / "w.yaml"
    spec_file.write_text(f"name: {name}\ntitle: t\nend: 2099-01-01T17:00\nseats: 2\ninstructors: [root]\n")
    spec = read_workshop_file(spec_file, DEFAULTS, lambda u: True)
    users.made += [f"{name}-01", f"{name}-02"]
    ws = workshops(tmp_path)
    ws.state.mkdir(parents=True)
    make_seats(spec, ws.state / "seats.csv", Made.load(ws.state / "made.json"), DEFAULTS.hub.allowed_groups[0])
    assert Made.load(ws.state / "made.json").users == [f"{name}-01", f"{name}-02"]
    first, second = Path(f"/home/{name}-01"), Path(f"/home/{name}-02")
    assert oct(first.stat().st_mode & 0o777) == "0o700" and oct(second.stat().st_mode & 0o777) == "0o700"
    assert as_user(f"{name}-01", "sh", "-c", f"umask 022; echo my answers > {first}/work.txt").returncode == 0
    peek = as_user(f"{name}-02", "cat", f"{first}/work.txt")
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    assert as_user(f"{name}-02", "ls", str(first)).returncode != 0
