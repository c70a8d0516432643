"""gunicorn's settings file reads its variables as strictly as Django's settings do."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

CONFIG = Path(__file__).resolve().parents[1] / "ftdash" / "gunicorn.conf.py"


@pytest.fixture
def environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FTDASH_DATA_DIR", str(tmp_path / "data"))
    for name in ("HOST", "PORT", "FTDASH_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_workers_host_and_port_come_from_the_environment(environment):
    environment.setenv("FTDASH_WORKERS", "3")
    environment.setenv("HOST", "0.0.0.0")
    environment.setenv("PORT", "9001")
    config = runpy.run_path(str(CONFIG))
    assert config["workers"] == 3
    assert config["bind"] == "0.0.0.0:9001"


def test_unset_variables_give_the_defaults(environment):
    config = runpy.run_path(str(CONFIG))
    assert 1 <= config["workers"] <= 4
    assert config["bind"] == "127.0.0.1:8000"


@pytest.mark.parametrize(("name", "value"), [("FTDASH_WORKERS", "four"), ("FTDASH_WORKERS", "0"), ("PORT", "http")])
def test_a_value_that_is_not_understood_stops_start_up_naming_the_variable(environment, name, value):
    environment.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        runpy.run_path(str(CONFIG))
