from __future__ import annotations

import pytest

from tests.fake_tokenfactory import FakeTokenFactory


@pytest.fixture
def fake_api(settings):
    """A fake Token Factory over real HTTP on loopback, with ftdash pointed at it."""
    with FakeTokenFactory() as server:
        settings.FTDASH_API_BASE_URL = server.url
        yield server
