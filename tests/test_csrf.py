"""Every POST route (from the URLconf, through the authorization table) checks the CSRF token.

htmx sends the token in the X-CSRFToken header (base.html puts it in hx-headers); a POST
without it, plain or HTMX, must be refused with 403 before the view runs.
"""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.support.authorization import HTMX, POST_CASES, ROUTES, call, case_id, url_names


def test_every_post_route_of_the_urlconf_is_covered():
    posted = {name for name, _ in POST_CASES}
    assert posted == {name for name in url_names() if "POST" in ROUTES[name].methods}
    assert len(posted) >= 20


@pytest.fixture
def csrf_client(objects, settings):
    """alice, owner of everything (and an administrator), on a client that enforces CSRF."""
    settings.FTDASH_SIGNUP_OPEN = True
    alice = objects["alice"]
    alice.is_superuser = True
    alice.save(update_fields=["is_superuser"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/").status_code == 200
    return client


def _csrf_refused(response) -> bool:
    return response.status_code == 403 and b"CSRF" in response.content


@pytest.mark.parametrize("case", POST_CASES, ids=case_id)
def test_a_post_without_the_csrf_token_is_refused(csrf_client, objects, case):
    name, _ = case
    assert _csrf_refused(call(csrf_client, name, "POST", objects))
    assert _csrf_refused(call(csrf_client, name, "POST", objects, **HTMX))
    # A made-up token is no better than none.
    assert _csrf_refused(call(csrf_client, name, "POST", objects, HTTP_X_CSRFTOKEN="x" * 64, **HTMX))
    # Nothing happened: alice is still signed in and the team is intact.
    assert csrf_client.get("/").status_code == 200
    assert objects["team"].memberships.count() == 4
    assert objects["team"].tokens.count() == 2


@pytest.mark.parametrize("case", POST_CASES, ids=case_id)
def test_a_post_with_the_csrf_token_in_the_htmx_header_is_accepted(csrf_client, objects, case):
    name, _ = case
    token = csrf_client.cookies[django_settings.CSRF_COOKIE_NAME].value
    assert django_settings.CSRF_COOKIE_NAME == "ftdash_csrftoken"
    response = call(csrf_client, name, "POST", objects, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert response.status_code != 403, response.content[:300]
    assert response.status_code < 500
