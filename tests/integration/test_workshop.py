"""A workshop from one file, on the real cluster and hub: ``aifactory-workshop create``, a
seat's job in the reservation with the materials in its home, the instructor's access and
page, ``status``, ``end`` with the archive, and both commands run twice."""

from __future__ import annotations

import csv
import io
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aifactory_workbench.slurm.admin import SlurmAdmin

from .conftest import HUB_VENV, HubProcess, job_node, launch, on_node, queued_jobs, sh, wait_for

INSTRUCTOR_ARCHIVES = Path("/home/instructor/workshop-archives")


@pytest.fixture(scope="module")
def places() -> Iterator[dict[str, Path]]:
    """The workshops' folders for this module's hub: registry (root's, read by the hub), seat
    sheets (root's alone) and materials (read by the seats)."""
    top = Path(tempfile.mkdtemp(prefix="aifw-ws-", dir="/var/tmp"))
    top.chmod(0o755)
    yield {"registry": top / "registry", "state_dir": top / "state", "materials_dir": top / "materials", "top": top}
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def ws_hub(places: dict[str, Path]) -> Iterator[HubProcess]:
    hub = launch(workshops={k: str(places[k]) for k in ("registry", "state_dir", "materials_dir")})
    yield hub
    hub.shutdown()


def workshop_cli(hub: HubProcess, *args: str) -> subprocess.CompletedProcess:
    argv = [str(HUB_VENV / "bin" / "aifactory-workshop"), *args, "--site", str(hub.site_file)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def write_workshop_file(directory: Path, name: str, materials: Path) -> Path:
    path = directory / f"{name}.yaml"
    spec = {
        "name": name,
        "title": "Climate data with Dask",
        "start": "now",
        "end": "2099-01-01T12:00",
        "seats": 3,
        "instructors": ["instructor"],
        "preset": "workshop",
        "materials": str(materials),
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def as_user(user: str, *command: str) -> str:
    return sh("sudo", "-u", user, *command)


@pytest.mark.slow
def test_a_workshop_from_one_file_to_its_archive(ws_hub: HubProcess, places: dict[str, Path], tmp_path: Path):
    hub = ws_hub
    name = "ws" + secrets.token_hex(3)
    seats = [f"{name}-0{i}" for i in (1, 2, 3)]
    materials = places["top"] / f"materials-{name}"  # the instructor's: read as the instructor
    materials.mkdir()
    (materials / "lesson.md").write_text("# Lesson 1\n")
    shutil.chown(materials, "instructor", "instructor")
    spec = write_workshop_file(tmp_path, name, materials)
    try:
        made = workshop_cli(hub, "create", str(spec))
        assert made.returncode == 0, made.stderr
        assert f"workshop {name}: 3 seats, reservation {name} (6 cores of gpp" in made.stdout
        # Seats, their SLURM associations, and a reservation for them.
        assert all(sh("id", "-nG", s).split() == [s, "aifactory-users"] for s in seats)
        assert sh("sacctmgr", "-n", "-P", "show", "assoc", f"user={seats[0]}", "format=Account").split() == [name]
        reservation = sh("scontrol", "show", "reservation", name, "-o")
        assert f"Accounts={name}" in reservation and "CoreCnt=6" in reservation
        # The node its cores landed on, with the memory its seats share (3 seats fit: no warning).
        held = SlurmAdmin().reserved_node_memory(name)
        assert held and set(held.values()) == {16000} and all(n.startswith("mn5-g") for n in held), held
        assert "warning: only" not in made.stdout
        sheet = list(csv.DictReader(io.StringIO((places["state_dir"] / name / "seats.csv").read_text())))
        assert [row["user"] for row in sheet] == seats
        assert oct((places["state_dir"] / name / "seats.csv").stat().st_mode & 0o777) == "0o600"

        # A seat signs in with its password from the sheet; its form offers the workshop first.
        seat, password = sheet[0]["user"], sheet[0]["password"]
        form = hub.login(seat, password).get(f"{hub.url}/hub/spawn", timeout=30).text
        assert f'value="workshop-{name}"' in form and "Workshop seat: 2 cores until" in form
        assert "core-hours" not in form.split("Workshop seat:", 1)[1].split("</", 1)[0]  # the form's own cost alone
        hub.start_ready(seat)  # no options: the workshop's settings
        ((job_id, job),) = queued_jobs(seat).items()
        assert job["account"] == name
        assert sh("squeue", "-h", "-j", job_id, "-o", "%v").strip() == name
        home = Path(sh("getent", "passwd", seat).split(":")[5])
        assert (home / name / "lesson.md").read_text() == "# Lesson 1\n"
        assert oct(home.stat().st_mode & 0o777) == "0o700"  # seats are strangers to each other

        # The instructor reaches the seat's server; another user does not.
        assert hub.through_proxy(seat, hub.user_token("instructor")).status_code == 200
        assert hub.through_proxy(seat, hub.user_token("bob")).status_code == 403
        page = hub.login("instructor").get(f"{hub.url}/hub/workshops", timeout=30).text
        assert f'data-seat="{seat}"' in page and "running" in page
        assert hub.login("bob").get(f"{hub.url}/hub/workshops", timeout=30).text.count("data-seat") == 0
        status = workshop_cli(hub, "status", name)
        assert status.returncode == 0 and any(
            line.split()[:2] == [seat, "running"] and job_node(job_id) in line for line in status.stdout.splitlines()
        ), status.stdout

        # The student's edit survives new materials, a second create and a second start.
        as_user(seat, "sh", "-c", f"echo 'my notes' >> {home / name / 'lesson.md'}")
        hub.stop(seat)
        (materials / "lesson2.md").write_text("# Lesson 2\n")
        again = workshop_cli(hub, "create", str(spec))
        assert again.returncode == 0, again.stderr
        assert list(csv.DictReader(io.StringIO((places["state_dir"] / name / "seats.csv").read_text()))) == sheet
        hub.start_ready(seat)
        assert (home / name / "lesson.md").read_text() == "# Lesson 1\nmy notes\n"
        assert (home / name / "lesson2.md").exists()

        # A hub restart keeps the instructors' access (the role is loaded from the registry).
        hub.kill_and_restart()
        hub.wait_ready(seat)
        assert hub.through_proxy(seat, hub.user_token("instructor")).status_code == 200
        # "Stop all" on the instructor page stops the seats' servers; bob may not press it.
        instructor = hub.login("instructor")
        bob = hub.login("bob")
        for session, expected in ((bob, 403), (instructor, 200)):
            xsrf = session.cookies.get("_xsrf", path="/hub/")
            r = session.post(f"{hub.url}/hub/workshops", data={"workshop": name, "_xsrf": xsrf}, timeout=120)
            assert r.status_code == expected
            assert (hub.server(seat) is None) == (expected == 200)
        assert queued_jobs(seat) == {}

        ended = workshop_cli(hub, "end", name)
        assert ended.returncode == 0, ended.stderr
        assert not any(subprocess.run(["id", s], capture_output=True).returncode == 0 for s in seats)
        assert not set(seats) & set(sh("squeue", "-h", "-o", "%u").split())
        assert sh("sacctmgr", "-n", "-P", "show", "assoc", f"account={name}", "format=User") == ""
        assert subprocess.run(["scontrol", "show", "reservation", name], capture_output=True).returncode != 0
        assert hub.api("GET", f"/users/{seat}").status_code == 404
        archive = INSTRUCTOR_ARCHIVES / next(p.name for p in INSTRUCTOR_ARCHIVES.glob(f"{name}-*.tar.gz"))
        with tarfile.open(archive) as tar:
            assert f"{seat}/{name}/lesson.md" in tar.getnames()
        assert workshop_cli(hub, "end", name).stdout.strip() == f"workshop {name}: nothing left to end"
    finally:
        workshop_cli(hub, "end", name)
        for path in INSTRUCTOR_ARCHIVES.glob(f"{name}-*.tar.gz"):
            path.unlink()


def test_a_wrong_workshop_file_is_named_key_by_key(ws_hub: HubProcess, tmp_path: Path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: Bad Name\ntitle: x\nend: 2020-01-01T00:00\nseats: 0\ninstructors: [nobody-here]\nseat: 3\n")
    result = workshop_cli(ws_hub, "create", str(spec))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for expected in (
        "key 'seat': unknown key (did you mean 'seats'?)",
        "key 'name': value 'Bad Name' is not accepted",
        "key 'seats': value 0 is not accepted",
    ):
        assert expected in result.stderr, result.stderr


def bare_workshop(directory: Path, name: str, seats: int = 1) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "title": "t",
                "end": "2099-01-01T12:00",
                "seats": seats,
                "instructors": ["instructor"],
                "preset": "workshop",
            }
        )
    )
    return path


def exists(*argv: str) -> bool:
    return subprocess.run(list(argv), capture_output=True).returncode == 0


@pytest.mark.parametrize("what", ["account", "reservation", "user"])
def test_a_workshop_named_like_what_exists_takes_nothing_over(ws_hub: HubProcess, places, tmp_path: Path, what: str):
    """An account (with a member), a reservation or a user NAME-02 that the workshop did not
    make: create refuses, names it, makes nothing, and changes nothing of it."""
    name = what[:3] + secrets.token_hex(3)
    mine = {
        "account": [
            ["sacctmgr", "-i", "add", "account", name, "description=theirs", f"organization={name}"],
            ["sacctmgr", "-i", "add", "user", "alice", f"account={name}"],
        ],
        "reservation": [
            [
                "scontrol",
                "create",
                "reservation",
                f"ReservationName={name}",
                "StartTime=now",
                "Duration=120",
                "Users=alice",
                "CoreCnt=1",
                "PartitionName=gpp",
            ]
        ],
        "user": [["useradd", "-m", f"{name}-02"], ["chpasswd"]],
    }[what]
    shown = {
        "account": ["sacctmgr", "-n", "-P", "show", "assoc", f"account={name}", "format=User,QOS,DefaultQOS"],
        "reservation": ["scontrol", "show", "reservation", name, "-o"],
        "user": ["getent", "shadow", f"{name}-02"],
    }[what]

    def show() -> str:
        # slurmctld adds which cores a CoreCnt reservation holds ("NodeName=… CoreIDs=…") a
        # moment after it is made: where SLURM placed it is not what a workshop could change.
        return re.sub(r"\s*NodeName=\S+ CoreIDs=\S+", "", sh(*shown))

    try:
        for argv in mine:
            made = subprocess.run(
                argv, input=f"{name}-02:theirs-{secrets.token_hex(4)}\n", text=True, capture_output=True
            )
            assert made.returncode == 0, f"{argv}: {made.stdout}{made.stderr}"
        before = show()
        made = workshop_cli(ws_hub, "create", str(bare_workshop(tmp_path, name, seats=3)))
        assert made.returncode == 1 and "Traceback" not in made.stderr, made.stdout + made.stderr
        named = {
            "account": f"SLURM account {name!r}",
            "reservation": f"reservation {name!r}",
            "user": f"user {name + '-02'!r}",
        }[what]
        assert named in made.stderr and "not made by this workshop" in made.stderr, made.stderr
        assert show() == before
        assert not exists("id", f"{name}-01") and not (places["registry"] / f"{name}.yaml").exists()
        accounts = sh("sacctmgr", "-n", "-P", "show", "account", name, "format=Account").split()
        assert accounts == ([name] if what == "account" else [])
        ended = workshop_cli(ws_hub, "end", name)
        assert ended.returncode == 0 and show() == before, ended.stderr
    finally:
        workshop_cli(ws_hub, "end", name)
        subprocess.run(["scontrol", "delete", f"ReservationName={name}"], capture_output=True)
        subprocess.run(["sacctmgr", "-i", "delete", "user", "alice", f"account={name}"], capture_output=True)
        subprocess.run(["sacctmgr", "-i", "delete", "account", name], capture_output=True)
        subprocess.run(["userdel", "-r", f"{name}-02"], capture_output=True)


def test_end_kills_what_a_seat_left_running_outside_slurm(ws_hub: HubProcess, tmp_path: Path):
    """A seat's process on the login node and on a compute node (started outside SLURM, so
    scancel does not reach it) cannot outlive the seat: it could swap folders for links while
    its home is archived."""
    name = "kill" + secrets.token_hex(3)
    seat = f"{name}-01"
    try:
        assert workshop_cli(ws_hub, "create", str(bare_workshop(tmp_path, name))).returncode == 0
        as_seat = ["setpriv", f"--reuid={seat}", f"--regid={seat}", "--init-groups"]
        left = [
            subprocess.Popen([*as_seat, "sleep", "1000"], cwd="/", start_new_session=True),
            subprocess.Popen(on_node("mn5-g01", *as_seat, "sleep", "1000"), cwd="/", start_new_session=True),
        ]
        time.sleep(1)
        assert len(sh("pgrep", "-u", seat).split()) == 2
        ended = workshop_cli(ws_hub, "end", name)
        assert ended.returncode == 0, ended.stderr
        assert all(p.wait(10) is not None for p in left) and not exists("id", seat)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", seat], capture_output=True)
        workshop_cli(ws_hub, "end", name)


def test_a_hub_down_during_end_forgets_the_seats_when_it_starts(ws_hub: HubProcess, places, tmp_path: Path):
    """The seat's hub user, its token and the workshop's group must not pass to the next
    workshop of the same name, even when the hub did not answer during end."""
    hub = ws_hub
    name = "down" + secrets.token_hex(3)
    seat = f"{name}-01"
    spec = bare_workshop(tmp_path, name)
    try:
        assert workshop_cli(hub, "create", str(spec)).returncode == 0
        password = next(csv.DictReader(io.StringIO((places["state_dir"] / name / "seats.csv").read_text())))
        hub.login(seat, password["password"])
        old_token = hub.user_token(seat)
        assert hub.get("/hub/api/user", old_token).json()["name"] == seat
        ended: list[subprocess.CompletedProcess] = []
        hub.kill_and_restart(between=lambda: ended.append(workshop_cli(hub, "end", name)))
        wait_for(lambda: hub.api("GET", f"/users/{seat}").status_code == 404, 30, f"the hub still has the seat {seat}")
        assert hub.api("GET", f"/groups/workshop-{name}").status_code == 404
        assert ended[0].returncode == 0 and "the hub forgets its seats when it starts" in ended[0].stdout, ended[0]
        # The next workshop of that name: a new seat, whom the old token does not reach.
        assert workshop_cli(hub, "create", str(spec)).returncode == 0
        hub.ensure_user(seat)
        assert hub.get("/hub/api/user", old_token).status_code == 403
    finally:
        workshop_cli(hub, "end", name)
