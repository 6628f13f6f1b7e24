"""The hub's database: SQLite in the state folder, or PostgreSQL in production.

A PostgreSQL that does not answer when the hub starts stops it with a message that says
which database and why (JupyterHub itself would print a traceback); one that goes away
while the hub runs costs no session: jobs and the proxy's routes do not depend on it, and
the connection pool checks each connection before use, so the hub carries on when it is back.

Its schema is JupyterHub's (alembic revisions). A hub does not start on a database of another
schema: an older one is upgraded by ``aifactory-site upgrade`` after a backup
(:func:`upgrade_database`), and one that a newer release wrote is refused in words, since
running older code on it could lose what that release stored.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

#: Seconds to wait for PostgreSQL when the hub starts.
CONNECT_TIMEOUT = 5


def is_postgresql(url: str) -> bool:
    return url.startswith("postgresql")


def shown_url(url: str) -> str:
    """The URL as the site file gives it, without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    password = make_url(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url


def database_problem(url: str) -> str:
    """'' when the database answers a query; otherwise why not, in one line."""
    if not is_postgresql(url):
        return ""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT})
    except ModuleNotFoundError as e:
        return f"its driver {e.name} is not installed (pip install 'psycopg[binary]')"
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as e:
        lines = str(getattr(e, "orig", None) or e).strip().splitlines()
        return lines[0] if lines else type(e).__name__
    finally:
        engine.dispose()
    return ""


def db_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options: a PostgreSQL connection is checked before each use, so a
    database that restarted is reconnected to instead of failing the next request."""
    return {"pool_pre_ping": True} if is_postgresql(url) else {}


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def _alembic_scripts() -> ScriptDirectory:
    """JupyterHub's own migrations (what ``jupyterhub upgrade-db`` runs)."""
    import jupyterhub
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(jupyterhub.__file__).parent / "alembic"))


def schema_revision(url: str) -> str | None:
    """The schema revision the database is at; None where the hub has not made one yet
    (no file, or no revision table: JupyterHub stamps or guesses those itself)."""
    if not is_postgresql(url):
        path = _sqlite_file(url)
        if path is None or not path.exists():
            return None
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            if "alembic_version" not in sqlalchemy.inspect(connection).get_table_names():
                return None
            return connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _jupyterhub_version() -> str:
    import jupyterhub

    version: str = jupyterhub.__version__
    return version


def schema(url: str) -> tuple[str | None, str, bool]:
    """The database's schema revision (None: none yet), this release's, and whether this
    release's migrations know the database's (False: a newer release wrote it)."""
    scripts = _alembic_scripts()
    found = schema_revision(url)
    known = found is None or found in {script.revision for script in scripts.walk_revisions()}
    head = scripts.get_current_head()
    if head is None:
        raise RuntimeError("JupyterHub's migrations have no head revision: its install is incomplete")
    return found, head, known


def schema_problem(url: str) -> str:
    """'' when the hub may start on this database; otherwise what is wrong and what to do."""
    found, head, known = schema(url)
    if found in (None, head):
        return ""
    release = f"this release (JupyterHub {_jupyterhub_version()}, schema {head})"
    if known:
        return (
            f"the database {shown_url(url)} is at schema {found}, older than {release}: back it up and "
            "upgrade it with `aifactory-site upgrade`, run as the hub's account"
        )
    return (
        f"the database {shown_url(url)} is at schema {found}, which {release} does not know: a newer release "
        "wrote it. Install that release again, or restore the backup that `aifactory-site upgrade` made "
        "before it"
    )


def back_up(url: str, folder: Path) -> Path:
    """A copy of the database in ``folder`` (made 0700): SQLite's online backup, or PostgreSQL's
    ``pg_dump`` in its custom format (``pg_restore`` reads it). Raises RuntimeError in words."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if is_postgresql(url):
        from sqlalchemy.engine import make_url

        parts = make_url(url)
        target = folder / f"{parts.database}-{stamp}.pgdump"
        argv = ["pg_dump", "--format=custom", f"--file={target}", f"--dbname={parts.database}"]
        host = parts.host or parts.query.get("host")
        argv += [f"--host={host}"] if host else []
        argv += [f"--port={parts.port}"] if parts.port else []
        argv += [f"--username={parts.username}"] if parts.username else []
        # The password goes in the environment: a command line is visible to every user.
        env = {**os.environ, **({"PGPASSWORD": parts.password} if parts.password else {})}
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
        except FileNotFoundError:
            raise RuntimeError("pg_dump is not installed (Debian: postgresql-client)") from None
        if done.returncode != 0:
            target.unlink(missing_ok=True)
            raise RuntimeError(f"pg_dump failed: {done.stderr.strip() or done.returncode}")
    else:
        source = _sqlite_file(url)
        if source is None:
            raise RuntimeError(f"{shown_url(url)} names no database file to back up")
        target = folder / f"{source.name}.{stamp}.backup"
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as old, sqlite3.connect(target) as copy:
            old.backup(copy)
    target.chmod(0o600)
    return target


def _run_migrations(url: str) -> None:
    """What ``jupyterhub upgrade-db`` runs, in this process: its own ``dbutil.upgrade`` starts
    ``alembic`` from PATH, which need not be the venv's."""
    import alembic.command
    import alembic.config
    from jupyterhub.dbutil import write_alembic_ini

    with tempfile.TemporaryDirectory() as folder:
        ini = os.path.join(folder, "alembic.ini")
        write_alembic_ini(ini, url)
        alembic.command.upgrade(alembic.config.Config(ini), "head")


def upgrade_database(url: str, backups: Path) -> str:
    """Back the database up, then run JupyterHub's migrations to this release's schema. Says
    what it did; raises RuntimeError, having changed nothing, for a schema it must not touch."""
    found, head, known = schema(url)
    if found is None:
        return f"{shown_url(url)}: no schema yet; the hub makes it at its first start"
    if found == head:
        return f"{shown_url(url)}: already at schema {head} (JupyterHub {_jupyterhub_version()})"
    if not known:
        raise RuntimeError(schema_problem(url))
    backup = back_up(url, backups)
    _run_migrations(url)
    now = schema_revision(url)
    if now != head:  # alembic raises on a failed step; this is the check that it reached the end
        raise RuntimeError(f"{shown_url(url)}: the upgrade ended at schema {now}, not {head}; the backup is {backup}")
    release = f"JupyterHub {_jupyterhub_version()}"
    return f"{shown_url(url)}: upgraded from schema {found} to {head} ({release}); backup: {backup}"
