"""Sign-in protection: throttling with a cool-off (django-axes), the client address it counts
(behind a trusted proxy or not), safe redirects after sign-in, password change and session expiry.

django-axes needs the request to count a failure, so sign-in goes through the real form
(`client.post("/accounts/login/", …)`); `client.login()` would bypass it.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher
from django.contrib.sessions.backends.cached_db import KEY_PREFIX as CACHED_SESSION_PREFIX
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.utils import timezone

LOGIN = "/accounts/login/"


def forget_cached_session(client) -> None:
    """Where sessions are cached (with Redis, see settings), an ended session leaves the cache
    when its time is up, as it leaves the database: do to the cache what was done to the row."""
    cache.delete(CACHED_SESSION_PREFIX + client.cookies[settings.SESSION_COOKIE_NAME].value)


ALICE_PASSWORD = "alice-password-1"  # tests/conftest.py: f"{username}-password-1"


def sign_in(
    client,
    username: str,
    password: str,
    *,
    address: str = "127.0.0.1",
    forwarded: str | None = None,
    next_url: str | None = None,
):
    headers = {"REMOTE_ADDR": address}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    data = {"username": username, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post(LOGIN, data, **headers)


def assert_signed_in(response, to: str = "/") -> None:
    assert response.status_code == 302, (response.status_code, response.content[:500])
    assert response["Location"] == to


def assert_locked_out(response) -> None:
    assert response.status_code == 429, (response.status_code, response.content[:500])
    assert "Too many failed sign-ins" in response.content.decode()


def assert_refused_as_wrong_password(response) -> None:
    """The form again, with its error: a wrong password, not (yet) a lockout."""
    assert response.status_code == 200
    assert "Too many failed sign-ins" not in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


@pytest.fixture
def fail(client):
    def fail(username: str = "alice", times: int = 1, **where):
        for _ in range(times):
            response = sign_in(client, username, "wrong-password", **where)
            assert response.status_code in (200, 429)
        return response

    return fail


# ---------------------------------------------------------------------------- throttling


def test_the_limit_is_five_and_the_lock_is_a_cool_off(settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert dt.timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_RESET_ON_SUCCESS is True
    assert settings.AXES_LOCKOUT_PARAMETERS == ["ip_address", "username"]


def test_four_wrong_passwords_still_leave_the_right_one_working(client, alice, fail):
    assert_refused_as_wrong_password(fail("alice", times=4))

    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD))


def test_after_five_wrong_passwords_even_the_right_one_is_refused_from_any_address(client, alice, fail):
    fail("alice", times=4, address="10.0.0.1")
    assert_locked_out(fail("alice", address="10.0.0.1"))  # the fifth failure already shows the lock

    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD, address="10.0.0.1"))
    # The account is locked, not just the address the guesses came from.
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD, address="10.0.0.2"))
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD, address="2001:db8::7"))
    assert not client.cookies.get("ftdash_session") or not client.cookies["ftdash_session"].value


def test_other_accounts_are_not_locked_by_guesses_at_alice(client, alice, bob, fail):
    fail("alice", times=5, address="10.0.0.1")

    assert_signed_in(sign_in(client, "bob", "bob-password-1", address="10.0.0.2"))


def test_five_failures_from_one_address_against_different_accounts_lock_that_address(client, alice, bob, fail):
    for name in ("alice", "bob", "mallory", "root", "admin"):
        fail(name, address="10.0.0.66")

    assert_locked_out(sign_in(client, "bob", "bob-password-1", address="10.0.0.66"))
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD, address="10.0.0.66"))
    # No single account reached the limit, so they still sign in from elsewhere.
    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD, address="10.0.0.67"))


def test_the_lock_lifts_after_the_cool_off(client, alice, fail, settings):
    fail("alice", times=5)
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD))

    # Time travel: every recorded failure happened just over a cool-off ago.
    past = timezone.now() - settings.AXES_COOLOFF_TIME - dt.timedelta(seconds=5)
    assert AccessAttempt.objects.update(attempt_time=past) >= 1
    AccessFailureLog.objects.update(attempt_time=past)

    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD))


def test_the_lock_is_still_on_just_before_the_cool_off_ends(client, alice, fail, settings):
    fail("alice", times=5)
    almost = timezone.now() - settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=30)
    AccessAttempt.objects.update(attempt_time=almost)

    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD))


def test_a_success_resets_the_failure_count(client, alice, fail):
    fail("alice", times=4)
    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD))
    client.post("/accounts/logout/")

    # Four more: had the count not been reset, the first of them would have locked her out.
    assert_refused_as_wrong_password(fail("alice", times=4))
    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD))
    # …and the limit still applies after a reset.
    client.post("/accounts/logout/")
    fail("alice", times=5)
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD))


# ---------------------------------------------------------------------------- which address counts


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(client, alice, fail, settings):
    settings.BEHIND_PROXY = True  # TrustedProxyMiddleware reads it per request
    for name in ("u1", "u2", "u3", "u4", "u5"):
        fail(name, address="127.0.0.1", forwarded="198.51.100.7")

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD, address="127.0.0.1", forwarded="198.51.100.7"))
    # Another client behind the same proxy is throttled separately.
    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD, address="127.0.0.1", forwarded="198.51.100.8"))


def test_behind_a_proxy_a_client_cannot_dodge_by_prepending_its_own_forwarded_for(client, alice, fail, settings):
    """The proxy appends the real peer; what the client wrote before it is not believed."""
    settings.BEHIND_PROXY = True
    for number, name in enumerate(("u1", "u2", "u3", "u4", "u5")):
        fail(name, address="127.0.0.1", forwarded=f"10.9.9.{number}, 198.51.100.7")

    assert_locked_out(
        sign_in(client, "alice", ALICE_PASSWORD, address="127.0.0.1", forwarded="10.9.9.99, 198.51.100.7")
    )


def test_behind_a_proxy_forwarded_for_from_an_untrusted_peer_is_ignored(client, alice, fail, settings):
    settings.BEHIND_PROXY = True
    for number, name in enumerate(("u1", "u2", "u3", "u4", "u5")):
        fail(name, address="203.0.113.9", forwarded=f"10.0.0.{number}")

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD, address="203.0.113.9", forwarded="10.0.0.200"))


def test_without_the_proxy_setting_forwarded_for_is_ignored(client, alice, fail, settings):
    assert settings.BEHIND_PROXY is False
    for number, name in enumerate(("u1", "u2", "u3", "u4", "u5")):
        fail(name, address="127.0.0.1", forwarded=f"198.51.100.{number}")

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}
    # Rotating the header does not help: the peer address is what is locked.
    assert_locked_out(sign_in(client, "alice", ALICE_PASSWORD, address="127.0.0.1", forwarded="198.51.100.200"))


# ---------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example",
        "//evil.example/path",
        "http://evil.example/accounts/login/",
        "/\\evil.example",
        "\\\\evil.example",
        "https:evil.example",
        "javascript:alert(1)",
    ],
)
def test_next_never_redirects_off_site(client, alice, next_url):
    page = client.get(LOGIN, {"next": next_url})
    assert page.status_code == 200

    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD, next_url=next_url), to="/")
    # Already signed in, the sign-in page redirects, and not off-site either.
    again = client.get(LOGIN, {"next": next_url})
    assert again.status_code == 302 and again["Location"] == "/"


def test_next_to_a_page_of_the_site_is_followed(client, alice):
    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD, next_url="/tokens/"), to="/tokens/")


# ---------------------------------------------------------------------------- password change


def test_password_change_works_and_the_old_password_stops_working(client, alice):
    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD))
    assert client.get("/accounts/password_change/").status_code == 200

    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": ALICE_PASSWORD,
            "new_password1": "a-much-better-passphrase-42",
            "new_password2": "a-much-better-passphrase-42",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    # This session stays signed in after the change.
    assert client.get("/").status_code == 200

    client.post("/accounts/logout/")
    assert_refused_as_wrong_password(sign_in(client, "alice", ALICE_PASSWORD))
    assert_signed_in(sign_in(client, "alice", "a-much-better-passphrase-42"))


def test_password_change_needs_the_current_password(client, alice):
    sign_in(client, "alice", ALICE_PASSWORD)
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": "not-it",
            "new_password1": "a-much-better-passphrase-42",
            "new_password2": "a-much-better-passphrase-42",
        },
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(ALICE_PASSWORD)


def test_a_password_change_signs_out_other_sessions(client, alice):
    from django.test import Client

    other = Client()
    assert_signed_in(sign_in(other, "alice", ALICE_PASSWORD))
    sign_in(client, "alice", ALICE_PASSWORD)
    client.post(
        "/accounts/password_change/",
        {
            "old_password": ALICE_PASSWORD,
            "new_password1": "a-much-better-passphrase-42",
            "new_password2": "a-much-better-passphrase-42",
        },
    )

    response = other.get("/tokens/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


# ---------------------------------------------------------------------------- sessions


def test_the_session_cookie_lasts_ftdash_session_days(client, alice, settings):
    assert settings.SESSION_COOKIE_AGE == 14 * 24 * 3600  # FTDASH_SESSION_DAYS default
    response = sign_in(client, "alice", ALICE_PASSWORD)
    cookie = response.cookies["ftdash_session"]

    assert int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    session = Session.objects.get()
    left = session.expire_date - timezone.now()
    assert abs(left.total_seconds() - settings.SESSION_COOKIE_AGE) < 60


def test_an_expired_session_sends_the_next_request_to_sign_in(client, alice):
    sign_in(client, "alice", ALICE_PASSWORD)
    assert client.get("/tokens/").status_code == 200

    Session.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    forget_cached_session(client)

    response = client.get("/tokens/")
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=/tokens/"


def test_a_session_about_to_expire_ends_on_time_even_when_it_was_cached_meanwhile(client, alice):
    # With Redis (jobs.cached_sessions) a session read from the database is cached again: for the
    # time it has left, not for a whole cookie age past its expiry.
    sign_in(client, "alice", ALICE_PASSWORD)
    Session.objects.update(expire_date=timezone.now() + dt.timedelta(seconds=2))
    forget_cached_session(client)
    assert client.get("/tokens/").status_code == 200

    time.sleep(2.1)
    response = client.get("/tokens/")
    assert response.status_code == 302 and response["Location"] == f"{LOGIN}?next=/tokens/"


def test_a_deleted_session_sends_the_next_request_to_sign_in(client, alice):
    sign_in(client, "alice", ALICE_PASSWORD)
    Session.objects.all().delete()
    forget_cached_session(client)

    response = client.get("/teams/")
    assert response.status_code == 302 and response["Location"] == f"{LOGIN}?next=/teams/"


def test_an_expired_session_sends_an_htmx_poll_to_sign_in_as_a_whole_page(client, alice, make_job):
    job = make_job()
    sign_in(client, "alice", ALICE_PASSWORD)
    Session.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    forget_cached_session(client)

    response = client.get(
        f"/jobs/{job.pk}/live/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver/jobs/{job.pk}/",
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == f"{LOGIN}?next=/jobs/{job.pk}/"


def test_signing_out_ends_the_session_on_the_server(client, alice):
    sign_in(client, "alice", ALICE_PASSWORD)
    cookie = client.cookies["ftdash_session"].value
    client.post("/accounts/logout/")

    assert not Session.objects.filter(session_key=cookie).exists()
    client.cookies["ftdash_session"] = cookie  # replaying the old cookie does not help
    assert client.get("/tokens/").status_code == 302


# ---------------------------------------------------------------------------- the sign-in backend


class CountingHasher(MD5PasswordHasher):
    """The test settings' hasher, counting how often a password is checked."""

    checks = 0

    def verify(self, password, encoded):
        CountingHasher.checks += 1
        return super().verify(password, encoded)


@pytest.fixture
def counted_password_checks(settings, alice):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    alice.set_password(ALICE_PASSWORD)
    alice.save()
    CountingHasher.checks = 0
    return CountingHasher


def test_a_wrong_password_is_checked_once_and_refused(client, counted_password_checks):
    assert_refused_as_wrong_password(sign_in(client, "alice", "wrong-password"))

    # settings.py lists Django's own backend after ftdash's, for older sessions only: it must
    # not check the same password again (twice the hashing for every guess).
    assert counted_password_checks.checks == 1
    assert AccessAttempt.objects.get().failures_since_start == 1  # still counted, once


def test_the_right_password_is_checked_once_and_signs_in(client, counted_password_checks):
    assert_signed_in(sign_in(client, "alice", ALICE_PASSWORD))

    assert counted_password_checks.checks == 1
    assert Session.objects.get().get_decoded()["_auth_user_backend"] == "jobs.auth_backends.ModelBackend"


def test_a_session_signed_in_before_the_upgrade_still_works(client, alice):
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")

    response = client.get("/tokens/")
    assert response.status_code == 200
    assert response.wsgi_request.user == alice


def test_a_deactivated_account_is_signed_out_at_its_next_request_and_poll(client, alice, make_job):
    job = make_job(status="running")
    sign_in(client, "alice", ALICE_PASSWORD)
    assert client.get(f"/live/cards/?v={job.pk}.x", HTTP_HX_REQUEST="true").status_code == 200

    alice.is_active = False
    alice.save()

    assert client.get(f"/live/cards/?v={job.pk}.x", HTTP_HX_REQUEST="true").status_code == 401
    assert client.get("/tokens/").status_code == 302


def test_a_session_that_is_not_in_the_database_starts_a_new_one(client, alice):
    client.cookies["ftdash_session"] = "nosuchsessionkey0123456789abcdef"

    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated
    assert response.wsgi_request.session.session_key is None  # never takes over the made-up key
