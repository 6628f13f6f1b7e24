"""internal_ssl: proxy, hub and the server on the compute node speak mutual TLS, and the
server's key reaches the job only inside its batch script, then a folder only its user reads."""

from __future__ import annotations

import os
import socket
import ssl
import stat
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
def test_a_server_on_a_compute_node_is_reached_over_mutual_tls_only(tls_hub: HubProcess):
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

        folder = Path(f"/tmp/aifw-certs-{job_id}")
        info = folder.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (int(sh("id", "-u", "alice")), 0o700)
        assert sorted(os.listdir(folder)) == ["cafile.pem", "certfile.pem", "keyfile.pem"]
        assert stat.S_IMODE((folder / "keyfile.pem").stat().st_mode) == 0o600
        assert "PRIVATE KEY" not in sh("scontrol", "show", "job", job_id)  # argv, env and fields: no key
        hub_copies = Path(hub.site_file.parent / "state" / "internal-ssl")
        assert not [p for p in hub_copies.rglob("*.key") if "user-alice" in str(p)], "the hub kept the server's key"
    finally:
        hub.stop("alice")
