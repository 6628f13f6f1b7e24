"""PostgreSQL, the production database (issue #15): Debian's PostgreSQL, started by the mini
cluster, reached over its Unix socket as the hub's own role.  A database that is down when
the hub starts is named in a clear message; one that goes away while the hub runs loses no
running session.  (The restart tests run on it too: test_restart.py.)"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import PG_SOCKET_DIR, HubError, postgres_database

from .conftest import HubProcess, launch, queued_jobs, wait_for

PG_DATA = Path("/var/lib/aifactory-cluster/postgres")


def pg_ctl(*args: str) -> None:
    pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
    options = f"-c listen_addresses='' -c unix_socket_directories={PG_SOCKET_DIR}"
    command = ["runuser", "-u", "postgres", "--", str(pg_bin / "pg_ctl"), "-D", str(PG_DATA), "-w", "-s", *args]
    if args[0] == "start":
        command += ["-l", "/var/lib/aifactory-cluster/log/postgres.log", "-o", options]
    subprocess.run(command, check=True)


@pytest.fixture
def pg_hub() -> Iterator[tuple[HubProcess, str]]:
    with postgres_database() as url:
        hub = launch(hub={"db_url": url})
        yield hub, url
        hub.shutdown()


def test_a_database_that_is_not_there_stops_the_hub_with_its_name_and_why():
    url = f"postgresql://aifactory-hub@/no_such_db?host={PG_SOCKET_DIR}"
    with pytest.raises(HubError) as refused:
        launch(hub={"db_url": url})
    text = str(refused.value)
    assert "AI Factory Workbench will not start" in text and "Traceback" not in text
    assert f"key 'hub.db_url': the database {url} does not answer" in text
    assert 'database "no_such_db" does not exist' in text


def test_a_database_that_is_down_at_start_is_named_and_one_that_goes_away_loses_no_session(pg_hub):
    hub, url = pg_hub
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    token = hub.user_token("alice")
    assert hub.through_proxy("alice", token).status_code == 200
    pg_ctl("stop", "-m", "fast")
    try:
        # The database is gone: the job runs on and the hub process stays up.
        time.sleep(8)
        assert queued_jobs("alice")[job_id]["state"] == "RUNNING"
        assert hub.process.poll() is None
        # A second hub on the same (down) database refuses to start, saying why.
        with pytest.raises(HubError) as refused:
            launch(hub={"db_url": url})
        assert "does not answer" in str(refused.value) and "Traceback" not in str(refused.value)
    finally:
        pg_ctl("start")
    # Back: the same server, the same job, reached through the proxy again.

    def back() -> bool:
        try:
            return hub.api("GET", "/users/alice").status_code == 200 and hub.through_proxy("alice", token).ok
        except OSError:
            return False

    wait_for(back, 60, "the hub and alice's server answer again", every=1, fail=False)
    assert hub.through_proxy("alice", token).status_code == 200
    assert hub.server("alice")["ready"] and queued_jobs("alice")[job_id]["state"] == "RUNNING"
    hub.stop("alice")
    assert queued_jobs("alice") == {}
