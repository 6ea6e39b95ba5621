"""The Citus checks run only on a Citus cluster (``pytest --citus`` or ``make test-citus``)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("citus"):
        return
    skip = pytest.mark.skip(reason="Citus plans: run with --citus (make test-citus)")
    for item in items:
        if item.path.parent.name == "citus" and item.path.parent.parent.name == "tests":
            item.add_marker(skip)
