"""The tests' own habits (issue #24, item 7): one polling helper, ``tests.harness.wait_for``,
and no test module importing another (what tests share lives in helper modules: conftest.py,
tests/harness.py, tests/unit/defaults.py and fakes.py, tests/integration/jobs.py)."""

from __future__ import annotations

import ast
import itertools
import socket
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]
HARNESS = TESTS / "harness.py"


def is_test_module(name: str) -> bool:
    """Whether a module's last name is a test module's, as pytest collects them."""
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last.endswith("_test")


def package_of(path: Path) -> list[str]:
    """The dotted package of a file under tests/: ["tests", "unit"] for tests/unit/x.py."""
    return ["tests", *path.parent.relative_to(TESTS).parts]


def imported_test_modules(source: str, path: Path) -> list[str]:
    """The test modules of tests/ that ``source`` (the file at ``path``) imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("tests.") and is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = package_of(path)[: len(package_of(path)) - (node.level - 1)]
                module = ".".join([*package, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module != "tests" and not module.startswith("tests."):
                continue
            if is_test_module(module):
                found.append(module)
            else:  # from . import test_x
                found += [f"{module}.{a.name}" for a in node.names if is_test_module(a.name)]
    return found


def polling_loops(source: str) -> list[int]:
    """Lines of hand-written polling loops: a deadline taken from time.monotonic(), or a loop
    that both reads time.monotonic() and sleeps."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["deadline"]:
            if any(isinstance(c, ast.Call) and ast.unparse(c.func) == "time.monotonic" for c in ast.walk(node.value)):
                lines.append(node.lineno)
        elif isinstance(node, ast.While | ast.For | ast.AsyncFor):
            calls = {
                ast.unparse(call.func)
                for part in [node.test if isinstance(node, ast.While) else node.iter, *node.body]
                for call in ast.walk(part)
                if isinstance(call, ast.Call)
            }
            if "time.monotonic" in calls and any(c.endswith("sleep") for c in calls):
                lines.append(node.lineno)
    return sorted(set(lines))


def sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "data" not in p.relative_to(TESTS).parts)


def test_no_test_module_imports_another():
    found = {
        str(path.relative_to(TESTS)): imported
        for path in sources()
        if (imported := imported_test_modules(path.read_text(), path))
    }
    assert found == {}, f"move what they share into a helper module (conftest.py, fakes.py, ...): {found}"


def test_polling_loops_are_wait_for_only():
    found = {
        str(path.relative_to(TESTS)): lines
        for path in sources()
        if path != HARNESS and (lines := polling_loops(path.read_text()))
    }
    assert found == {}, f"poll with tests.harness.wait_for, not a loop of its own: {found}"


def test_the_checks_see_what_they_look_for():
    here = TESTS / "unit" / "test_x.py"
    assert imported_test_modules("from .test_choices import choices_for", here) == ["tests.unit.test_choices"]
    assert imported_test_modules("from tests.integration.test_job_ends import wait_gone", here) == [
        "tests.integration.test_job_ends"
    ]
    assert imported_test_modules("from . import test_session", here) == ["tests.unit.test_session"]
    assert imported_test_modules("import tests.unit.test_spawner", here) == ["tests.unit.test_spawner"]
    assert imported_test_modules("from ..integration.test_nodes import x", here) == ["tests.integration.test_nodes"]
    assert imported_test_modules("from .fakes import RUNNING\nfrom .conftest import sh\nimport pytest", here) == []
    assert imported_test_modules("from aifactory_workbench.hub import test_x", here) == []

    deadline = "deadline = time.monotonic() + 30\nwhile x() and time.monotonic() < deadline:\n    time.sleep(1)\n"
    assert polling_loops(deadline) == [1, 2]
    elapsed = "t0 = time.monotonic()\nwhile x() and time.monotonic() - t0 < 9:\n    time.sleep(0.2)\n"
    assert polling_loops(elapsed) == [2]
    assert polling_loops("for _ in range(3):\n    time.sleep(1)\n") == []
    assert polling_loops("wait_for(lambda: x(), 30, 'x')\n") == []


@pytest.fixture(scope="module")
def wait_for():
    """tests.harness.wait_for, imported without leaving the harness's .localhost resolver in place."""
    resolver = socket.getaddrinfo
    from tests.harness import wait_for

    socket.getaddrinfo = resolver
    return wait_for


def test_wait_for_returns_the_first_truthy_value(wait_for):
    calls = itertools.count()
    assert wait_for(lambda: next(calls) >= 2 and "ready", 5, "ready", every=0.01) == "ready"
    assert next(calls) == 3


def test_wait_for_names_what_it_waited_for_and_the_last_value(wait_for):
    with pytest.raises(AssertionError, match=r"the job ended \(waited 0.05s; last seen: \[\]\)"):
        wait_for(lambda: [], 0.05, "the job ended", every=0.01)
    assert wait_for(lambda: 0, 0.05, "a count", every=0.01, fail=False) == 0


def test_what_the_condition_raises_stops_the_wait(wait_for):
    def died() -> bool:
        raise AssertionError("the process died")

    with pytest.raises(AssertionError, match="the process died"):
        wait_for(died, 60, "never")
