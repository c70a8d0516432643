"""Bringing jobs in without pasting IDs: "Import jobs", watched tokens, several IDs at once,
the project ID, and the dashboard's search. Against the fake API over real HTTP."""

from __future__ import annotations

import datetime as dt
import io
import re
import time

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from jobs import services
from jobs.models import (
    ApiToken,
    AuditEvent,
    Delivery,
    ImportRun,
    JobEvent,
    NotificationChannel,
    RemovedJob,
    TrackedJob,
)
from jobs.sync import discovery
from tests.support.accounts import ALICE_SECRET


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_DISCOVERY_SECONDS = 60


def run_worker() -> str:
    out = io.StringIO()
    call_command("poll_jobs", "--once", "--concurrency", "1", stdout=out, stderr=out)
    return out.getvalue()


def list_calls(fake_api):
    return [c for c in fake_api.calls if c.path.rstrip("/") == "/v1/fine_tuning/jobs"]


def job_gets(fake_api):
    return [c for c in fake_api.calls if c.job_id is not None]


def text(client, url, **params) -> str:
    """The page as a reader sees it: no tags, single spaces."""
    page = client.get(url, params).content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def hx(client, url):
    return client.get(url, HTTP_HX_REQUEST="true")


def an_hour_ago() -> int:
    return int(time.time()) - 3600


# --- Import ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_import_reads_250_jobs_over_pages_in_the_background_and_tracks_them_all_without_a_get_each(
    fake_api, alice, alice_token, alice_client
):
    remote = fake_api.add_jobs(250)
    fake_api.reset_calls()

    response = alice_client.post(f"/tokens/{alice_token.pk}/import/start/")
    assert response.status_code == 302
    page = alice_client.get(f"/tokens/{alice_token.pk}/import/").content.decode()
    # The click read one page; the rest is left to the background, with progress shown.
    assert 'hx-trigger="every 1s"' in page
    assert "100 jobs found so far, in 1 page" in text(alice_client, f"/tokens/{alice_token.pk}/import/")
    # A second click starts no second reading.
    alice_client.post(f"/tokens/{alice_token.pk}/import/start/")
    assert ImportRun.objects.filter(token=alice_token).count() == 1

    run_worker()

    run = ImportRun.objects.get(token=alice_token)
    assert (run.state, run.pages_read, run.jobs_found) == ("done", 3, 250)
    assert [c.query.get("after") for c in list_calls(fake_api)] == [None, remote[150]["id"], remote[50]["id"]]
    page = alice_client.get(f"/tokens/{alice_token.pk}/import/").content.decode()
    assert "250 jobs listed" in page and "Select all 250 jobs" in page

    response = alice_client.post(f"/tokens/{alice_token.pk}/import/track/", {"run": run.pk, "select_all": "1"})
    assert response.status_code == 302
    assert TrackedJob.objects.filter(workspace=alice.personal_workspace).count() == 250
    assert job_gets(fake_api) == []  # the listed snapshots were stored: no GET per job
    audit = AuditEvent.objects.get(action="job.import")
    assert audit.actor == alice and "imported 250 job(s)" in audit.description
    page = alice_client.get(f"/tokens/{alice_token.pk}/import/").content.decode()
    assert page.count(">Tracked</span>") == 100  # a page's worth, all marked


@pytest.mark.django_db(transaction=True)
def test_a_list_that_fails_half_way_keeps_what_was_read_and_resumes_where_it_stopped(
    fake_api, alice, alice_token, alice_client
):
    fake_api.add_jobs(250)
    alice_client.post(f"/tokens/{alice_token.pk}/import/start/")
    fake_api.fail_next("500")  # the second page fails
    fake_api.reset_calls()

    run_worker()

    run = ImportRun.objects.get(token=alice_token)
    assert (run.state, run.jobs_found) == ("failed", 100)
    page = alice_client.get(f"/tokens/{alice_token.pk}/import/").content.decode()
    assert "Reading the list stopped after 1 page" in page and "100 jobs listed" in page
    assert "Resume reading" in page

    alice_client.post(f"/tokens/{alice_token.pk}/import/resume/")
    while ImportRun.objects.get(pk=run.pk).is_reading:  # no worker: the page's poll reads on
        hx(alice_client, f"/tokens/{alice_token.pk}/import/progress/")
    run.refresh_from_db()
    assert (run.state, run.jobs_found, run.listings.count()) == ("done", 250, 250)
    # The failed call and the two after it all started past page 1: nothing was read twice.
    assert [c.status for c in list_calls(fake_api)] == [500, 200, 200]
    assert all(c.query.get("after") for c in list_calls(fake_api))


def test_the_progress_poll_stops_with_a_reload_once_the_reading_is_done(fake_api, alice_token, alice_client):
    fake_api.add_jobs(150)
    alice_client.post(f"/tokens/{alice_token.pk}/import/start/")
    first = hx(alice_client, f"/tokens/{alice_token.pk}/import/progress/")
    assert first.status_code == 200 and first.headers.get("HX-Refresh") == "true"
    page = alice_client.get(f"/tokens/{alice_token.pk}/import/").content.decode()
    assert "hx-trigger" not in page and "150 jobs listed" in page


def test_import_filters_by_status_model_and_created_date_and_tracks_only_the_selected(
    fake_api, alice, alice_token, alice_client
):
    old = fake_api.add_job(status="succeeded", model="meta-llama/Llama-3.1-8B", created_at=an_hour_ago() - 86400 * 10)
    fake_api.add_job(status="running", model="meta-llama/Llama-3.1-8B")
    wanted = fake_api.add_job(status="succeeded", model="Qwen/Qwen3-4B", suffix="prod-a")
    services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=old["id"], user=alice)
    alice_client.post(f"/tokens/{alice_token.pk}/import/start/")
    url = f"/tokens/{alice_token.pk}/import/"

    page = alice_client.get(url + "?status=succeeded").content.decode()
    assert wanted["id"] in page and old["id"] in page and "Select all 2 jobs that match the filters" in page
    assert re.search(rf'id="listed-{old["id"]}" class="is-tracked"', page)
    since = (timezone.now() - dt.timedelta(days=1)).date().isoformat()
    page = alice_client.get(url + f"?status=succeeded&created_from={since}").content.decode()
    assert wanted["id"] in page and old["id"] not in page
    page = alice_client.get(url + "?model=Qwen/Qwen3-4B").content.decode()
    assert "Select all 1 job that matches" in page

    run = ImportRun.objects.get(token=alice_token)
    response = alice_client.post(url + "track/", {"run": run.pk, "job": [wanted["id"]]}, follow=True)
    assert "Now tracking 1 job in alice (personal)" in response.content.decode()
    assert set(TrackedJob.objects.values_list("job_id", flat=True)) == {old["id"], wanted["id"]}


def test_members_may_import_with_a_team_token_and_viewers_may_not(fake_api, alice, bob, charlie, team, client):
    from jobs.models import Membership

    token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    Membership.objects.create(workspace=team, user=charlie, role=Membership.Role.VIEWER)
    client.force_login(bob)
    assert client.get(f"/tokens/{token.pk}/import/").status_code == 200
    assert f"/tokens/{token.pk}/import/" in client.get("/").content.decode()  # reached from the dashboard
    client.force_login(charlie)
    assert client.get(f"/tokens/{token.pk}/import/").status_code == 403


# --- Watched tokens ---------------------------------------------------------------------------


def watch(token: ApiToken, user, *, pattern: str = "") -> ApiToken:
    return services.token_update(token=token, actor=user, name=token.name, watch=True, watch_pattern=pattern)


@pytest.mark.django_db(transaction=True)
def test_a_watched_token_tracks_a_job_that_starts_while_the_worker_runs_and_notifies_once(
    fake_api, alice, alice_token, alice_client
):
    fake_api.add_jobs(3, created_at=an_hour_ago())  # older than the watch
    channel = NotificationChannel.objects.create(
        workspace=alice.personal_workspace, kind="email", target="alice@example.com", events=["started"]
    )
    watch(alice_token, alice)
    run_worker()
    assert TrackedJob.objects.count() == 0

    new = fake_api.add_job(suffix="nightly")
    ApiToken.objects.filter(pk=alice_token.pk).update(watch_next_at=timezone.now())
    run_worker()
    ApiToken.objects.filter(pk=alice_token.pk).update(watch_next_at=timezone.now())
    run_worker()  # a second look finds it again, and does nothing more

    job = TrackedJob.objects.get()
    assert job.job_id == new["id"] and job.snapshot["suffix"] == "nightly"
    assert [e.kind for e in JobEvent.objects.filter(job=job)] == [JobEvent.Kind.STARTED]
    assert Delivery.objects.filter(channel=channel).count() == 1
    assert [m.subject for m in mail.outbox] == [f"ftdash: {new['id']} — started"]
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "found by watching token “research”" in page


@pytest.mark.django_db(transaction=True)
def test_a_watch_waits_its_interval_between_looks(fake_api, alice, alice_token):
    watch(alice_token, alice)
    run_worker()
    run_worker()
    assert len(list_calls(fake_api)) == 1


def test_a_pattern_leaves_out_jobs_whose_suffix_and_model_both_miss_it(fake_api, alice, alice_token):
    watch(alice_token, alice, pattern="prod-*, meta-llama/*")
    by_suffix = fake_api.add_job(suffix="PROD-7")
    by_model = fake_api.add_job(model="meta-llama/Llama-3.1-8B", suffix="x")
    fake_api.add_job(suffix="experiment-3")
    token = ApiToken.objects.get(pk=alice_token.pk)
    discovery.discover(discovery.claim_due_watches(lease_seconds=60)[0] if token else None)
    assert set(TrackedJob.objects.values_list("job_id", flat=True)) == {by_suffix["id"], by_model["id"]}


def test_a_removed_job_is_not_brought_back_by_a_watch_until_someone_tracks_it_again(
    fake_api, alice, alice_token, alice_client
):
    watch(alice_token, alice)
    remote = fake_api.add_job()
    discovery.discover(discovery.claim_due_watches(lease_seconds=60)[0])
    services.job_remove(job=TrackedJob.objects.get(), actor=alice)
    assert RemovedJob.objects.filter(job_id=remote["id"]).exists()

    ApiToken.objects.filter(pk=alice_token.pk).update(watch_next_at=None)
    discovery.discover(discovery.claim_due_watches(lease_seconds=60)[0])
    assert not TrackedJob.objects.exists()

    alice_client.post("/jobs/track/", {"job_id": remote["id"], "token": alice_token.pk})
    assert TrackedJob.objects.filter(job_id=remote["id"]).exists()
    assert not RemovedJob.objects.exists()


def test_a_token_the_api_rejects_stops_its_watch_with_a_notice_on_the_tokens_page(
    fake_api, alice, alice_token, alice_client
):
    watch(alice_token, alice)
    fake_api.revoke_token(ALICE_SECRET)
    discovery.discover(discovery.claim_due_watches(lease_seconds=60)[0])

    token = ApiToken.objects.get(pk=alice_token.pk)
    assert not token.watch_new_jobs and "rejected this API token" in token.watch_stopped_message
    assert discovery.claim_due_watches(lease_seconds=60) == []
    page = alice_client.get("/tokens/").content.decode()
    assert "watch stopped" in page and "Stopped watching for new jobs" in page


def test_a_rate_limited_watch_waits_for_retry_after_and_a_failing_one_backs_off(fake_api, alice, alice_token):
    watch(alice_token, alice)
    fake_api.fail_next("429", retry_after=120)
    discovery.discover(discovery.claim_due_watches(lease_seconds=60)[0])
    token = ApiToken.objects.get(pk=alice_token.pk)
    assert token.rate_limited_until > timezone.now() + dt.timedelta(seconds=100)
    assert discovery.claim_due_watches(lease_seconds=60) == []

    ApiToken.objects.filter(pk=token.pk).update(rate_limited_until=None, watch_next_at=None)
    fake_api.fail_next("500")
    discovery.discover(discovery.claim_due_watches(lease_seconds=60)[0])
    token.refresh_from_db()
    assert token.watch_failures == 1 and token.watch_new_jobs
    assert token.watch_next_at > timezone.now() + dt.timedelta(seconds=100)  # 2 × 60 s


def test_a_watched_token_is_claimed_by_one_worker_at_a_time(fake_api, alice, alice_token):
    watch(alice_token, alice)
    assert len(discovery.claim_due_watches(lease_seconds=60)) == 1
    assert discovery.claim_due_watches(lease_seconds=60) == []


# --- Project ID -----------------------------------------------------------------------------


def test_a_project_id_reaches_the_api_on_every_call_made_with_the_token(fake_api, alice, alice_token, alice_client):
    response = alice_client.post(
        f"/tokens/{alice_token.pk}/edit/",
        {
            "name": "research",
            "secret": "",
            "ai_project_id": "project-e00abc",
            "watch": "on",
        },
    )
    assert response.status_code == 302
    remote = fake_api.add_job()
    fake_api.reset_calls()
    services.job_track(
        workspace=alice.personal_workspace, token=ApiToken.objects.get(), job_id=remote["id"], user=alice
    )
    services.token_check(token=ApiToken.objects.get())
    services.import_start(token=ApiToken.objects.get(), user=alice)
    discovery.discover(discovery.claim_due_watches(lease_seconds=60)[0])

    assert len(fake_api.job_calls) == 4  # the job, the key check, the import's and the watch's lists
    assert {c.query.get("ai_project_id") for c in fake_api.calls} == {"project-e00abc"}  # file names too
    assert "project-e00abc" in alice_client.get("/tokens/").content.decode()


# --- Several IDs at once --------------------------------------------------------------------


def test_track_a_job_takes_several_ids_and_says_what_happened_to_each(fake_api, alice, alice_token, alice_client):
    tracked_before = fake_api.add_job()
    services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=tracked_before["id"], user=alice)
    new_one, new_two = fake_api.add_jobs(2)
    hidden = fake_api.add_job(token="someone-else")
    missing = "ftjob-" + "0" * 32
    text = f"{new_one['id']}, {tracked_before['id']}\n{missing} {hidden['id']}\n\n{new_two['id']},not-an-id"

    response = alice_client.post("/jobs/track/", {"job_id": text, "token": alice_token.pk}, follow=True)

    page = response.content.decode()
    assert f"{new_one['id']}: tracked" in page and f"{new_two['id']}: tracked" in page
    assert f"{tracked_before['id']}: already tracked" in page
    assert f"{missing}: not found" in page and f"{hidden['id']}: not found" in page
    assert "not-an-id: not a job ID" in page
    assert TrackedJob.objects.count() == 3


def test_track_a_job_with_one_bad_id_still_explains_the_format(alice_token, alice_client):
    response = alice_client.post("/jobs/track/", {"job_id": "hello", "token": alice_token.pk})
    assert response.status_code == 422
    assert "does not look like a fine-tuning job ID" in response.content.decode()


def test_a_rejected_token_stops_the_rest_of_a_batch(fake_api, alice, alice_token, alice_client):
    first, second = fake_api.add_jobs(2)
    fake_api.revoke_token(ALICE_SECRET)
    response = alice_client.post(
        "/jobs/track/", {"job_id": f"{first['id']} {second['id']}", "token": alice_token.pk}, follow=True
    )
    page = response.content.decode()
    assert f"{first['id']}: refused" in page and f"{second['id']}: not tried" in page
    assert len(fake_api.calls_for(second["id"])) == 0


# --- Search ---------------------------------------------------------------------------------


def test_search_matches_id_label_suffix_and_model_in_part_and_any_case(alice_client, make_job):
    by_label = make_job(suffix="a")
    TrackedJob.objects.filter(pk=by_label.pk).update(label="Nightly eval")
    by_suffix = make_job(suffix="Prod-Release")
    by_model = make_job(suffix="b", model="meta-llama/Llama-3.1-8B")

    def shown(query):
        page = alice_client.get("/", {"q": query}).content.decode()
        return set(re.findall(r'id="job-(\d+)"', page))

    assert shown("NIGHTLY") == {str(by_label.pk)}
    assert shown("prod-rel") == {str(by_suffix.pk)}
    assert shown("llama") == {str(by_model.pk)}
    assert shown(by_suffix.job_id[-10:]) == {str(by_suffix.pk)}
    # Combined with a filter, and kept in the URL's form state.
    page = alice_client.get("/", {"q": "llama", "status": "succeeded"}).content.decode()
    assert 'id="job-' not in page and 'value="llama"' in page and "No job matches these filters" in page
