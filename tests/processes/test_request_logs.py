"""Invite links are secrets: the request logs (gunicorn's access log, Django's request
warnings) show an invite's ID, never the secret in its path."""

from __future__ import annotations

import re

import requests

from tests.support.server_process import ftdash_server
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, post_form, signed_in_session


def test_a_real_server_logs_invite_ids_and_never_invite_secrets(tmp_path):
    # gunicorn started with the shipped config file, as `make serve` and the systemd unit do.
    config = {"GUNICORN_CMD_ARGS": "--config ftdash/gunicorn.conf.py", "XDG_RUNTIME_DIR": str(tmp_path)}
    with ftdash_server(tmp_path / "data", api_url="http://127.0.0.1:9", workers=1, **config) as server:
        create_admin(server)
        owner = signed_in_session(server, "admin", ADMIN_PASSWORD)
        team_page = post_form(owner, server, "/teams/", {"name": "Log team"})
        team_path = re.search(r"/teams/\d+/", team_page.url).group(0)
        page = post_form(owner, server, team_path + "invites/", {"role": "member"}).text
        secret = re.search(r"/invite/([A-Za-z0-9_-]{20,})/", page).group(1)
        invite_id = re.search(rf"{team_path}invites/(\d+)/revoke/", page).group(1)

        visitor = requests.Session()
        visitor.trust_env = False
        invite_url = f"{server.url}/invite/{secret}/"
        assert visitor.get(invite_url).status_code == 200
        # A refused form (422) and an unknown secret (404) are also logged by Django itself.
        refused = post_form(
            visitor, server, f"/invite/{secret}/", {"username": "x", "password1": "a", "password2": "b"}
        )
        assert refused.status_code == 422
        assert visitor.get(f"{server.url}/invite/not-a-real-secret-{secret[:6]}/").status_code == 404
        # The page after an invite page carries the link in its Referer.
        visitor.get(server.url + "/accounts/login/", headers={"Referer": invite_url})

        owner.get(server.url + "/healthz")  # a last line, so the ones before are surely written
        log = server.log

    assert secret not in log and secret[:12] not in log
    assert f'"GET /invite/[id={invite_id}]/ HTTP/1.1" 200' in log
    assert f'"POST /invite/[id={invite_id}]/ HTTP/1.1" 422' in log
    assert re.search(rf"WARNING django.request Unprocessable \w+: /invite/\[id={invite_id}\]/", log)
    assert '"GET /invite/[redacted]/ HTTP/1.1" 404' in log
    assert "WARNING django.request Not Found: /invite/[redacted]/" in log
    assert f"{server.url}/invite/[redacted]/" in log  # the Referer of the login page
