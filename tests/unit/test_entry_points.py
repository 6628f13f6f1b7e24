"""The security entry-point page (docs/security/entry-points.md) lists every way in: each HTTP
route of the hub and of a user's server, each sudo rule, each command, with the test that plays
its attack. A route, a sudo rule or a command the page does not list fails here, and so does a
row that names a test which does not exist."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from aifactory_workbench.hub.routes import page_routes, routes

REPO = Path(__file__).parents[2]
PAGE = REPO / "docs" / "security" / "entry-points.md"
#: A row of one of the page's tables: its first cell a `code` name, the test(s) in its last cell.
_ROW = re.compile(r"^\| `([^`]+)` \|.*\|([^|]*)\|\s*$")
_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def sections() -> dict[str, dict[str, str]]:
    """Each ``## `` section of the page: its rows' first cells, each with its last cell."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in PAGE.read_text().splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:].strip(), {})
        elif match := _ROW.match(line):
            current[match.group(1)] = match.group(2)
    return found


def section(start: str) -> dict[str, str]:
    [rows] = [rows for title, rows in sections().items() if title.startswith(start)]
    return rows


def canonical(path: str) -> str:
    """A route as tornado's pattern or as the page writes it, in one form: a part that names
    someone or something (``([^/]+)``, ``USER``) is ``*``, an optional one ``[/*]``."""
    path = path.removeprefix("/hub")
    path = re.sub(r"/\?\(\[\^/\]\*\)", "[/*]", path).replace("[/SERVER]", "[/*]")
    path = re.sub(r"\((?:[^()]|\([^)]*\))*\)", "*", path)
    return re.sub(r"(?<=/)[A-Z]+(?=/|$|\[)", "*", path)


def hub_routes() -> set[str]:
    """Every route the hub adds to JupyterHub's API and pages (hub/routes.py's one table)."""
    table = routes(None, None, None, _FakeSite()) + page_routes(None, None, None, "", "")
    return {canonical("/api" + r[0] if r[0].startswith("/aifactory") else r[0]) for r in table}


class _FakeSite:
    class singleuser:  # noqa: N801 (the site file's section, as routes() reads it)
        venv = ""

    class gallery:  # noqa: N801
        shared_storage: list[str] = []


def test_every_route_of_the_hub_is_on_the_page():
    listed = {canonical(p) for p in section("HTTP routes of the hub")}
    missing = hub_routes() - listed
    assert not missing, f"routes of the hub that docs/security/entry-points.md does not list: {sorted(missing)}"
    stale = listed - hub_routes()
    assert not stale, f"the page lists routes the hub does not have: {sorted(stale)}"


def server_extension_modules() -> set[str]:
    """The modules of a user's server (lab/, job/) that add HTTP routes to it."""
    found = set()
    for folder in ("lab", "job"):
        for path in sorted((REPO / folder).glob("*.py")):
            if "add_handlers(" in path.read_text():
                found.add(f"aifactory_workbench.{folder}.{path.stem}")
    return found


def test_every_module_that_adds_routes_to_a_users_server_is_on_the_page():
    listed = set(section("HTTP routes of a user's server"))
    missing = server_extension_modules() - listed
    assert not missing, f"server extensions that add routes the page does not list: {sorted(missing)}"


def sudo_aliases() -> dict[str, str]:
    """config/sudoers.in's command aliases, each with what it allows."""
    text = (REPO / "config" / "sudoers.in").read_text()
    return dict(re.findall(r"^Cmnd_Alias (\w+) = (.+)$", text, re.MULTILINE))


def test_every_sudo_rule_is_on_the_page_and_none_uses_a_command_the_page_does_not_name():
    listed = section("Sudo rules")
    aliases = sudo_aliases()
    assert set(aliases) == set(listed), (sorted(aliases), sorted(listed))
    for alias, commands in aliases.items():
        for command in re.findall(r"(?:^|, )(\S+)", commands):
            name = Path(command.replace("@LIBEXEC@", "").replace("@SBATCH@", "sbatch")).name
            assert name in listed[alias] or name in PAGE.read_text(), (alias, name)


def test_every_command_is_on_the_page_as_roots_or_a_users():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    listed = set(section("Commands run as root")) | set(section("Commands users run"))
    missing = set(scripts) - listed
    assert not missing, f"commands the page does not list: {sorted(missing)}"


def libexec_programs() -> set[str]:
    """What ``aifactory-site install`` writes into the libexec folder (root's programs): each
    name written beside ``LIBEXEC`` in root/site_install.py (a literal, or a constant of that
    module), and each that config/sudoers.in runs from there."""
    from aifactory_workbench.root import site_install

    text = (REPO / "root" / "site_install.py").read_text()
    named = re.findall(r'\["LIBEXEC"\]\) / ([\w.]+)|self\.libexec\(([\w."-]+)', text)
    found = set(re.findall(r"@LIBEXEC@/([\w-]+)", (REPO / "config" / "sudoers.in").read_text()))
    for name in (a or b for a, b in named):
        if name.startswith('"'):
            found.add(name.strip('"'))
        elif name != "name":
            value = site_install
            for part in name.split("."):
                value = getattr(value, part)
            found.add(str(value))
    return found


def test_the_programs_install_puts_in_libexec_are_on_the_page():
    listed = set(section("Commands run as root"))
    assert libexec_programs() - listed == set(), sorted(libexec_programs() - listed)
    assert {"aifactory-check-password", "aifactory-extend-job", "aifactory-env-list", "aifactory-cancel"} <= (
        libexec_programs()
    )


def named_tests() -> list[tuple[str, str, str]]:
    return [
        (entry, file, test)
        for rows in sections().values()
        for entry, cell in rows.items()
        for file, test in _TEST.findall(cell)
    ]


def test_every_row_names_an_attack_test():
    bare = [entry for rows in sections().values() for entry, cell in rows.items() if not _TEST.search(cell)]
    assert not bare, f"rows of the page without a test that plays their attack: {bare}"


@pytest.mark.parametrize(("entry", "file", "test"), named_tests())
def test_each_named_test_exists(entry: str, file: str, test: str):
    tree = ast.parse((REPO / file).read_text())
    defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert test in defined, f"{entry}: {file} has no {test}"


def test_canonical_forms_meet():
    assert canonical(r"/api/aifactory/estimate/([^/]+)/?([^/]*)") == canonical(
        "/hub/api/aifactory/estimate/USER[/SERVER]"
    )
    assert canonical(r"/api/aifactory/gallery/([0-9a-f]{12})") == canonical("/hub/api/aifactory/gallery/ID")
    assert canonical(r"/api/aifactory/jobs/([^/]+)/workers/([0-9]+)") == "/api/aifactory/jobs/*/workers/*"
