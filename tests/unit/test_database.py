"""The hub's database settings (hub/database.py)."""

from aifactory_workbench.hub.database import database_problem, db_kwargs, shown_url


def test_sqlite_needs_no_check_and_postgresql_connections_are_checked_before_use():
    assert database_problem("") == "" and database_problem("sqlite:////tmp/x.sqlite") == ""
    assert db_kwargs("") == {} and db_kwargs("postgresql://hub@/jupyterhub") == {"pool_pre_ping": True}


def test_a_postgresql_that_does_not_answer_is_said_in_one_line_without_its_password(tmp_path):
    url = f"postgresql://hub:s3cret@/jupyterhub?host={tmp_path}"
    problem = database_problem(url)
    assert problem and "\n" not in problem and "s3cret" not in problem
    assert "s3cret" not in shown_url(url) and "***" in shown_url(url)
