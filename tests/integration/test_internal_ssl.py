"""internal_ssl: proxy, hub and the server on the compute node speak mutual TLS, and the
server's key reaches the job only inside its batch script, then a folder only its user reads."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HubProcess, launch, queued_jobs, sh


@pytest.fixture(scope="module")
def tls_hub() -> Iterator[HubProcess]:
    hub = launch(hub={"internal_ssl": True})
    yield hub
    hub.shutdown()


def speaks_plain_http(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api HTTP/1.0\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except ConnectionResetError:
        return False


@pytest.mark.slow
def next_job_ids(count: int) -> list[int]:
    known = sh("sacct", "-a", "-X", "-n", "-P", "-o", "JobID", "-S", "now-7days").split()
    last = max((int(j) for j in known if j.isdigit()), default=0)
    return list(range(last + 1, last + 1 + count))


@pytest.fixture
def planted() -> Iterator[list[Path]]:
    """bob pre-creates the folders the key used to go to (/tmp/aifw-certs-<next job ids>), each
    with a keyfile.pem he can read (issue 11, hole 2)."""
    folders = [Path(f"/tmp/aifw-certs-{job_id}") for job_id in next_job_ids(30)]
    for folder in folders:
        sh("sudo", "-u", "bob", "sh", "-c", f"mkdir -m 777 {folder} && touch {folder}/keyfile.pem && chmod 666 "
           f"{folder}/keyfile.pem")  # fmt: skip
    yield folders
    for folder in folders:
        sh("rm", "-rf", str(folder))


def test_a_server_on_a_compute_node_is_reached_over_mutual_tls_only(tls_hub: HubProcess, planted: list[Path]):
    hub = tls_hub
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    try:
        assert hub.through_proxy("alice", hub.user_token("alice")).status_code == 200
        state = hub.server("alice")["state"]
        port = state["port"]
        assert not speaks_plain_http(port), "the server answers plain HTTP"
        with pytest.raises(ssl.SSLError):  # TLS, but only with a client certificate of the hub's CA
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
                tls.sendall(b"GET /api HTTP/1.0\r\n\r\n")
                tls.recv(16)

        assert all((p / "keyfile.pem").read_text() == "" for p in planted), "a key went to bob's folder"
        (private,) = Path("/tmp").glob(f"aifw-job-{job_id}.*")
        info = private.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (int(sh("id", "-u", "alice")), 0o700)
        folder = private / "certs"
        assert sorted(os.listdir(folder)) == ["cafile.pem", "certfile.pem", "keyfile.pem"]
        assert stat.S_IMODE((folder / "keyfile.pem").stat().st_mode) == 0o600
        assert "PRIVATE KEY" not in sh("scontrol", "show", "job", job_id)  # argv, env and fields: no key
        hub_copies = Path(hub.site_file.parent / "state" / "internal-ssl")
        assert not [p for p in hub_copies.rglob("*.key") if "user-alice" in str(p)], "the hub kept the server's key"
    finally:
        hub.stop("alice")
    deadline = time.monotonic() + 30
    while private.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not private.exists(), "the job's private folder outlived it"
