"""What the audit log counts as someone's action on others, and whose address it records."""

from types import SimpleNamespace

import pytest

from aifactory_workbench.hub.audit import AuditLog, acts_on_others, client_address


@pytest.mark.parametrize(
    ("path", "actor", "recorded"),
    [
        ("/hub/api/users/bob/server", "instructor", True),  # an admin starts or stops bob's server
        ("/hub/spawn/bob", "instructor", True),  # the same from the page
        ("/hub/spawn-pending/bob", "instructor", True),
        ("/hub/api/users", "instructor", True),  # creates users
        ("/hub/api/groups/ws1/users", "instructor", True),
        ("/hub/api/users/alice/server", "alice", False),  # her own: the spawn and stop events say it
        ("/hub/spawn", "alice", False),
        ("/hub/api/users/alice/tokens", "alice", False),
        ("/hub/api/aifactory/job-port", "alice", False),  # a server's own report
        ("/hub/api/users/alice/activity", "alice", False),
        ("/hub/login", None, False),
    ],
)
def test_changes_to_others_or_to_the_hub_are_admin_actions(path, actor, recorded):
    assert acts_on_others(path, actor or "") is recorded


def request(headers, peer=("127.0.0.1", 40000), local=("127.0.0.1", 8081)):
    """A plain-HTTP request as tornado hands it over: headers, and the connection's two ends."""
    sock = SimpleNamespace(getpeername=lambda: peer, getsockname=lambda: local)
    connection = SimpleNamespace(context=SimpleNamespace(address=peer), stream=SimpleNamespace(socket=sock))
    return SimpleNamespace(headers=headers, connection=connection)


def test_the_recorded_address_is_the_one_the_proxy_appended_never_x_real_ip():
    assert client_address(request({"X-Real-Ip": "203.0.113.9"})) == "127.0.0.1"
    assert client_address(request({"X-Forwarded-For": "203.0.113.10, 192.0.2.7"})) == "192.0.2.7"
    # The proxy beside the hub on the login node, connecting to the hub's address there.
    beside = request({"X-Forwarded-For": "192.0.2.7"}, peer=("10.77.0.1", 40000), local=("10.77.0.1", 8081))
    assert client_address(beside) == "192.0.2.7"


def test_a_forwarded_address_from_anywhere_but_the_proxy_is_not_believed():
    """Issue 21, hole 16: code on a compute node that reaches the hub past the proxy."""
    node = request({"X-Forwarded-For": "192.0.2.7"}, peer=("10.77.0.11", 40000), local=("10.77.0.1", 8081))
    assert client_address(node) == "10.77.0.11"
    assert client_address(request({}, peer=("::ffff:10.77.0.11", 40000))) == "10.77.0.11"


def test_tail_gives_the_last_entries(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    for i in range(5):
        log.record("login", user=f"u{i}")
    assert [e["user"] for e in log.tail(2)] == ["u3", "u4"]
