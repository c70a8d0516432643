"""Tests that start processes: ftdash under gunicorn, `manage.py` commands (the worker among
them), nginx, a PostgreSQL cluster or a redis-server of their own, and the benchmark scripts.

Every test in this folder is marked `processes`, so that the fast loop (`make test-fast`, which
runs `-m "not browser and not processes"`) leaves them out. A test that starts a process
belongs here; one that only uses the fake Token Factory (a thread in the test process) does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.processes)
