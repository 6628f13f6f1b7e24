"""Issue 24 item 4: JupyterHub's, batchspawner's and jupyter_server's internals are used in two
modules only (spawners/jupyterhub_compat.py for the hub, job/server_compat.py for the job), and
each thing they rely on is checked here in the installed versions: an upgrade that changes one
fails with the module to fix."""

import ast
import asyncio
import inspect
import re
import socket
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest

from aifactory_workbench.job import server_compat
from aifactory_workbench.spawners import jupyterhub_compat

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("hub", "spawners", "lab", "job", "slurm")
COMPAT_FILES = {
    ROOT / "spawners" / "jupyterhub_compat.py": jupyterhub_compat,
    ROOT / "job" / "server_compat.py": server_compat,
}
HUB_FIX = "fix spawners/jupyterhub_compat.py (and the versions in its docstring) for the installed JupyterHub"
JOB_FIX = "fix job/server_compat.py (and the versions in its docstring) for the installed jupyter_server"
#: underscore names that are a documented API (namedtuple's, urlparse's results are namedtuples)
DOCUMENTED_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make"}


def source(function) -> str:
    return inspect.getsource(function)


# -- the versions ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("module", "package"),
    [(jupyterhub_compat, "jupyterhub"), (jupyterhub_compat, "batchspawner"), (server_compat, "jupyter_server")],
)
def test_the_checked_versions_are_the_installed_ones(module, package):
    """A new minor (or major) release may change any private name: check the module's list again,
    then write the new version into its CHECKED_VERSIONS and docstring."""
    checked, installed = module.CHECKED_VERSIONS[package], version(package)
    assert checked in (module.__doc__ or ""), f"{module.__name__}'s docstring does not name {package} {checked}"
    assert checked.split(".")[:2] == installed.split(".")[:2], (
        f"{package} {installed} is installed, {module.__name__} was checked against {checked}: "
        f"check each private name it lists, then update it"
    )


def test_each_private_name_is_listed_in_its_modules_docstring():
    for module in COMPAT_FILES.values():
        for name in module.PRIVATE_NAMES:
            assert name in module.__doc__, f"{module.__name__} uses {name} without saying why in its docstring"


# -- JupyterHub (spawners/jupyterhub_compat.py) -----------------------------------------------
def test_the_request_user_is_set_by_get_current_user():
    from jupyterhub.handlers import BaseHandler

    handler = object.__new__(BaseHandler)  # no request: only what get_current_user does
    assert jupyterhub_compat.authenticated_user(handler) is None, HUB_FIX
    with pytest.raises(RuntimeError):  # why the public current_user does not do for every request
        handler.current_user  # noqa: B018
    service = object()  # not a User: no refresh_auth
    handler.get_current_user_token = lambda: None
    handler.get_current_user_cookie = lambda: service
    assert asyncio.run(handler.get_current_user()) is service
    assert jupyterhub_compat.authenticated_user(handler) is service, HUB_FIX
    assert "self._jupyterhub_user = user" in source(BaseHandler.get_current_user), HUB_FIX


def test_the_start_check_is_marked_on_each_spawner():
    from jupyterhub.app import JupyterHub
    from jupyterhub.spawner import Spawner
    from jupyterhub.user import User

    assert Spawner._check_pending is False, HUB_FIX
    assert "spawner._check_pending = True" in source(JupyterHub.init_spawners), HUB_FIX
    assert "spawner._check_pending = False" in source(JupyterHub.init_spawners), HUB_FIX
    assert "spawner._check_pending = False" in source(User.stop), HUB_FIX
    spawner = Spawner()
    assert jupyterhub_compat.check_pending(spawner) is False
    spawner._check_pending = True
    assert jupyterhub_compat.check_pending(spawner) is True and spawner.pending == "check", HUB_FIX


def test_the_running_hub_is_the_jupyterhub_singleton_with_a_proxy():
    from jupyterhub.app import JupyterHub
    from jupyterhub.proxy import Proxy
    from traitlets.config import SingletonConfigurable

    assert issubclass(JupyterHub, SingletonConfigurable), HUB_FIX
    assert "self.proxy = self.proxy_class(" in source(JupyterHub.init_proxy), HUB_FIX
    assert list(inspect.signature(Proxy.add_user).parameters) == ["self", "user", "server_name"], HUB_FIX
    assert list(inspect.signature(Proxy.delete_user).parameters) == ["self", "user", "server_name"], HUB_FIX
    made_here = not JupyterHub.initialized()
    try:
        hub = jupyterhub_compat.running_hub()
        assert isinstance(hub, JupyterHub) and hub is JupyterHub.instance(), HUB_FIX
    finally:
        if made_here:
            JupyterHub.clear_instance()


def test_the_hub_marks_its_start():
    from jupyterhub.app import JupyterHub

    assert "self._start_future = asyncio.Future()" in source(JupyterHub.initialize), HUB_FIX
    assert "self._start_future.set_result(None)" in source(JupyterHub.start), HUB_FIX
    hub = type("Hub", (), {})()

    async def start_later():
        waiting = asyncio.ensure_future(jupyterhub_compat.hub_started(hub, pause=0.01))
        await asyncio.sleep(0.05)
        hub._start_future = asyncio.get_running_loop().create_future()
        await asyncio.sleep(0.05)
        assert not waiting.done()
        hub._start_future.set_result(None)
        await asyncio.wait_for(waiting, 1)

    asyncio.run(start_later())


def test_the_route_tables_are_read_when_the_hub_starts_after_its_configuration():
    import batchspawner.api
    from jupyterhub import apihandlers, handlers
    from jupyterhub.app import JupyterHub

    init = source(JupyterHub.init_handlers)
    assert "h.extend(handlers.default_handlers)" in init and "h.extend(apihandlers.default_handlers)" in init, HUB_FIX
    # extra_handlers come after the default ones, so they cannot replace one (tornado takes the first match)
    assert init.index("apihandlers.default_handlers") < init.index("self.extra_handlers"), HUB_FIX
    initialize = source(JupyterHub.initialize)
    assert initialize.index("self.load_config_file(") < initialize.index("self.init_handlers()"), HUB_FIX
    assert any(h[0] == r"/accept-share" for h in handlers.default_handlers), HUB_FIX  # the page we replace
    # batchspawner appends its route to the API table when imported (another test may have taken it out since)
    appended = f'default_handlers.append((r"{jupyterhub_compat.BATCHSPAWNER_ROUTE}", BatchSpawnerAPIHandler))'
    assert appended in inspect.getsource(batchspawner.api), HUB_FIX
    assert batchspawner.api.default_handlers is apihandlers.default_handlers, HUB_FIX


def test_install_handlers_adds_replaces_and_drops(monkeypatch):
    from jupyterhub import apihandlers, handlers

    monkeypatch.setattr(apihandlers, "default_handlers", [("/api/a", 1), ("/api/gone", 2)])
    monkeypatch.setattr(handlers, "default_handlers", [("/page", 3), ("/mine", 4)])
    for _ in range(2):  # idempotent
        jupyterhub_compat.install_handlers([("/api/b", 5)], [("/mine", 6, {"k": 1})], drop_api={"/api/gone"})
    assert apihandlers.default_handlers == [("/api/a", 1), ("/api/b", 5)]
    assert handlers.default_handlers == [("/page", 3), ("/mine", 6, {"k": 1})]


# -- jupyter_server (job/server_compat.py) ----------------------------------------------------
def test_jupyter_server_finds_and_binds_its_port_through_the_two_methods():
    from jupyter_server.serverapp import ServerApp

    for name, returns in (("_find_http_port", None), ("_bind_http_server_tcp", bool)):
        method = getattr(ServerApp, name, None)
        assert callable(method), f"ServerApp.{name} is gone: {JOB_FIX}"
        signature = inspect.signature(method)
        assert list(signature.parameters) == ["self"], f"ServerApp.{name}{signature}: {JOB_FIX}"
        assert signature.return_annotation in (returns, getattr(returns, "__name__", "None")), JOB_FIX
    assert "self._find_http_port()" in source(ServerApp.init_httpserver), JOB_FIX
    assert "self._bind_http_server_tcp()" in source(ServerApp._bind_http_server), JOB_FIX
    assert isinstance(inspect.getattr_static(ServerApp, "http_server"), property), JOB_FIX


def test_a_server_app_serves_on_the_held_socket(monkeypatch):
    """jupyter_server's own init_httpserver, with serve_on_socket: it answers on the reported port."""
    import tornado.web
    from jupyter_server.serverapp import ServerApp

    monkeypatch.setattr(ServerApp, "_find_http_port", ServerApp._find_http_port)
    monkeypatch.setattr(ServerApp, "_bind_http_server_tcp", ServerApp._bind_http_server_tcp)

    class Hello(tornado.web.RequestHandler):
        def get(self):
            self.write("held")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server_compat.serve_on_socket(sock)

    async def serve() -> str:
        from tornado.ioloop import IOLoop

        app = ServerApp(port=1, port_retries=0)  # port 1 cannot be bound: only the socket serves
        app.web_app = tornado.web.Application([(r"/", Hello)])
        app.ssl_options = None  # what init_webapp sets without a certificate
        app.io_loop = IOLoop.current()
        app.init_httpserver()
        await asyncio.sleep(0.1)  # the bind is a callback on the loop
        assert app.port == port, JOB_FIX
        url = f"http://127.0.0.1:{port}/"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        app.http_server.stop()
        return body

    try:
        assert asyncio.run(serve()) == "held", JOB_FIX
    finally:
        sock.close()
        ServerApp.clear_instance()


# -- nowhere else -------------------------------------------------------------------------------
def python_files():
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "node_modules" not in path.parts:
                yield path


def test_the_private_names_appear_only_in_the_compat_modules():
    names = [name for module in COMPAT_FILES.values() for name in module.PRIVATE_NAMES]
    pattern = re.compile("|".join(re.escape(name) for name in names))
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in python_files()
        if path not in COMPAT_FILES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "use spawners/jupyterhub_compat.py or job/server_compat.py instead:\n" + "\n".join(found)


def test_no_other_underscore_name_of_another_package_is_used():
    """Any ``x._name`` (or getattr(x, "_name")) whose name our own code does not define is someone
    else's private name: it belongs in a compat module (with a check above)."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in python_files()}
    ours: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                ours.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                ours.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                ours.add(node.attr)
    found = []
    for path, tree in trees.items():
        if path in COMPAT_FILES:
            continue
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"getattr", "hasattr", "setattr"}
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                name = node.args[1].value
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = [*node.module.split("."), *(alias.name for alias in node.names)]
                name = next((p for p in parts if p.startswith("_") and not p.startswith("__")), None)
                if name is not None and node.module.split(".")[0] != "aifactory_workbench":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {name}")
                continue
            private = name and name.startswith("_") and not name.startswith("__")
            if private and name not in ours and name not in DOCUMENTED_UNDERSCORE:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not found, "another package's private name outside the compat modules:\n" + "\n".join(found)
