"""Issue 23, item 6: a site upgrading from this release's predecessor (JupyterHub 5, whose hub
databases tests/data/predecessor_db/make.py made). The hub refuses to start on the old schema
and names what to run; `aifactory-site upgrade` backs the database up and upgrades it, keeping
users, a server's state and tokens; a database that a newer release wrote is refused by the hub
and by the upgrade, and left as it was."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jupyterhub
import pytest
from alembic.script import ScriptDirectory

from tests.harness import HUB_USER, HUB_VENV, PG_SOCKET_DIR, HubError, launch, postgres_database, wait_for, write_site

pytestmark = pytest.mark.integration

DATA = Path(__file__).parents[1] / "data" / "predecessor_db"
#: JupyterHub 5.5's schema, which the predecessor's databases are at.
PREDECESSOR = "4621fec11365"
HEAD = ScriptDirectory(str(Path(jupyterhub.__file__).parent / "alembic")).get_current_head()
PSQL = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1] / "psql"


def as_hub(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", HUB_USER, "--", *argv], capture_output=True, text=True, cwd="/tmp")


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder of the hub account's, as its state folder is."""
    path = Path(tempfile.mkdtemp(prefix="aifw-upgrade-", dir="/var/tmp"))
    shutil.chown(path, HUB_USER, HUB_USER)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def site_file(folder: Path, db_url: str) -> Path:
    token = folder / "admin.token"
    token.write_text("x" * 64)
    path = write_site(folder, token, hub={"db_url": db_url})
    subprocess.run(["chown", "-R", f"{HUB_USER}:{HUB_USER}", str(folder)], check=True)
    return path


def upgrade(site: Path) -> subprocess.CompletedProcess:
    return as_hub(str(HUB_VENV / "bin" / "aifactory-site"), "upgrade", str(site))


def sqlite_rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def refused_start(db_url: str) -> str:
    with pytest.raises(HubError) as refused:
        launch(hub={"db_url": db_url}).shutdown()
    return str(refused.value)


def test_a_predecessors_database_is_refused_then_upgraded_after_a_backup_keeping_what_it_held(folder: Path):
    db = folder / "jupyterhub.sqlite"
    shutil.copy(DATA / "jupyterhub.sqlite", db)
    shutil.chown(db, HUB_USER, HUB_USER)
    url = f"sqlite:///{db}"

    said = refused_start(url)
    assert f"is at schema {PREDECESSOR}, older than this release" in said and "aifactory-site upgrade" in said, said
    assert sqlite_rows(db, "SELECT version_num FROM alembic_version") == [(PREDECESSOR,)]

    site = site_file(folder, url)
    done = upgrade(site)
    assert done.returncode == 0 and f"upgraded from schema {PREDECESSOR} to {HEAD}" in done.stdout, done.stderr
    backup = Path(done.stdout.split("backup: ")[1].strip())
    assert backup.parent == folder / "state" / "backups" and backup.stat().st_mode & 0o777 == 0o600
    assert sqlite_rows(backup, "SELECT version_num FROM alembic_version") == [(PREDECESSOR,)]
    assert sqlite_rows(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert sqlite_rows(db, "SELECT name FROM users ORDER BY name") == [("alice",), ("bob",)]
    assert sqlite_rows(db, "SELECT note FROM api_tokens") == [("made by JupyterHub 5",)]
    assert "9999999" in sqlite_rows(db, "SELECT state FROM spawners")[0][0]

    again = upgrade(site)
    assert again.returncode == 0 and f"already at schema {HEAD}" in again.stdout, again.stderr
    hub = launch(hub={"db_url": url})
    try:
        assert {"alice", "bob"} <= {u["name"] for u in hub.api("GET", "/users").json()}
        # Alice's server was a job that has ended: the hub finds so and forgets it.
        wait_for(lambda: hub.server("alice") is None, 60, "the hub still lists alice's ended server", every=1)
    finally:
        hub.shutdown()


def test_a_database_a_newer_release_wrote_is_refused_and_left_alone(folder: Path):
    db = folder / "jupyterhub.sqlite"
    shutil.copy(DATA / "jupyterhub.sqlite", db)
    with sqlite3.connect(db) as newer:
        newer.execute("UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6'")
    shutil.chown(db, HUB_USER, HUB_USER)
    before = db.read_bytes()
    url = f"sqlite:///{db}"

    said = refused_start(url)
    assert "a1b2c3d4e5f6, which this release" in said and "a newer release wrote it" in said, said
    done = upgrade(site_file(folder, url))
    assert done.returncode == 1 and "a newer release wrote it" in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert db.read_bytes() == before and not (folder / "state" / "backups").exists()


def test_root_is_refused_the_upgrade(folder: Path):
    """Root would write the backup into the hub account's folder, where it may have planted a link."""
    done = subprocess.run(
        [str(HUB_VENV / "bin" / "aifactory-site"), "upgrade", str(site_file(folder, ""))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "not as root" in done.stderr


def psql(db: str, *argv: str) -> str:
    command = [
        "runuser",
        "-u",
        HUB_USER,
        "--",
        str(PSQL),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        PG_SOCKET_DIR,
        "-d",
        db,
        "-tA",
        *argv,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd="/tmp").stdout


def test_a_predecessors_postgresql_database_is_dumped_then_upgraded(folder: Path):
    with postgres_database() as url:
        db = url.split("@/", 1)[1].split("?")[0]
        shutil.copy(DATA / "jupyterhub.sql", folder / "old.sql")
        shutil.chown(folder / "old.sql", HUB_USER, HUB_USER)
        psql(db, "-f", str(folder / "old.sql"))
        assert psql(db, "-c", "SELECT version_num FROM alembic_version").split() == [PREDECESSOR]

        done = upgrade(site_file(folder, url))
        assert done.returncode == 0 and f"upgraded from schema {PREDECESSOR} to {HEAD}" in done.stdout, done.stderr
        dump = Path(done.stdout.split("backup: ")[1].strip())
        assert dump.suffix == ".pgdump" and dump.stat().st_mode & 0o777 == 0o600
        listed = as_hub(str(PSQL.with_name("pg_restore")), "--list", str(dump))
        assert listed.returncode == 0 and "TABLE DATA public users" in listed.stdout, listed.stderr
        assert psql(db, "-c", "SELECT version_num FROM alembic_version").split() == [HEAD]
        assert psql(db, "-c", "SELECT name FROM users ORDER BY name").split() == ["alice", "bob"]
