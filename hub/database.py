"""The hub's database: SQLite in the state folder, or PostgreSQL in production.

A PostgreSQL that does not answer when the hub starts stops it with a message that says
which database and why (JupyterHub itself would print a traceback); one that goes away
while the hub runs costs no session: jobs and the proxy's routes do not depend on it, and
the connection pool checks each connection before use, so the hub carries on when it is back.
"""

from __future__ import annotations

from typing import Any

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
