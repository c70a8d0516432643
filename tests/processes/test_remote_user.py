"""Single sign-on through an auth proxy: FTDASH_REMOTE_USER_HEADER names the user, and ftdash
believes it only from FTDASH_TRUSTED_PROXIES with FTDASH_BEHIND_PROXY on.

The main cases run ftdash under gunicorn with the variables in its environment (settings are
read once per process) and connect from two loopback addresses: 127.0.0.1 (the trusted proxy)
and 127.0.0.2 (someone reaching the app port directly). Linux routes all of 127/8 to loopback.
Other combinations of the settings, in process: tests/test_remote_user.py.
"""

from __future__ import annotations

import http.client
import json
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ftdash_server

TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.2"
SSO = {"FTDASH_REMOTE_USER_HEADER": "X-Forwarded-User", "FTDASH_BEHIND_PROXY": "true"}

SHOW_USERS = """
import json
from django.contrib.auth import get_user_model
from jobs.models import Membership
print(json.dumps({
    u.username: {
        "personal": getattr(getattr(u, "personal_workspace", None), "name", None),
        "owner_of_personal": Membership.objects.filter(
            user=u, workspace__personal_for=u, role="owner").exists(),
        "usable_password": u.has_usable_password() and bool(u.password),
    }
    for u in get_user_model().objects.all()
}))
"""


class Response:
    def __init__(self, status: int, headers: dict[str, str], cookies: SimpleCookie, body: str) -> None:
        self.status, self.headers, self.cookies, self.body = status, headers, cookies, body

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


def get(server, path: str, *, source: str, headers: dict[str, str] | None = None) -> Response:
    """GET `path` over a connection whose source address is `source`."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path, headers={"Host": f"{parts.hostname}:{parts.port}", **(headers or {})})
        raw = connection.getresponse()
        body = raw.read().decode()
        cookies = SimpleCookie()
        for value in raw.headers.get_all("Set-Cookie") or []:
            cookies.load(value)
        return Response(raw.status, {k.lower(): v for k, v in raw.headers.items()}, cookies, body)
    finally:
        connection.close()


def users(server) -> dict:
    return json.loads(server.manage("shell", "-v", "0", "-c", SHOW_USERS).stdout.strip().splitlines()[-1])


def assert_sent_to_sign_in(response: Response, path: str = "/tokens/") -> None:
    assert response.status == 302, (response.status, response.body[:500])
    assert response.location == f"/accounts/login/?next={path}"


@pytest.fixture(scope="module")
def api():
    with FakeTokenFactory() as api:
        yield api


@pytest.fixture(scope="module")
def sso_server(api, tmp_path_factory):
    with ftdash_server(tmp_path_factory.mktemp("sso") / "data", api_url=api.url, workers=1, **SSO) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server(api, tmp_path_factory):
    with ftdash_server(
        tmp_path_factory.mktemp("plain") / "data", api_url=api.url, workers=1, FTDASH_BEHIND_PROXY="true"
    ) as server:
        yield server


# ---------------------------------------------------------------------------- with SSO configured


def test_the_trusted_proxy_signs_in_the_user_it_names(sso_server):
    response = get(sso_server, "/", source=TRUSTED, headers={"X-Forwarded-User": "sso-alice"})

    assert response.status == 200, (response.status, response.location, response.body[:500])
    assert '<a class="nav-user"' in response.body and ">sso-alice</a>" in response.body
    assert response.cookies["ftdash_session"].value
    created = users(sso_server)["sso-alice"]
    assert created["personal"] == "sso-alice (personal)"
    assert created["owner_of_personal"]
    assert not created["usable_password"]  # an SSO account cannot sign in with a password

    tokens = get(sso_server, "/tokens/", source=TRUSTED, headers={"X-Forwarded-User": "sso-alice"})
    assert tokens.status == 200


def test_the_header_from_an_untrusted_address_signs_in_nobody(sso_server):
    response = get(sso_server, "/tokens/", source=UNTRUSTED, headers={"X-Forwarded-User": "sso-mallory"})

    assert_sent_to_sign_in(response)
    assert "ftdash_session" not in response.cookies
    assert "sso-mallory" not in users(sso_server)
    assert f"{UNTRUSTED} " in sso_server.log  # gunicorn saw the request come from 127.0.0.2


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-User": "sso-alice", "X-Forwarded-For": TRUSTED},
        {"X-Forwarded-User": "sso-alice", "X-Forwarded-For": f"{UNTRUSTED}, {TRUSTED}"},
        {"x-forwarded-user": "sso-alice"},
        {"X_Forwarded_User": "sso-alice"},  # WSGI maps both - and _ to HTTP_X_FORWARDED_USER
        {"X-Forwarded-User": "sso-alice", "Remote-User": "sso-alice", "X-Remote-User": "sso-alice"},
    ],
    ids=["claims-trusted-xff", "xff-chain", "lowercase", "underscores", "other-header-names"],
)
def test_an_untrusted_address_cannot_smuggle_the_header(sso_server, headers):
    assert_sent_to_sign_in(get(sso_server, "/tokens/", source=UNTRUSTED, headers=headers))


def test_an_sso_session_cookie_replayed_directly_to_the_app_port_is_signed_out(sso_server):
    signed_in = get(sso_server, "/", source=TRUSTED, headers={"X-Forwarded-User": "sso-bob"})
    assert signed_in.status == 200
    cookie = f"ftdash_session={signed_in.cookies['ftdash_session'].value}"

    replayed = get(sso_server, "/tokens/", source=UNTRUSTED, headers={"Cookie": cookie})
    assert_sent_to_sign_in(replayed)


def test_the_trusted_proxy_without_the_header_signs_in_nobody(sso_server):
    assert_sent_to_sign_in(get(sso_server, "/tokens/", source=TRUSTED))


def test_an_empty_header_signs_in_nobody(sso_server):
    assert_sent_to_sign_in(get(sso_server, "/tokens/", source=TRUSTED, headers={"X-Forwarded-User": ""}))


# ---------------------------------------------------------------------------- without SSO


def test_without_the_setting_the_header_does_nothing_even_from_the_proxy(plain_server):
    response = get(plain_server, "/tokens/", source=TRUSTED, headers={"X-Forwarded-User": "sso-alice"})

    assert_sent_to_sign_in(response)
    assert users(plain_server) == {}
    for name in ("Remote-User", "X-Remote-User", "X-Forwarded-User"):
        assert_sent_to_sign_in(get(plain_server, "/tokens/", source=TRUSTED, headers={name: "admin"}))
