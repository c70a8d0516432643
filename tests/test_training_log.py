"""A job's events and checkpoints: fetched beside the snapshot, only what is new, kept locally,
shown on the job page (escaped, filterable, paged) with a checkpoints table and curves."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs.models import TrackedJob, TrainingCheckpoint, TrainingEvent
from jobs.sync import refresh, training_log
from tests.support.accounts import track_remote_job
from tests.support.tracked_jobs import age, poll


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 2.0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_QUEUED_REFRESH_SECONDS = 30


@pytest.fixture(autouse=True)
def fresh_cache(db):
    from django.core.cache import caches

    caches["default"].clear()
    caches["rendered"].clear()


def track(fake_api, alice, token, **fields) -> TrackedJob:
    job = track_remote_job(fake_api, alice, token, **fields)
    fake_api.reset_calls()
    return job


def calls_to(fake_api, job: TrackedJob, what: str) -> list:
    return [call for call in fake_api.calls_for(job.job_id, training_log=True) if call.path.endswith("/" + what)]


def stored_messages(job: TrackedJob) -> list[str]:
    return list(TrainingEvent.objects.filter(job=job).order_by("created_at", "pk").values_list("message", flat=True))


def add_events(fake_api, job: TrackedJob, n: int, *, later: int = 10, prefix: str = "step") -> None:
    """`n` events a second apart, starting `later` seconds from now (after the seeded ones)."""
    start = int(time.time()) + later
    for i in range(n):
        fake_api.add_event(job.job_id, f"{prefix} {i}", created_at=start + i)


# ---------------------------------------------------------------------------- events


def test_a_refresh_stores_the_jobs_events_once_each(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    age(job, seconds=60)
    poll(job)

    messages = stored_messages(job)
    assert messages[0].startswith("Created fine-tuning job")
    assert "Fine-tuning job started" in messages
    assert len(calls_to(fake_api, job, "events")) == 1

    age(job, seconds=60)
    poll(job)
    assert stored_messages(job) == messages  # nothing new, nothing twice


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest-first", "newest-first"])
def test_events_are_read_across_pages_and_then_only_what_is_new(fake_api, alice, alice_token, newest_first):
    fake_api.set_events_order(newest_first=newest_first)
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    add_events(fake_api, job, 250)  # three pages of 100 with the seeded ones
    age(job, seconds=60)
    poll(job)

    messages = stored_messages(job)
    assert len(messages) == 253
    assert messages[-250:] == [f"step {i}" for i in range(250)]
    assert len(calls_to(fake_api, job, "events")) == 3

    fake_api.reset_calls()
    add_events(fake_api, job, 120, later=1000, prefix="later")
    age(job, seconds=60)
    poll(job)
    assert stored_messages(job)[-120:] == [f"later {i}" for i in range(120)]
    assert len(stored_messages(job)) == 373
    # Only the new ones were read: two pages, not four.
    assert len(calls_to(fake_api, job, "events")) == 2

    fake_api.reset_calls()
    age(job, seconds=60)
    poll(job)
    assert len(calls_to(fake_api, job, "events")) == 1  # a steady sync is one call
    assert len(stored_messages(job)) == 373


def test_event_levels_are_named_alike_and_long_messages_are_cut(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.add_event(job.job_id, "x" * 20_000, level="warn")
    fake_api.add_event(job.job_id, "broken", level="ERROR")
    age(job, seconds=60)
    poll(job)

    long, broken = TrainingEvent.objects.filter(job=job).order_by("-pk")[:2][::-1]
    assert long.level == "warning" and len(long.message) == training_log.MAX_MESSAGE_CHARS
    assert broken.level == "error"


def test_events_of_a_finished_job_are_fetched_once_more_and_never_again(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    age(job, seconds=60)
    poll(job)
    fake_api.add_event(job.job_id, "last words before the end")
    fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
    fake_api.add_checkpoint(job.job_id, step_number=100)
    age(job, seconds=60)
    job = poll(job)

    assert job.status == "succeeded"
    assert "last words before the end" in stored_messages(job)
    assert "Fine-tuning job successfully completed" in stored_messages(job)
    assert TrainingCheckpoint.objects.filter(job=job, step=100).exists()

    fake_api.reset_calls()
    fake_api.add_event(job.job_id, "said after the final read")
    for _ in range(3):
        refresh.refresh_now(TrackedJob.objects.get(pk=job.pk))
        poll(job)
        age(job, seconds=60)
    assert calls_to(fake_api, job, "events") == [] and calls_to(fake_api, job, "checkpoints") == []
    assert "said after the final read" not in stored_messages(job)


def test_a_job_tracked_after_it_ended_gets_its_log_on_the_first_view(fake_api, alice, alice_token, alice_client):
    job = track(fake_api, alice, alice_token, status="succeeded", total_steps=100, trained_steps=100)
    fake_api.add_checkpoint(job.job_id, step_number=100)
    fake_api.reset_calls()

    for _ in range(3):
        assert alice_client.get(reverse("job_detail", args=[job.pk])).status_code == 200

    assert "Fine-tuning job successfully completed" in stored_messages(job)
    assert len(calls_to(fake_api, job, "events")) == 1
    assert len(calls_to(fake_api, job, "checkpoints")) == 1


def test_a_failing_events_endpoint_keeps_the_snapshot(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.set_training_log(supported=False)
    fake_api.advance(job.job_id, 5)
    age(job, seconds=60)
    job = poll(job)

    assert job.snapshot["trained_steps"] == 15
    assert job.refresh_error == ""
    assert TrainingEvent.objects.filter(job=job).count() == 0

    # An API without the endpoint is not asked again at every refresh.
    fake_api.reset_calls()
    age(job, seconds=60)
    poll(job)
    assert calls_to(fake_api, job, "events") == []


def test_twenty_viewers_for_a_minute_cost_one_events_and_one_checkpoints_call_per_interval(
    fake_api, alice, alice_token, settings, client
):
    """Each viewer polls every few seconds; refreshes (and with them the log) stay single-flight."""
    settings.FTDASH_REFRESH_SECONDS = 5
    job = track(fake_api, alice, alice_token, total_steps=1000, trained_steps=10)
    fake_api.add_checkpoint(job.job_id, step_number=10)
    client.force_login(alice)
    url = reverse("job_live", args=[job.pk])
    fake_api.reset_calls()

    intervals = 0
    for _second in range(0, 60, 5):  # a simulated minute: each of its 12 intervals comes due
        age(job, seconds=6)
        intervals += 1
        for _viewer in range(20):
            assert client.get(url, {"v": f"{job.pk}.stale"}).status_code in (200, 204)

    events = calls_to(fake_api, job, "events")
    checkpoints = calls_to(fake_api, job, "checkpoints")
    assert len(events) <= intervals
    assert len(checkpoints) == 1  # the slower interval (60 s) only once within the minute
    assert len([c for c in fake_api.calls_for(job.job_id) if c.path.endswith(job.job_id)]) == intervals


# ---------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_stored_with_their_metrics_and_read_again_when_an_epoch_ends(fake_api, alice, alice_token):
    # 10 epochs of 10 steps: a checkpoint per epoch.
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=5)
    age(job, seconds=60)
    poll(job)
    assert TrainingCheckpoint.objects.filter(job=job).count() == 0

    fake_api.advance(job.job_id, 5)
    fake_api.add_checkpoint(job.job_id, metrics={"train_loss": 0.9, "valid_loss": float("nan")})
    fake_api.reset_calls()
    age(job, seconds=60)
    poll(job)  # steps 5 → 10 crossed an epoch: asked again within the slower interval

    assert len(calls_to(fake_api, job, "checkpoints")) == 1
    checkpoint = TrainingCheckpoint.objects.get(job=job)
    assert checkpoint.step == 10
    assert checkpoint.metrics["train_loss"] == 0.9
    assert checkpoint.metrics["valid_loss"] == "NaN"
    assert checkpoint.fine_tuned_model_checkpoint.endswith("ckpt-step-10")

    fake_api.advance(job.job_id, 3)
    fake_api.reset_calls()
    age(job, seconds=60)
    poll(job)  # no epoch crossed, within the minute: not asked
    assert calls_to(fake_api, job, "checkpoints") == []


def test_many_checkpoints_are_read_across_pages(fake_api, alice, alice_token):
    job = track(fake_api, alice, alice_token, total_steps=1000, trained_steps=5)
    for step in range(1, 251):
        fake_api.add_checkpoint(job.job_id, step_number=step, metrics={"train_loss": 1 / step})
    age(job, seconds=60)
    poll(job)

    steps = list(TrainingCheckpoint.objects.filter(job=job).values_list("step", flat=True))
    assert steps == list(range(1, 251))
    assert len(calls_to(fake_api, job, "checkpoints")) == 3


# ---------------------------------------------------------------------------- the job page


def add_stored_checkpoints(job: TrackedJob, metrics_by_step: dict[int, dict]) -> None:
    TrainingCheckpoint.objects.bulk_create(
        TrainingCheckpoint(
            job=job,
            upstream_id=f"ftckpt_{step}",
            step=step,
            metrics=metrics,
            created_at=timezone.now(),
            fine_tuned_model_checkpoint=f"Qwen/Qwen3-4B:run:{job.job_id}:ckpt-step-{step}",
        )
        for step, metrics in metrics_by_step.items()
    )
    TrackedJob.objects.filter(pk=job.pk).update(checkpoints_synced_at=timezone.now())


def add_stored_events(job: TrackedJob, n: int, *, level: str = "info", message: str = "event {i}") -> None:
    start = timezone.now() - dt.timedelta(hours=1)
    TrainingEvent.objects.bulk_create(
        TrainingEvent(
            job=job,
            upstream_id=f"ftevent-{level}-{i}",
            level=level,
            message=message.format(i=i),
            created_at=start + dt.timedelta(seconds=i),
        )
        for i in range(n)
    )
    TrackedJob.objects.filter(pk=job.pk).update(events_synced_at=timezone.now())


def page(client, job: TrackedJob, **params) -> str:
    response = client.get(reverse("job_detail", args=[job.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def test_event_messages_with_markup_are_shown_as_text(fake_api, alice, alice_token, alice_client):
    job = track(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    fake_api.add_event(job.job_id, '<script>alert(1)</script><img src=x onerror="boom()">', level="error")
    age(job, seconds=60)
    html = page(alice_client, job)

    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;boom()&quot;&gt;" in html
    assert 'class="badge level-badge level-error">error<' in html


def test_the_events_panel_shows_the_newest_filters_by_level_and_shows_older_on_request(make_job, alice_client):
    job = make_job()
    add_stored_events(job, 120)
    add_stored_events(job, 3, level="warning", message="warning {i}")
    html = page(alice_client, job)

    assert html.count('class="event event-') == 50
    assert "event 119" in html and "event 70<" in html and "event 69<" not in html
    assert 'href="?events=100#events-panel"' in html  # "Show older"
    assert 'Warning <span class="muted">(3)</span>' in html

    warnings = page(alice_client, job, level="warning")
    assert warnings.count('class="event event-') == 3 and "event 119" not in warnings
    assert "Show older" not in warnings
    # The live poll keeps the filter: it is part of the poll's URL.
    assert f'data-live-url="/jobs/{job.pk}/live/?level=warning"' in warnings or "live/?level=warning" in warnings

    older = page(alice_client, job, events="100")
    assert older.count('class="event event-') == 100 and "event 22<" in older


def test_the_live_poll_renders_the_chosen_level(make_job, alice_client):
    job = make_job()
    add_stored_events(job, 5)
    add_stored_events(job, 2, level="error", message="bad {i}")
    response = alice_client.get(reverse("job_live", args=[job.pk]), {"v": f"{job.pk}.old", "level": "error"})
    html = response.content.decode()

    assert response.status_code == 200
    assert html.count('class="event event-') == 2 and "bad 1" in html and "event 4" not in html


@pytest.mark.parametrize("count", [0, 1, 7])
def test_the_checkpoints_table_and_curves_show_zero_one_or_many_checkpoints(make_job, alice_client, count):
    job = make_job()
    add_stored_checkpoints(
        job,
        {
            10 * (i + 1): {
                "train_loss": 2 / (i + 1),
                "valid_loss": 2.2 / (i + 1),
                "full_valid_loss": 2.3 / (i + 1),
                "train_mean_token_accuracy": 0.5 + i / 100,
                "valid_mean_token_accuracy": 0.45,
                "full_valid_mean_token_accuracy": 0.44,
            }
            for i in range(count)
        },
    )
    html = page(alice_client, job)

    assert html.count('<tr id="checkpoint-') == count
    if count == 0:
        assert "No checkpoints reported yet" in html and '<svg class="chart-svg"' not in html
        return
    assert html.count('<svg class="chart-svg"') == 2
    # Every point of the three loss and three accuracy series, each with its exact value on hover.
    assert html.count('<circle class="chart-point') == 6 * count
    assert "<title>Train loss at step 10: 2</title>" in html
    assert 'aria-label="Copy checkpoint name"' in html
    assert f"ckpt-step-{10 * count}</code>" in html
    if count == 1:
        assert "chart-point-lone" in html


def test_missing_and_non_finite_metrics_render_and_say_what_is_missing(make_job, alice_client):
    job = make_job()
    add_stored_checkpoints(
        job,
        {
            10: {"train_loss": 1.0, "valid_loss": "NaN", "train_mean_token_accuracy": "Infinity"},
            20: {"train_loss": None, "valid_loss": "NaN"},
            30: {"train_loss": 0.5},
        },
    )
    html = page(alice_client, job)

    assert "No valid loss reported." in html
    assert "No full-valid loss reported." in html
    assert "No token accuracy reported." in html  # the whole accuracy chart: nothing to draw
    assert html.count('<svg class="chart-svg"') == 1
    assert '<td class="num">—</td>' in html
    assert not re.search(r"\b(nan|infinity)\b", html, re.IGNORECASE)


def test_a_job_page_with_2000_events_and_50_checkpoints_costs_as_many_queries_as_one_event(
    make_job, alice_client, record_property
):
    small = make_job()
    add_stored_events(small, 1)
    big = make_job()
    add_stored_events(big, 1990)
    add_stored_events(big, 10, level="error", message="bad {i}")
    add_stored_checkpoints(big, {step: {"train_loss": 1 / step, "valid_loss": 1.1 / step} for step in range(1, 51)})

    def measure(job):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            html = page(alice_client, job)
            elapsed = time.perf_counter() - started
        return len(queries), elapsed, html

    measure(small)  # warm: sessions, templates
    small_queries, _, _ = measure(small)
    big_queries, big_seconds, html = measure(big)

    assert big_queries == small_queries
    assert html.count('<tr id="checkpoint-') == 50 and html.count('class="event event-') == 50
    record_property("job_page_2000_events_50_checkpoints_seconds", round(big_seconds, 3))
    print(f"\njob page, 2,000 events + 50 checkpoints: {big_queries} queries, {big_seconds * 1000:.0f} ms")
    assert big_seconds < 2.0


# ---------------------------------------------------------------------------- the dashboard card


def test_a_card_shows_the_latest_valid_loss_with_a_sparkline_only_with_checkpoints(make_job, alice_client):
    with_checkpoints = make_job(suffix="curved")
    add_stored_checkpoints(
        with_checkpoints, {10: {"train_loss": 1.0, "valid_loss": 1.2}, 20: {"train_loss": 0.8, "valid_loss": 0.9123456}}
    )
    only_train = make_job(suffix="train-only")
    add_stored_checkpoints(only_train, {10: {"train_loss": 1.5}, 20: {"train_loss": 0.75}})
    make_job(suffix="bare")
    html = alice_client.get(reverse("dashboard")).content.decode()

    assert "Valid loss <strong>0.9123</strong>" in html
    assert "Train loss <strong>0.75</strong>" in html
    assert html.count('<svg class="sparkline"') == 2


def test_sparklines_cost_one_query_whatever_the_number_of_cards(make_job, alice_client):
    def dashboard_queries() -> int:
        caches["rendered"].clear()  # every card is drawn, none comes from the render cache
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get(reverse("dashboard")).status_code == 200
        return len(queries)

    first = make_job()
    add_stored_checkpoints(first, {1: {"valid_loss": 1.0}, 2: {"valid_loss": 0.5}})
    dashboard_queries()
    one = dashboard_queries()
    for _ in range(5):
        job = make_job()
        add_stored_checkpoints(job, {1: {"valid_loss": 1.0}, 2: {"valid_loss": 0.5}})
    assert dashboard_queries() == one
