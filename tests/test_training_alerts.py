"""Training-health alerts end to end (issue 20): runs that overfit, diverge, slip their ETA or
slow down, seen by the refresh path and by the worker with no browser open, over real HTTP
against the fake Token Factory, told to a webhook subscribed to the four rules. Each rule fires
once until its condition clears, clears on the timeline, and stays quiet while the job's alerts
are muted. Time is turned by hand for ftdash and the fake alike (tests/support/tracked_jobs.Clock).
"""

from __future__ import annotations

import io
import re

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext

from jobs import notifications, services
from jobs.models import Delivery, JobAlert, JobEvent, TrackedJob, TrainingAlertSettings
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET
from tests.support.fake_tokenfactory import DIVERGING, OVERFITTING, FakeTokenFactory
from tests.support.tracked_jobs import Clock, refreshed
from tests.support.webhooks import Receiver, subscribed_receiver

RULES = ["overfitting", "diverged", "eta_slipped", "slow"]
ALERT_KINDS = {*RULES, "alert_cleared"}
SITE = "https://ftdash.example.com"


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 5.0
    settings.FTDASH_REFRESH_SECONDS = 5
    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True  # the receiver is on loopback
    settings.SITE_URL = SITE
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def fake_api(settings, clock):
    """conftest's fake Token Factory, its jobs' pace following the test's clock."""
    with FakeTokenFactory(clock=clock.fake, epoch=clock.epoch) as server:
        settings.FTDASH_API_BASE_URL = server.url
        server.add_token(ALICE_SECRET)
        yield server


@pytest.fixture
def hook(alice):
    """A webhook of alice's workspace subscribed to the four training-health rules."""
    with subscribed_receiver(workspace=alice.personal_workspace, actor=alice, events=RULES) as receiver:
        yield receiver


@pytest.fixture
def track(fake_api, alice, alice_token):
    def track(*, finish_in: float | None = None, **fields) -> TrackedJob:
        """A running job upstream (10 epochs of 100 steps unless told), tracked by alice; with
        `finish_in`, its estimated finish is that many seconds away when it is tracked."""
        remote = fake_api.add_job(**{"total_steps": 1000, "trained_steps": 0, **fields})
        if finish_in is not None:
            fake_api.set_estimated_finish(remote["id"], in_seconds=finish_in)
        return services.job_track(
            workspace=alice.personal_workspace, token=alice_token, job_id=remote["id"], user=alice
        )

    return track


def check(job: TrackedJob) -> None:
    """A refresh as a page's poll or the worker does it, then the notifications sent."""
    refreshed(job)
    notifications.deliver_due()


def checkpoint(fake_api, job: TrackedJob, *series: dict) -> list[dict]:
    """New checkpoints upstream (an epoch apart), then the refresh that reads them."""
    made = fake_api.add_checkpoints(job.job_id, list(series))
    check(job)
    return made


def sent(hook: Receiver) -> list[tuple[str, str]]:
    return [(body["event"], body["message"]) for body in hook.json()]


def alerts(job: TrackedJob) -> list[tuple[str, bool]]:
    return [(alert.rule, alert.is_open) for alert in JobAlert.objects.filter(job=job)]


def timeline(job: TrackedJob) -> list[tuple[str, str]]:
    events = JobEvent.objects.filter(job=job, kind__in=ALERT_KINDS)
    return [(event.kind, event.message) for event in events]


def worker_round() -> None:
    """One round of `poll_jobs`, as deployed (job lists read), in this process: nobody's browser."""
    out = io.StringIO()
    call_command("poll_jobs", "--once", "--concurrency", "1", stdout=out, stderr=out)


# --- overfitting -------------------------------------------------------------------------------


def test_overfitting_fires_one_webhook_clears_on_the_timeline_and_fires_again(fake_api, track, hook, alice_client):
    job = track()
    made = []
    for metrics in OVERFITTING[:4]:
        made += checkpoint(fake_api, job, metrics)
    assert alerts(job) == [] and hook.requests == []  # the validation loss rose once: not yet

    made += checkpoint(fake_api, job, OVERFITTING[4])
    best = made[2]["id"]
    message = (
        f"Validation loss has risen for 2 checkpoints (0.81 → 0.86 → 0.93); the best checkpoint is epoch 3 ({best})"
    )
    assert sent(hook) == [("overfitting", message)]
    assert alerts(job) == [("overfitting", True)]

    checkpoint(fake_api, job, {"train_loss": 0.55, "valid_loss": 0.97})  # still rising: still the one alert
    check(job)
    assert len(hook.requests) == 1

    checkpoint(fake_api, job, {"train_loss": 0.50, "valid_loss": 0.85})  # falling: cleared
    assert alerts(job) == [("overfitting", False)]
    assert timeline(job) == [("overfitting", message), ("alert_cleared", "Overfitting cleared")]
    assert "Overfitting cleared" in alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert len(hook.requests) == 1  # a clearing is on the timeline, not notified

    checkpoint(fake_api, job, {"train_loss": 0.45, "valid_loss": 0.88})
    assert len(hook.requests) == 1
    checkpoint(fake_api, job, {"train_loss": 0.40, "valid_loss": 0.90})  # risen twice again
    checkpoint(fake_api, job, {"train_loss": 0.35, "valid_loss": 0.91})
    again = "Validation loss has risen for 2 checkpoints (0.85 → 0.88 → 0.9); the best checkpoint is epoch 3"
    assert sent(hook)[1:] == [("overfitting", f"{again} ({best})")]
    assert alerts(job) == [("overfitting", False), ("overfitting", True)]


def test_the_number_of_rises_is_the_workspaces_setting(fake_api, track, hook, alice):
    TrainingAlertSettings.objects.create(workspace=alice.personal_workspace, overfitting_rises=3)
    job = track()
    checkpoint(fake_api, job, *OVERFITTING)
    assert hook.requests == []
    checkpoint(fake_api, job, {"train_loss": 0.5, "valid_loss": 0.95})
    [(event, message)] = sent(hook)
    assert event == "overfitting"
    assert message.startswith("Validation loss has risen for 3 checkpoints (0.81 → 0.86 → 0.93 → 0.95)")


# --- diverged ----------------------------------------------------------------------------------


def test_a_nan_loss_and_a_jump_each_fire_once_and_clear_when_the_next_checkpoint_is_sane(fake_api, track, hook):
    job = track()
    checkpoint(fake_api, job, *DIVERGING[:2])
    assert hook.requests == []

    checkpoint(fake_api, job, DIVERGING[2])  # training loss NaN
    nan = "The train loss of epoch 3 is not a number (NaN or infinite)"
    assert sent(hook) == [("diverged", nan)]
    [alert] = JobAlert.objects.filter(job=job)
    assert alert.step == 300  # the checkpoint it points at

    checkpoint(fake_api, job, DIVERGING[3])  # sane again
    assert alerts(job) == [("diverged", False)]

    checkpoint(fake_api, job, DIVERGING[4])  # 0.85 → 2.55
    jump = "The training loss jumped from 0.85 to 2.55 (×3.0) between epochs 4 and 5"
    assert sent(hook) == [("diverged", nan), ("diverged", jump)]

    checkpoint(fake_api, job, {"train_loss": 2.4, "valid_loss": 0.92})
    assert alerts(job) == [("diverged", False), ("diverged", False)]
    assert timeline(job) == [
        ("diverged", nan),
        ("alert_cleared", "Diverged cleared"),
        ("diverged", jump),
        ("alert_cleared", "Diverged cleared"),
    ]
    assert len(hook.requests) == 2


def test_a_validation_loss_that_doubles_is_a_divergence(fake_api, track, hook):
    job = track()
    checkpoint(fake_api, job, {"train_loss": 1.0, "valid_loss": 1.0}, {"train_loss": 0.9, "valid_loss": 0.99})
    assert hook.requests == []
    checkpoint(fake_api, job, {"train_loss": 0.8, "valid_loss": 1.98})  # ×2
    assert sent(hook) == [
        ("diverged", "The validation loss jumped from 0.99 to 1.98 (×2.0) between epochs 2 and 3"),
    ]


def test_checkpoints_without_metrics_at_first_raise_nothing(fake_api, track, hook):
    job = track()
    checkpoint(fake_api, job, {"train_loss": None, "valid_loss": None, "full_valid_loss": None}, {})
    checkpoint(fake_api, job, {"train_loss": None, "valid_loss": 1.2})
    checkpoint(fake_api, job, {"train_loss": 1.1, "valid_loss": 1.15})
    checkpoint(fake_api, job, {"train_loss": 1.0, "valid_loss": 1.1})
    assert alerts(job) == [] and timeline(job) == [] and hook.requests == []


# --- eta_slipped -------------------------------------------------------------------------------


def test_an_eta_that_slips_by_more_than_half_the_time_left_fires_once(fake_api, track, hook):
    job = track(finish_in=3600)  # an hour left when first estimated, at tracking

    fake_api.set_estimated_finish(job.job_id, in_seconds=3600 + 20 * 60)  # 33% later: not enough
    check(job)
    assert hook.requests == []

    fake_api.set_estimated_finish(job.job_id, in_seconds=3600 + 40 * 60)  # 67% later
    check(job)
    [(event, message)] = sent(hook)
    assert event == "eta_slipped"
    assert message.startswith("The estimated finish moved 40 min later than first estimated (67% of the ")

    fake_api.set_estimated_finish(job.job_id, in_seconds=3600 + 50 * 60)
    check(job)
    assert len(hook.requests) == 1 and alerts(job) == [("eta_slipped", True)]


def test_a_slip_of_less_than_the_minutes_setting_does_not_fire(fake_api, track, hook):
    job = track(finish_in=10 * 60)  # ten minutes left
    fake_api.set_estimated_finish(job.job_id, in_seconds=10 * 60 + 14 * 60)  # 140% later, but 14 min
    check(job)
    assert hook.requests == []
    fake_api.set_estimated_finish(job.job_id, in_seconds=10 * 60 + 15 * 60)
    check(job)
    assert [event for event, _ in sent(hook)] == ["eta_slipped"]


def test_a_new_run_measures_against_its_own_first_estimate(fake_api, track, hook, clock):
    job = track(finish_in=3600)
    fake_api.set_estimated_finish(job.job_id, in_seconds=3600 + 40 * 60)
    check(job)
    assert [event for event, _ in sent(hook)] == ["eta_slipped"]

    fake_api.update_job(job.job_id, status="queued")  # put back in the queue: not running, cleared
    check(job)
    assert alerts(job) == [("eta_slipped", False)]

    clock.advance(minutes=120)
    fake_api.update_job(job.job_id, status="running")
    fake_api.set_estimated_finish(job.job_id, in_seconds=3600)  # two hours after the first run's
    check(job)
    fake_api.set_estimated_finish(job.job_id, in_seconds=3600 + 20 * 60)
    check(job)
    assert len(hook.requests) == 1  # measured against this run's first estimate, not the last run's

    fake_api.set_estimated_finish(job.job_id, in_seconds=3600 + 40 * 60)
    check(job)
    assert [event for event, _ in sent(hook)] == ["eta_slipped", "eta_slipped"]


# --- slow --------------------------------------------------------------------------------------


def run_for(clock: Clock, job: TrackedJob, *, minutes: int, every: int = 5) -> None:
    for _ in range(minutes // every):
        clock.advance(minutes=every)
        check(job)


def test_a_run_at_under_40_percent_of_its_own_median_pace_fires_slow_once(fake_api, track, hook, clock):
    job = track(total_steps=1_000_000, steps_per_second=10)  # 600 steps a minute
    run_for(clock, job, minutes=35)
    assert hook.requests == []

    fake_api.set_pace(job.job_id, 2)  # 120 a minute: 20%
    run_for(clock, job, minutes=10)
    assert [event for event, _ in sent(hook) if event == "slow"] == []  # the last 15 min are not all slow yet
    run_for(clock, job, minutes=5)
    slow = [(event, message) for event, message in sent(hook) if event == "slow"]
    assert slow == [("slow", "120.0 steps a minute over the last 15 min, 20% of this job's usual 600.0")]
    run_for(clock, job, minutes=10)
    assert len([body for body in hook.json() if body["event"] == "slow"]) == 1
    assert ("slow", True) in alerts(job)
    # The slower pace slipped its ETA too: that rule has its say as well.
    assert [event for event, _ in sent(hook) if event == "eta_slipped"] == ["eta_slipped"]


def test_a_stall_is_not_slow(fake_api, track, hook, clock, settings, alice):
    settings.FTDASH_STALL_MINUTES = 10
    job = track(total_steps=1_000_000, steps_per_second=10)
    run_for(clock, job, minutes=35)
    fake_api.set_pace(job.job_id, 0)  # no progress at all
    run_for(clock, job, minutes=30)
    assert JobEvent.objects.filter(job=job, kind="stalled").count() == 1  # the stall rule's business
    assert alerts(job) == [] and hook.requests == []


def test_a_job_that_slows_after_a_short_history_is_not_judged_yet(fake_api, track, hook, clock):
    job = track(total_steps=1_000_000, steps_per_second=10)
    run_for(clock, job, minutes=10)
    fake_api.set_pace(job.job_id, 1)
    run_for(clock, job, minutes=15)  # 25 minutes of history: not twice the window yet
    assert [body for body in hook.json() if body["event"] == "slow"] == []


# --- muting ------------------------------------------------------------------------------------


def test_muted_alerts_open_but_nobody_is_told_and_unmuted_the_next_one_notifies(fake_api, track, hook):
    job = track()
    checkpoint(fake_api, job, *DIVERGING[:2])
    TrackedJob.objects.filter(pk=job.pk).update(alerts_muted_at=refresh.timezone.now())
    checkpoint(fake_api, job, DIVERGING[2])
    assert alerts(job) == [("diverged", True)]  # the badge's alert is there
    assert Delivery.objects.count() == 0 and hook.requests == []

    TrackedJob.objects.filter(pk=job.pk).update(alerts_muted_at=None)
    checkpoint(fake_api, job, DIVERGING[3])  # cleared
    checkpoint(fake_api, job, DIVERGING[4])  # jumped: told
    assert [event for event, _ in sent(hook)] == ["diverged"]


# --- what a notification carries ---------------------------------------------------------------


def test_webhook_slack_and_email_carry_the_rule_the_message_and_the_link(fake_api, track, alice):
    workspace = alice.personal_workspace
    with Receiver() as webhook, Receiver() as slack:
        for kind, target in (("webhook", webhook.url), ("slack", slack.url), ("email", "ml@example.com")):
            services.channel_add(
                workspace=workspace, actor=alice, kind=kind, target=target, events=RULES, personal=False
            )
        job = track(suffix="support-bot")
        made = checkpoint(fake_api, job, *OVERFITTING)
        [body] = webhook.json()
        [slack_body] = slack.json()

    message = (
        "Validation loss has risen for 2 checkpoints (0.81 → 0.86 → 0.93); "
        f"the best checkpoint is epoch 3 ({made[2]['id']})"
    )
    link = f"{SITE}/jobs/{job.pk}/"
    assert (body["event"], body["message"], body["url"], body["job_id"]) == ("overfitting", message, link, job.job_id)
    assert body["status"] == "running" and body["suffix"] == "support-bot"
    assert message in slack_body["text"] and link in slack_body["text"] and "overfitting" in slack_body["text"]
    [email] = mail.outbox
    assert email.to == ["ml@example.com"] and "overfitting" in email.subject
    assert message in email.body and link in email.body


# --- the worker, with no browser open ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_worker_raises_alerts_from_job_lists_and_epoch_end_checkpoints(fake_api, track, hook, clock):
    overfits = track()
    slips = track(finish_in=3600)
    fake_api.reset_calls()  # forget tracking's fetches
    for metrics in OVERFITTING:
        fake_api.add_checkpoints(overfits.job_id, [metrics])  # an epoch ended: read by the worker
        fake_api.advance(slips.job_id, 10)
        clock.advance(seconds=10)
        worker_round()
    fake_api.set_estimated_finish(slips.job_id, in_seconds=3600 + 40 * 60)
    for _ in range(2):
        clock.advance(seconds=10)
        worker_round()

    by_job = {}
    for body in hook.json():
        by_job.setdefault(body["job_id"], []).append(body["event"])
    assert by_job == {overfits.job_id: ["overfitting"], slips.job_id: ["eta_slipped"]}
    reads = [call.path for call in fake_api.calls]
    assert "/v1/fine_tuning/jobs" in reads  # the jobs came from their token's job list
    assert f"/v1/fine_tuning/jobs/{overfits.job_id}" not in reads  # not one by one


# --- races and cost ----------------------------------------------------------------------------


def test_two_refreshes_racing_open_one_alert_and_tell_once(fake_api, track, hook):
    """The second refresh reads the open alerts before the first one's alert is stored (as
    when a refresh outlives its lock): the constraint keeps one open, and one is told."""
    job = track(finish_in=3600, steps_per_call=1)
    fake_api.set_estimated_finish(job.job_id, in_seconds=3600 + 40 * 60)
    racing = []

    def second_refresh_first(sender, instance, **kwargs):
        if not racing:
            racing.append(instance)
            check(TrackedJob.objects.get(pk=job.pk))

    pre_save.connect(second_refresh_first, sender=JobAlert)
    try:
        check(job)
    finally:
        pre_save.disconnect(second_refresh_first, sender=JobAlert)

    assert racing, "the first refresh never tried to open the alert"
    assert alerts(job) == [("eta_slipped", True)]
    assert JobEvent.objects.filter(job=job, kind="eta_slipped").count() == 1
    assert [event for event, _ in sent(hook)] == ["eta_slipped"]


HEALTH_SQL = re.compile(
    r'(FROM|INTO|UPDATE) "jobs_(jobalert|progresssample|trainingalertsettings)"'
    r'|UPDATE "jobs_trackedjob" SET "(alerts_changed_at|first_estimated_finish)"'
)


def health_queries(captured: CaptureQueriesContext) -> list[str]:
    """The queries of a refresh that are the training-health rules' (jobs.sync.health)."""
    return [query["sql"] for query in captured.captured_queries if HEALTH_SQL.search(query["sql"])]


def test_a_changed_refresh_of_a_running_job_costs_three_queries_for_its_alerts(fake_api, track, alice, clock):
    """Its settings, its progress samples, and the new sample; four once it has had an alert
    (its open ones); whether or not the workspace saved settings of its own."""
    job = track(total_steps=1_000_000, steps_per_second=10, finish_in=3600)
    run_for(clock, job, minutes=3, every=1)
    clock.advance(minutes=1)
    with CaptureQueriesContext(connection) as default_settings:
        refreshed(job)
    TrainingAlertSettings.objects.create(workspace=alice.personal_workspace, eta_slip_minutes=1, eta_slip_percent=1)
    clock.advance(minutes=1)
    with CaptureQueriesContext(connection) as saved_settings:
        refreshed(job)
    assert len(health_queries(default_settings)) == 3, health_queries(default_settings)
    assert len(health_queries(saved_settings)) == 3, health_queries(saved_settings)

    fake_api.set_pace(job.job_id, 5)  # the estimate slips by far more than 1%
    clock.advance(minutes=1)
    refreshed(job)
    assert alerts(job) == [("eta_slipped", True)]
    clock.advance(minutes=1)
    with CaptureQueriesContext(connection) as with_an_alert:
        refreshed(job)
    assert len(health_queries(with_an_alert)) == 4, health_queries(with_an_alert)


def test_a_refresh_of_a_job_that_is_not_running_asks_nothing_about_alerts(fake_api, track, clock):
    job = track(status="validating_files")
    fake_api.update_job(job.job_id, status="queued")
    with CaptureQueriesContext(connection) as queued:
        refreshed(job)
    assert TrackedJob.objects.get(pk=job.pk).status == "queued"
    assert health_queries(queued) == []
