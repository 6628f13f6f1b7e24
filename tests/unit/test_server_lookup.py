"""The estimate's and the queued page's endpoints act on the server named in their path, and on
no other: a token scoped to one of alice's servers (``servers!server=alice/gone``) must not reach
her default server through a name she has no server of."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tornado import web

from aifactory_workbench.spawners.estimate import ServerOptionsHandler


class Spawners(dict):
    """JupyterHub's ``user.spawners``: reading a missing name creates a spawner of that name."""

    def __missing__(self, name: str) -> SimpleNamespace:
        self[name] = SimpleNamespace(name=name)
        return self[name]


def handler_for_alice() -> tuple[SimpleNamespace, SimpleNamespace]:
    default, gpu = SimpleNamespace(name=""), SimpleNamespace(name="gpu")
    user = SimpleNamespace(
        name="alice", orm_spawners={"": object(), "gpu": object()}, spawners=Spawners({"": default, "gpu": gpu})
    )
    user.spawner = default
    return SimpleNamespace(find_user=lambda name: user if name == "alice" else None), user


def test_the_path_names_the_server_acted_on():
    handler, user = handler_for_alice()
    assert ServerOptionsHandler.server_spawner(handler, "alice", "") is user.spawner
    assert ServerOptionsHandler.server_spawner(handler, "alice", "gpu") is user.spawners["gpu"]


@pytest.mark.parametrize(("user_name", "server_name"), [("alice", "gone"), ("mallory", ""), ("mallory", "gpu")])
def test_a_server_the_user_does_not_have_is_a_404_never_their_default_server(user_name, server_name):
    handler, user = handler_for_alice()
    with pytest.raises(web.HTTPError) as missing:
        ServerOptionsHandler.server_spawner(handler, user_name, server_name)
    assert missing.value.status_code == 404
    assert set(user.spawners) == {"", "gpu"}  # no spawner was made up for the unknown name
