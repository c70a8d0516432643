"""More than 1,000 query parameters: the plain 400 page, with DEBUG on (`make run`) as with it off.

Django refuses a query string of more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters wherever
request.GET is first read; with DEBUG on its debug page used to read them again and end as a
500. Served by real server processes, in both modes, signed in, so each view would read them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ROOT, ftdash_server
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, signed_in_session

# Short parameters: gunicorn itself refuses a request line over 4,094 bytes, with its own 400.
TOO_MANY = "&".join(["v"] * 1001)
PRODUCTION = {
    "FTDASH_DEBUG": "false",
    "FTDASH_SECRET_KEY": secrets.token_urlsafe(50),
    "FTDASH_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def _collect_static(data_dir) -> None:
    """What a deploy does before serving with DEBUG off (hashed static file names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FTDASH_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="ftdash.settings", FTDASH_DATA_DIR=str(data_dir), **PRODUCTION)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


@pytest.mark.parametrize("debug", ["true", "false"], ids=["debug-on", "debug-off"])
def test_a_thousand_and_one_parameters_get_the_plain_400_page(tmp_path, debug):
    data_dir = tmp_path / "data"
    mode = {"FTDASH_DEBUG": "true"}
    if debug == "false":
        data_dir.mkdir()
        _collect_static(data_dir)
        mode = PRODUCTION
    with FakeTokenFactory() as api, ftdash_server(data_dir, api_url=api.url, workers=1, **mode) as server:
        create_admin(server)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)
        for path, headers in [
            ("/live/cards/", {"HX-Request": "true"}),
            ("/jobs/compare/", {}),
            ("/jobs/export.csv", {}),
            ("/", {}),
        ]:
            response = session.get(f"{server.url}{path}?{TOO_MANY}", headers=headers, timeout=30)
            assert response.status_code == 400, (path, response.status_code, response.text[-500:])
            assert "<h1>Bad request</h1>" in response.text, path
            assert "ftdash could not understand this request." in response.text
            assert "TooManyFieldsSent" not in response.text and "Traceback" not in response.text
        thousand = TOO_MANY.rsplit("&", 1)[0]
        assert session.get(f"{server.url}/?{thousand}", timeout=30).status_code == 200
        log = server.log
    assert "Traceback" not in log, log[-3000:]
