"""Single sign-on through an auth proxy, in process: FTDASH_REMOTE_USER_HEADER names the user,
and ftdash believes it only with FTDASH_BEHIND_PROXY on and only from FTDASH_TRUSTED_PROXIES,
even over a password session. Under gunicorn from two loopback addresses:
tests/processes/test_remote_user.py.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

LOOPBACK = "127.0.0.1"  # where the auth proxy runs in the gunicorn tests


@pytest.fixture
def sso_settings(settings):
    """SSO configured as the environment would; the test client builds its middleware on its
    first request, so it sees these."""
    settings.REMOTE_USER_HEADER = "X-Forwarded-User"
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.RemoteUserBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    return settings


def test_without_behind_proxy_the_header_is_ignored_even_from_loopback(client, db, sso_settings):
    sso_settings.BEHIND_PROXY = False
    response = client.get("/tokens/", REMOTE_ADDR=LOOPBACK, HTTP_X_FORWARDED_USER="sso-alice")

    assert response.status_code == 302
    assert not get_user_model().objects.filter(username="sso-alice").exists()


def test_only_the_listed_proxy_addresses_may_send_the_header(client, db, sso_settings):
    sso_settings.BEHIND_PROXY = True
    sso_settings.TRUSTED_PROXIES = ["10.1.2.3"]

    refused = client.get("/tokens/", REMOTE_ADDR=LOOPBACK, HTTP_X_FORWARDED_USER="sso-alice")
    assert refused.status_code == 302

    accepted = client.get("/tokens/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_USER="sso-alice")
    assert accepted.status_code == 200
    assert accepted.wsgi_request.user.get_username() == "sso-alice"


def test_the_header_switches_a_password_session_to_the_named_user_only_from_the_proxy(client, alice, sso_settings):
    sso_settings.BEHIND_PROXY = True
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")  # as the sign-in form does

    direct = client.get("/tokens/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_USER="admin")
    assert direct.status_code == 200
    assert direct.wsgi_request.user.get_username() == "alice"
    assert not get_user_model().objects.filter(username="admin").exists()
