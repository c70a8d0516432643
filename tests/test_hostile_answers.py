"""One bad answer, key or URL must not stop the instance (issue 8, items 1–4, and 403s).

Non-finite numbers, a dependency that raises something nobody expected, a key with characters
an HTTP header cannot carry and IDs beyond any database's range: each is shown or refused
plainly, recorded with backoff where it concerns a refresh, and never a 500.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.core import mail
from django.core.management import call_command
from django.urls import URLPattern, get_resolver

from jobs import notifications, services, vault
from jobs.converters import DatabaseIdConverter
from jobs.models import ApiToken, Delivery, JobEvent, NotificationChannel, TrackedJob
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.tracked_jobs import age


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_MAX_BACKOFF_SECONDS = 900
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.FTDASH_WORKER_LIST_READS = False  # faults are scripted per job GET


@pytest.fixture
def http_library_fault(monkeypatch):
    """Make the HTTP library (not ftdash) raise something unexpected for one job's URL."""
    faulty: set[str] = set()
    real_send = requests.adapters.HTTPAdapter.send

    def send(adapter, request, *args, **kwargs):
        if any(job_id in request.url for job_id in faulty):
            raise RuntimeError("a fault deep inside the HTTP library")
        return real_send(adapter, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return faulty


# --- 1. Non-finite numbers -------------------------------------------------------------------


@pytest.mark.django_db
def test_nan_and_infinity_in_an_answer_are_stored_and_the_job_is_shown(fake_api, alice, alice_token, alice_client):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.update_job(
        job.job_id,
        estimated_finish=float("nan"),
        seed=float("inf"),
        hyperparameters={"learning_rate": float("-inf"), "n_epochs": 3},
        suffix="still-readable",
    )
    age(job, seconds=6)

    for url in (f"/live/cards/?v={job.pk}.old", f"/jobs/{job.pk}/live/", f"/jobs/{job.pk}/", "/"):
        response = alice_client.get(url, HTTP_HX_REQUEST="true" if "live" in url else "")
        assert response.status_code == 200, url

    job.refresh_from_db()
    assert job.refresh_error == ""
    assert job.snapshot["estimated_finish"] == "NaN"
    assert job.snapshot["seed"] == "Infinity"
    assert job.snapshot["hyperparameters"]["learning_rate"] == "-Infinity"
    assert job.details.estimated_finish is None and job.details.seed is None
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "still-readable" in page
    assert "NaN" in page  # the raw JSON panel shows what the API said


@pytest.mark.django_db
def test_a_job_answering_nan_from_the_start_can_be_tracked(fake_api, alice, alice_token, alice_client):
    remote = fake_api.add_job(total_steps=100)
    fake_api.update_job(remote["id"], estimated_finish=float("nan"), seed=float("-inf"))

    response = alice_client.post("/jobs/track/", {"job_id": remote["id"], "token": alice_token.pk})

    assert response.status_code == 302
    job = TrackedJob.objects.get(job_id=remote["id"])
    assert alice_client.get(f"/jobs/{job.pk}/").status_code == 200


@pytest.mark.django_db
def test_a_status_longer_than_the_column_is_cut_not_refused(fake_api, alice, alice_token):
    # PostgreSQL refuses a value longer than the column; SQLite would store it whole.
    job = track_remote_job(fake_api, alice, alice_token, status="x" * 3_000_000)

    job.refresh_from_db()
    assert job.status == "x" * 40


# --- 1 and 2. Any failure is a recorded refresh error with backoff ----------------------------


@pytest.mark.django_db
def test_an_unexpected_failure_is_recorded_backs_off_and_keeps_the_snapshot(
    fake_api, alice, alice_token, alice_client, http_library_fault, caplog
):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=30)
    http_library_fault.add(job.job_id)
    age(job, seconds=6)

    with caplog.at_level(logging.INFO, logger="jobs"):
        response = alice_client.get(f"/live/cards/?v={job.pk}.old", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.refresh_error == refresh.UNEXPECTED_FAILURE
    assert job.consecutive_failures == 1
    assert job.snapshot["trained_steps"] == 30
    assert refresh.refresh_interval(job) == dt.timedelta(seconds=10)  # doubled: backing off
    assert "Refreshing this job failed unexpectedly" in alice_client.get(f"/jobs/{job.pk}/").content.decode()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1 and job.job_id in problems[0].getMessage() and problems[0].exc_info

    age(job, seconds=6)  # due again under the old interval, not under the backed-off one
    alice_client.get(f"/live/cards/?v={job.pk}.old", HTTP_HX_REQUEST="true")
    job.refresh_from_db()
    assert job.consecutive_failures == 1


@pytest.mark.django_db(transaction=True)
def test_a_job_that_raises_does_not_stop_the_round_nor_another_jobs_notification(
    fake_api, alice, alice_token, http_library_fault, caplog
):
    broken = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    finishing = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=90)
    NotificationChannel.objects.create(
        workspace=alice.personal_workspace, kind="email", target="alice@example.com", events=["succeeded"]
    )
    fake_api.update_job(finishing.job_id, status="succeeded", trained_steps=100)
    http_library_fault.add(broken.job_id)
    age(broken, seconds=60)  # the older one first: it is claimed and refreshed before the other
    age(finishing, seconds=6)

    with caplog.at_level(logging.INFO, logger="jobs"):
        out = io.StringIO()
        call_command("poll_jobs", "--once", "--concurrency", "1", stdout=out, stderr=out)

    finishing.refresh_from_db()
    assert finishing.status == "succeeded"
    assert len(mail.outbox) == 1 and finishing.job_id in mail.outbox[0].subject
    broken.refresh_from_db()
    assert broken.refresh_error == refresh.UNEXPECTED_FAILURE and broken.consecutive_failures == 1
    assert sum(broken.job_id in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING) == 1


@pytest.mark.django_db(transaction=True)
def test_a_delivery_that_cannot_be_recorded_does_not_stop_the_others(settings, alice, make_job, caplog):
    """Someone deletes a channel while its notification is on the wire."""
    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True
    received = []

    class DeletesItsChannel(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(self.path)
            NotificationChannel.objects.filter(target__endswith=self.path).delete()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), DeletesItsChannel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        event = JobEvent.objects.create(job=make_job(status="succeeded"), kind="finished", status="succeeded")
        for path in ("/first", "/second"):
            channel = NotificationChannel.objects.create(
                workspace=alice.personal_workspace, kind="webhook", target=base + path, events=["succeeded"]
            )
            Delivery.objects.create(channel=channel, event=event, payload={"event": "succeeded"})

        with caplog.at_level(logging.WARNING, logger="jobs"):
            notifications.deliver_due()
    finally:
        server.shutdown()
        server.server_close()

    assert sorted(received) == ["/first", "/second"]
    assert sum("could not be recorded" in r.getMessage() for r in caplog.records) == 2


# --- 3. Keys an HTTP header cannot carry ------------------------------------------------------


@pytest.mark.django_db
def test_invisible_characters_pasted_with_a_token_are_stripped(alice_client, alice):
    response = alice_client.post("/tokens/", {"name": "pasted", "secret": "\u200bsk-clean-key-1234\u200b\ufeff"})

    assert response.status_code == 302
    token = ApiToken.objects.get(name="pasted")
    assert vault.decrypt(token.secret_encrypted) == "sk-clean-key-1234"
    assert token.last4 == "1234"


@pytest.mark.django_db
@pytest.mark.parametrize("secret", ["sk-\u00e9t\u00e9-123456789", "sk-abc\x7fdef-123", "sk-\u0440\u0443\u0441-3456"])
def test_a_token_with_characters_headers_cannot_carry_is_refused_plainly(alice_client, secret):
    response = alice_client.post("/tokens/", {"name": "odd", "secret": secret})

    assert response.status_code == 422 or response.status_code == 200
    assert "contains characters Token Factory cannot accept" in response.content.decode()
    assert secret not in response.content.decode()
    assert not ApiToken.objects.filter(name="odd").exists()


@pytest.fixture
def stored_unusable_token(alice, fake_api):
    """A key saved before the form checked characters: it holds a zero-width space."""
    secret = ALICE_SECRET[:6] + "\u200b" + ALICE_SECRET[6:]
    return ApiToken.objects.create(
        workspace=alice.personal_workspace,
        name="legacy",
        secret_encrypted=vault.encrypt(secret),
        last4=secret[-4:],
        created_by=alice,
    ), secret


@pytest.mark.django_db
def test_a_stored_unusable_token_gives_a_typed_error_everywhere_and_never_a_500(
    settings, fake_api, alice, alice_client, stored_unusable_token
):
    settings.DEBUG = True  # the debug 500 page used to print "Bearer <token>"
    alice_client.raise_request_exception = False
    token, secret = stored_unusable_token
    remote = fake_api.add_job(total_steps=100)
    fake_api.reset_calls()

    tracked = alice_client.post("/jobs/track/", {"job_id": remote["id"], "token": token.pk})
    tested = alice_client.post(f"/tokens/{token.pk}/test/", follow=True)

    for response in (tracked, tested):
        assert response.status_code < 500
        text = response.content.decode()
        assert "contains characters Token Factory cannot accept" in text
        assert secret not in text and "Bearer" not in text
    assert fake_api.calls == []  # nothing was sent with it
    token.refresh_from_db()
    assert token.last_check_ok is False


@pytest.mark.django_db
def test_a_tracked_job_whose_token_became_unusable_shows_why(fake_api, alice, alice_token, stored_unusable_token):
    token, _ = stored_unusable_token
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100)
    TrackedJob.objects.filter(pk=job.pk).update(token=token)
    age(job, seconds=6)

    job = refresh.refresh_if_due(TrackedJob.objects.get(pk=job.pk))

    assert "contains characters Token Factory cannot accept" in job.refresh_error
    assert job.consecutive_failures == 1


@pytest.mark.django_db
def test_the_debug_error_page_never_shows_a_key_in_flight(
    settings, fake_api, alice, alice_token, alice_client, http_library_fault
):
    settings.DEBUG = True
    alice_client.raise_request_exception = False
    remote = fake_api.add_job(total_steps=100)
    http_library_fault.add(remote["id"])

    response = alice_client.post("/jobs/track/", {"job_id": remote["id"], "token": alice_token.pk})

    assert response.status_code == 500
    text = response.content.decode()
    assert "a fault deep inside the HTTP library" in text  # it is the debug page…
    assert ALICE_SECRET not in text and f"Bearer {ALICE_SECRET[:8]}" not in text  # …without the key


# --- 4. IDs beyond any database's range -------------------------------------------------------


def _routes_keyed_by_ids() -> list[str]:
    routes = []
    for pattern in get_resolver().url_patterns[-1].url_patterns:  # the app's own, under include("")
        assert isinstance(pattern, URLPattern)
        if any(isinstance(c, DatabaseIdConverter) for c in pattern.pattern.converters.values()):
            routes.append(str(pattern.pattern))
    return routes


def test_every_route_keyed_by_a_row_id_uses_the_bounded_converter():
    from jobs import urls

    unbounded = [str(p.pattern) for p in urls.urlpatterns if "<int:" in str(p.pattern)]
    assert unbounded == []
    assert len(_routes_keyed_by_ids()) >= 20


@pytest.mark.django_db
@pytest.mark.parametrize("huge", ["99999999999999999999999", str(2**63), "18446744073709551616"])
def test_huge_ids_in_urls_are_404_on_every_route(alice_client, team, huge):
    for route in _routes_keyed_by_ids():
        # The first ID is huge; a second one (member, invite) points into a real team.
        url = "/" + route.replace("<id:pk>", huge, 1).replace("<id:member_pk>", "1").replace("<id:invite_pk>", "1")
        for method in ("get", "post"):
            response = getattr(alice_client, method)(url)
            assert response.status_code in (404, 405), (method, url, response.status_code)
        if "<id:pk>" in route and ("<id:member_pk>" in route or "<id:invite_pk>" in route):
            inner = "/" + route.replace("<id:pk>", str(team.pk)).replace("<id:member_pk>", huge).replace(
                "<id:invite_pk>", huge
            )
            assert alice_client.post(inner).status_code == 404, inner


# --- 403 is not 401 ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_403_on_one_job_is_a_job_error_and_leaves_the_token_alone(fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.fail_next("403", job_id=job.job_id)
    age(job, seconds=6)

    job = refresh.refresh_if_due(TrackedJob.objects.get(pk=job.pk))

    assert "may not read job" in job.refresh_error
    assert job.consecutive_failures == 1  # backs off
    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.last_check_ok is not False


@pytest.mark.django_db
def test_a_403_confirmed_by_the_job_list_marks_the_token_rejected(fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.fail_next("403", count=2)  # the job, then the list that checks the token
    age(job, seconds=6)

    job = refresh.refresh_if_due(TrackedJob.objects.get(pk=job.pk))

    assert "rejected this API token" in job.refresh_error
    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.last_check_ok is False


@pytest.mark.django_db
def test_tracking_a_job_of_another_project_says_so_and_saves_nothing(fake_api, alice, alice_token):
    remote = fake_api.add_job(total_steps=100)
    fake_api.fail_next("403", job_id=remote["id"])

    with pytest.raises(Exception) as caught:
        services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=remote["id"], user=alice)

    assert "may not read job" in caught.value.message
    assert not TrackedJob.objects.filter(job_id=remote["id"]).exists()
