"""Error pages with DEBUG off: the site's layout and navigation, never Django's bare pages.

404, 403 and a failed CSRF check get the request (who is signed in, which section); 500 and
400 are rendered by Django with no request context, and the 500 page must show even when the
database is what failed.
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection
from django.test import Client
from django.urls import include, path


def broken_view(request):
    raise DatabaseError("database disk image is malformed")


urlpatterns = [path("broken/", broken_view), path("", include("ftdash.urls"))]

NAV_LINKS = (
    'href="/">Dashboard</a>',
    'href="/tokens/">API tokens</a>',
    'href="/teams/">Teams</a>',
    'href="/notifications/">Notifications</a>',
)


def _layout(page: str) -> None:
    assert '<main id="main" class="page">' in page
    assert '<nav class="site-nav" aria-label="Main">' in page
    assert '<link rel="stylesheet" href="/static/css/ftdash.css">' in page
    assert "<h1>" in page


def test_an_unknown_address_shows_the_404_page_with_navigation(alice_client):
    response = alice_client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    _layout(page)
    assert "Page not found" in page and "Resolver404" not in page
    assert all(link in page for link in NAV_LINKS)
    assert "aria-current" not in page  # no section is the current one
    assert 'href="/">Go to the dashboard</a>' in page


def test_the_404_page_gives_ftdashs_reason(alice_client):
    page = alice_client.get("/jobs/999999/").content.decode()
    assert "Page not found" in page and "No such job." in page


def test_signed_out_the_404_page_offers_to_sign_in(client):
    page = client.get("/no/such/page/").content.decode()
    _layout(page)
    assert 'href="/accounts/login/">Sign in</a>' in page


def test_the_403_page_says_what_is_not_allowed(client, bob):
    client.force_login(bob)
    response = client.get("/accounts/create/")
    assert response.status_code == 403
    page = response.content.decode()
    _layout(page)
    assert "You cannot do that here" in page and "Only administrators create accounts." in page
    assert all(link in page for link in NAV_LINKS)


@pytest.mark.urls(__name__)
def test_the_500_page_renders_with_the_layout_even_when_the_database_fails(client):
    def no_database(execute, sql, params, many, context):
        raise DatabaseError("the database is gone")

    client.raise_request_exception = False
    with connection.execute_wrapper(no_database):
        response = client.get("/broken/")
    assert response.status_code == 500
    page = response.content.decode()
    _layout(page)
    assert "Something went wrong on our side" in page
    assert all(link in page for link in NAV_LINKS)
    assert "malformed" not in page and "Traceback" not in page


def test_a_bad_host_gets_the_400_page(client):
    response = client.get("/accounts/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    page = response.content.decode()
    _layout(page)
    assert "Bad request" in page


def test_a_failed_csrf_check_explains_itself(db):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    page = response.content.decode()
    _layout(page)
    assert "This form has expired" in page and "allow cookies for this site" in page
    assert 'href="/accounts/login/">Sign in</a>' in page
