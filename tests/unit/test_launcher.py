"""The launcher inside the job: the port it reports is already its own, and JupyterLab serves
on that socket (issue 11, hole 3; tests/integration/test_spawn.py plays the race as bob)."""

import errno
import socket

import pytest
from jupyter_server.serverapp import ServerApp

from aifactory_workbench.job.launcher import listening_socket, main, with_port
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
