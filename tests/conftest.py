"""Tests under tests/integration need the mini cluster: they carry the `integration` marker
(``pytest -m "not integration"`` runs the unit tests alone). Tests marked `disruptive`
stop and restart daemons, so they run last."""

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "disruptive: stops or restarts cluster daemons; runs last")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)
