"""The launcher inside the job: the port it reports is already its own, and JupyterLab serves
on that socket (issue 11, hole 3; tests/integration/test_spawn.py plays the race as bob)."""

import errno
import socket

import pytest
from jupyter_server.serverapp import ServerApp

from aifactory_workbench.job.launcher import NoFreePort, listening_socket, main, port_range, with_port
from aifactory_workbench.job.server_compat import serve_on_socket


def test_the_reported_port_cannot_be_bound_by_anyone_else():
    sock = listening_socket()
    port = sock.getsockname()[1]
    with socket.socket() as other, pytest.raises(OSError) as taken:
        other.bind(("", port))
    assert taken.value.errno == errno.EADDRINUSE
    sock.close()


def test_jupyter_server_is_made_to_serve_on_that_socket(monkeypatch):
    # The two jupyter_server 2.x methods job/server_compat.py replaces (tests/unit/test_compat.py checks them).
    monkeypatch.setattr(ServerApp, "_find_http_port", ServerApp._find_http_port)
    monkeypatch.setattr(ServerApp, "_bind_http_server_tcp", ServerApp._bind_http_server_tcp)
    sock = listening_socket()
    serve_on_socket(sock)
    added = []
    app = type("App", (), {"http_server": type("H", (), {"add_sockets": lambda self, s: added.extend(s)})()})()
    ServerApp._find_http_port(app)
    assert app.port == sock.getsockname()[1]
    assert ServerApp._bind_http_server_tcp(app) is True and added == [sock]
    sock.close()


def test_the_launcher_runs_only_jupyterhub_singleuser():
    assert main(["/bin/sh", "-c", "id"]) == 2


def test_launcher_moves_the_service_url_to_the_chosen_port():
    assert with_port("http://0.0.0.0:0/user/alice/", 45161) == "http://0.0.0.0:45161/user/alice/"


def free_range(size: int) -> range:
    """``size`` consecutive ports none of which is in use here now."""
    for low in range(41000, 60000, 97):
        ports = range(low, low + size)
        try:
            socks = [listening_socket(range(p, p + 1)) for p in ports]
        except OSError:
            continue
        for s in socks:
            s.close()
        return ports
    raise AssertionError("no free range of ports here")


def test_with_a_site_range_the_port_is_one_of_it():
    ports = free_range(5)
    socks = [listening_socket(ports) for _ in ports]
    assert sorted(s.getsockname()[1] for s in socks) == list(ports)  # each a different one, all within
    for s in socks:
        s.close()


def test_a_range_with_every_port_taken_fails_naming_it_and_the_site_key(monkeypatch, capsys):
    ports = free_range(2)
    taken = [listening_socket(ports) for _ in ports]
    with pytest.raises(NoFreePort) as refused:
        listening_socket(ports)
    assert f"no free port in {ports[0]}-{ports[-1]}" in str(refused.value)
    # The launcher says so in the job's log and ends before it reports anything to the hub.
    monkeypatch.setenv("AIFACTORY_PORT_RANGE", f"{ports[0]}-{ports[-1]}")
    monkeypatch.delenv("AIFACTORY_DASK_TLS", raising=False)
    assert main(["/venv/bin/jupyterhub-singleuser"]) == 5
    said = capsys.readouterr().err
    assert "singleuser.port_range" in said and f"all {len(ports)} are in use" in said, said
    for s in taken:
        s.close()


@pytest.mark.parametrize("text", ["8000", "9000-8000", "a-b", "0-10", "1-70000"])
def test_a_range_the_job_script_cannot_have_written_is_refused(text):
    with pytest.raises(ValueError):
        port_range(text)
    assert port_range("") is None and port_range("50000-50002") == range(50000, 50003)
