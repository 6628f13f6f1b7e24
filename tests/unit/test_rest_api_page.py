"""Issue 37, item 3: the routes the code registers and the routes the reference page lists
(docs/reference/rest-api.md) are the same, and so is the table in hub/routes.py's docstring: a
route added, moved or dropped in the code fails here until the page says so.

The code's routes: the hub's endpoints and pages (hub/routes.py, under /hub: JupyterHub mounts its
API and page tables there) and what the JupyterLab server extensions that the site's Jupyter
config switches on add to a user's server (under /user/NAME/). A route's shape is what is
compared: each group of a pattern and each word in capitals on the page (USER, SERVER, ...) is
one path segment, ``[/...]`` an optional part."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest

from aifactory_workbench.hub import routes as hub_routes
from tests.unit.defaults import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "docs" / "reference" / "rest-api.md"
SERVER_EXTENSIONS = ROOT / "config" / "jupyter" / "jupyter_server_config.d" / "aifactory_workbench.json"
#: The page's sections that list the workbench's own routes; its other tables (JupyterHub's own
#: endpoints that the pages use) are not the code's to register.
OUR_SECTIONS = ("Endpoints", "Pages", "On a user's server")
#: Where a user's server lives (the server extensions' base_url, as JupyterHub gives it).
SERVER_BASE = "/user/NAME/"


def expand(shape: str) -> set[str]:
    """Every path an optional part ``[...]`` (nested or not) allows."""
    start = shape.find("[")
    if start < 0:
        return {shape}
    depth = 0
    for end in range(start, len(shape)):
        depth += {"[": 1, "]": -1}.get(shape[end], 0)
        if depth == 0:
            break
    head, inner, tail = shape[:start], shape[start + 1 : end], shape[end + 1 :]
    return {head + middle + rest for middle in ("", *expand(inner)) for rest in expand(tail)}


def page_shape(path: str) -> set[str]:
    """A path as the page writes it (``/hub/api/aifactory/usage/USER?days=N``): its shapes."""
    path = path.split("?")[0].rstrip("/") or "/"
    path = re.sub(r"/[A-Z][A-Z_]*(?=[/\[\]]|$)", "/{}", path)
    return {p.rstrip("/") or "/" for p in expand(path)}


def code_shape(pattern: str) -> set[str]:
    """A route's pattern (tornado's regular expression): its shapes."""
    shape = re.sub(r"/\?\((?:[^()]|\([^()]*\))*\)", "[/{}]", pattern)  # /?([^/]*): an optional segment
    shape = shape.replace("(/.*|)", "[/{}]")  # anything below, or nothing
    shape = re.sub(r"\((?:[^()]|\([^()]*\))*\)", "{}", shape)  # any other group: one segment
    shape = re.sub(r"/[A-Z][A-Z_]*(?=/|$)", "/{}", shape.rstrip("$").rstrip("?"))
    return {p.rstrip("/") or "/" for p in expand(shape)}


def hub_routes_of_the_code() -> list[str]:
    """The hub's endpoints and pages, as install_routes puts them into JupyterHub's tables."""
    site = SimpleNamespace(singleuser=DEFAULTS.singleuser, gallery=DEFAULTS.gallery)
    api = hub_routes.routes(None, None, None, site)  # type: ignore[arg-type]
    pages = hub_routes.page_routes(None, None, None, "aifw-jupyterlab", "/venv")  # type: ignore[arg-type]
    return ["/hub" + route[0] for route in [*api, *pages]]


class _WebApp:
    def __init__(self) -> None:
        self.settings: dict[str, Any] = {"base_url": SERVER_BASE, "jinja2_env": jinja2.Environment()}
        self.patterns: list[str] = []

    def add_handlers(self, host: str, handlers: list[tuple[Any, ...]]) -> None:
        self.patterns += [handler[0] for handler in handlers]


def server_routes_of_the_code(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each server extension the site switches on adds to a user's server (loaded with a
    stand-in server: no signal handler, no periodic check is left behind)."""
    monkeypatch.delenv("JUPYTERHUB_ACTIVITY_INTERVAL", raising=False)
    monkeypatch.setattr("signal.signal", lambda *_: None)
    monkeypatch.setattr("aifactory_workbench.lab.private_kernels.private_folder", lambda: "/nonexistent")
    switched_on = json.loads(SERVER_EXTENSIONS.read_text())["ServerApp"]["jpserver_extensions"]
    web_app = _WebApp()
    server = SimpleNamespace(
        web_app=web_app,
        log=SimpleNamespace(info=lambda *_: None),
        identity_provider=SimpleNamespace(),
        kernel_manager=SimpleNamespace(kernel_manager_factory=None, connection_dir=""),
    )
    for module, on in switched_on.items():
        if on:
            importlib.import_module(module)._load_jupyter_server_extension(server)
    return web_app.patterns


def page_routes(text: str, sections: tuple[str, ...]) -> list[str]:
    """The paths in the first column of the tables under these ``##`` sections."""
    found, section = [], ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif section in sections and line.startswith("| ") and not line.startswith(("| ---", "|---")):
            first = line.split("|")[1]
            found += [path for span in re.findall(r"`([^`]*)`", first) for path in span.split() if path.startswith("/")]
    return found


def compare(code: list[str], listed: list[str], where: str) -> None:
    code_shapes = {shape: pattern for pattern in code for shape in code_shape(pattern)}
    listed_shapes = {shape: path for path in listed for shape in page_shape(path)}
    missing = sorted({code_shapes[s] for s in code_shapes.keys() - listed_shapes.keys()})
    extra = sorted({listed_shapes[s] for s in listed_shapes.keys() - code_shapes.keys()})
    assert not missing, f"{where} does not list the code's routes {missing}"
    assert not extra, f"{where} lists routes the code does not register: {extra}"


def test_the_reference_page_lists_exactly_the_routes_the_code_registers(monkeypatch: pytest.MonkeyPatch):
    code = hub_routes_of_the_code() + server_routes_of_the_code(monkeypatch)
    listed = page_routes(PAGE.read_text(), OUR_SECTIONS)
    compare(code, listed, "docs/reference/rest-api.md")


def test_the_route_tables_docstring_lists_exactly_the_hubs_routes():
    docstring = hub_routes.__doc__ or ""
    listed = [
        p for row in docstring.splitlines() if row.startswith("| ``") for p in re.findall(r"``([^`]*)``", row)[:1]
    ]
    compare(hub_routes_of_the_code(), listed, "hub/routes.py's docstring")


def test_the_page_lists_no_route_of_ours_among_jupyterhubs():
    """JupyterHub's own endpoints have their own table: none of the code's routes is listed there."""
    text = PAGE.read_text()
    others = [s for s in re.findall(r"^## (.+)$", text, re.M) if s not in OUR_SECTIONS]
    theirs = {shape for path in page_routes(text, tuple(others)) for shape in page_shape(path)}
    ours = {shape for pattern in hub_routes_of_the_code() for shape in code_shape(pattern)}
    assert not theirs & ours


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        (r"/api/aifactory/estimate/([^/]+)/?([^/]*)", "/api/aifactory/estimate/USER[/SERVER]"),
        (r"/api/aifactory/workshops/([a-z][a-z0-9]{1,15})", "/api/aifactory/workshops/NAME"),
        (r"/user/NAME/aifactory/dask/([^/]+)(/.*|)", "/user/NAME/aifactory/dask/DASHBOARD[/PATH]"),
        (r"/api/aifactory/usage/([^/]+)", "/api/aifactory/usage/USER?days=N"),
    ],
)
def test_a_pattern_and_the_pages_path_for_it_have_the_same_shapes(pattern: str, path: str):
    assert code_shape(pattern) == page_shape(path)


def test_nested_optional_parts_are_each_path_they_allow():
    assert page_shape("/hub/spawn[/USER[/SERVER]]") == {"/hub/spawn", "/hub/spawn/{}", "/hub/spawn/{}/{}"}
    assert code_shape(r"/spawn/([^/]+)/([^/]+)") == {"/spawn/{}/{}"}
