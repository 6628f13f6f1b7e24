"""The hub's database settings and schema (hub/database.py)."""

import shutil
import sqlite3
from pathlib import Path

import pytest

from aifactory_workbench.hub.database import (
    database_problem,
    db_kwargs,
    schema,
    schema_problem,
    shown_url,
    upgrade_database,
)

#: A hub database that JupyterHub 5 made (tests/data/predecessor_db/make.py), at its schema.
PREDECESSOR_DB = Path(__file__).parents[1] / "data" / "predecessor_db" / "jupyterhub.sqlite"
PREDECESSOR = "4621fec11365"


def test_sqlite_needs_no_check_and_postgresql_connections_are_checked_before_use():
    assert database_problem("") == "" and database_problem("sqlite:////tmp/x.sqlite") == ""
    assert db_kwargs("") == {} and db_kwargs("postgresql://hub@/jupyterhub") == {"pool_pre_ping": True}


def test_a_postgresql_that_does_not_answer_is_said_in_one_line_without_its_password(tmp_path):
    url = f"postgresql://hub:s3cret@/jupyterhub?host={tmp_path}"
    problem = database_problem(url)
    assert problem and "\n" not in problem and "s3cret" not in problem
    assert "s3cret" not in shown_url(url) and "***" in shown_url(url)


def revision(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_a_database_not_made_yet_is_no_problem_and_needs_no_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    assert schema_problem(url) == "" and "no schema yet" in upgrade_database(url, tmp_path / "backups")
    assert not (tmp_path / "jupyterhub.sqlite").exists() and not (tmp_path / "backups").exists()


def test_an_older_schema_is_named_then_upgraded_after_a_backup(tmp_path):
    db = tmp_path / "jupyterhub.sqlite"
    shutil.copy(PREDECESSOR_DB, db)
    url = f"sqlite:///{db}"
    found, head, known = schema(url)
    assert (found, known) == (PREDECESSOR, True) and head != PREDECESSOR
    assert f"at schema {PREDECESSOR}, older than this release" in schema_problem(url)
    said = upgrade_database(url, tmp_path / "backups")
    (backup,) = (tmp_path / "backups").iterdir()
    assert str(backup) in said and revision(backup) == PREDECESSOR and revision(db) == head
    assert schema_problem(url) == "" and "already at schema" in upgrade_database(url, tmp_path / "backups")
    assert len(list((tmp_path / "backups").iterdir())) == 1


def test_a_schema_this_release_does_not_know_is_refused_and_left_alone(tmp_path):
    db = tmp_path / "jupyterhub.sqlite"
    shutil.copy(PREDECESSOR_DB, db)
    with sqlite3.connect(db) as newer:
        newer.execute("UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6'")
    url = f"sqlite:///{db}"
    assert "a newer release wrote it" in schema_problem(url)
    with pytest.raises(RuntimeError, match="a newer release wrote it"):
        upgrade_database(url, tmp_path / "backups")
    assert revision(db) == "a1b2c3d4e5f6" and not (tmp_path / "backups").exists()
