"""The hub pages' scripts are files (hub/js/, spawners/js/: linted by eslint and prettier, their
logic unit-tested by jest in labextension/test/); the pages carry their text inline."""

import re
from pathlib import Path

import jinja2
import pytest

import aifactory_workbench.hub
import aifactory_workbench.spawners

ROOT = Path(__file__).parents[2]
INSTALLED = {
    "hub": Path(aifactory_workbench.hub.__file__).parent,
    "spawners": Path(aifactory_workbench.spawners.__file__).parent,
}
SCRIPTS = sorted((ROOT / "hub" / "js").glob("*.js")) + sorted((ROOT / "spawners" / "js").glob("*.js"))
INCLUDED = sorted(
    {m for page in (ROOT / "hub").glob("*.html") for m in re.findall(r'{%-? include "(js/[^"]+)"', page.read_text())}
)


def test_the_pages_include_their_scripts():
    assert INCLUDED == ["js/home-logic.js", "js/home.js", "js/queued-logic.js", "js/queued.js", "js/share.js"]
    assert all((ROOT / "hub" / name).is_file() for name in INCLUDED)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.parent.name}/js/{p.name}")
def test_a_script_reaches_the_page_unchanged(path):
    """Jinja reads an included file as a template, and a browser ends a <script> at "</script":
    neither may find anything to act on."""
    text = path.read_text()
    for bad in ("{{", "{%", "{#", "</script", "<!--"):
        assert bad not in text.lower(), f"{path.name} holds {bad!r}"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(path.parent.parent), autoescape=True, keep_trailing_newline=True
    )
    assert env.from_string(f'{{% include "js/{path.name}" %}}').render() == text


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.parent.name}/js/{p.name}")
def test_the_package_carries_the_scripts(path):
    """pyproject.toml's package-data: the installed package has each script."""
    assert (INSTALLED[path.parent.parent.name] / "js" / path.name).read_text() == path.read_text()
