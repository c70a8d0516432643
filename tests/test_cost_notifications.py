"""Cost warnings, end to end: a month's spend passing 80% / 100% of the workspace's budget
(`budget_80`, `budget_100`) and one running job projected to cost more than the owners' warning
(`cost_projection`), from a refresh against the fake Token Factory to what a webhook, Slack and
an email receive; and the choices on the Notifications page.

Prices are the instance's defaults (1 USD per 1M training tokens for Qwen/*), so a job's cost in
dollars is its trained tokens in millions: 20M tokens at step 50 of 100 is $20 so far, ≈ $40 at
finish. Budgets are $100.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from jobs import costs, notifications, services
from jobs.models import BudgetAlert, JobEvent, TrackedJob, TrainingPrice, Workspace
from jobs.pricing import parse_price_table
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.tracked_jobs import age, refreshed
from tests.support.webhooks import Receiver

M = 1_000_000
COST_EVENTS = ["budget_80", "budget_100", "cost_projection"]


@pytest.fixture(autouse=True)
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://ftdash.example.com"
    settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS = True  # the receiver listens on loopback
    settings.FTDASH_TRAINING_PRICES = parse_price_table("Qwen/*=1", separator=",")


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def set_budget(workspace: Workspace, *, monthly=None, expensive=None) -> None:
    Workspace.objects.filter(pk=workspace.pk).update(monthly_budget_usd=monthly, expensive_job_usd=expensive)


def subscribe(workspace, actor, kind, target, events=COST_EVENTS):
    return services.channel_add(
        workspace=workspace, actor=actor, kind=kind, target=target, events=events, personal=False
    )


def running(fake_api, user, token, *, tokens_m: int, step: int = 50, total: int = 100, **fields) -> TrackedJob:
    """A running job tracked from the fake: `tokens_m` million tokens trained at `step` of `total`."""
    return track_remote_job(
        fake_api, user, token, trained_tokens=tokens_m * M, trained_steps=step, total_steps=total, **fields
    )


def progress(fake_api, job: TrackedJob, *, tokens_m: float, step: int = 50, **fields) -> TrackedJob:
    """The job trained on upstream, and a refresh saw it (as the worker or a page's poll does)."""
    fake_api.update_job(job.job_id, **{"trained_tokens": int(tokens_m * M), "trained_steps": step, **fields})
    return refreshed(job)


def delivered(receiver: Receiver) -> list[dict]:
    notifications.deliver_due()
    return receiver.json()


def events_of(receiver: Receiver) -> list[str]:
    return [body["event"] for body in delivered(receiver)]


def refresh_at(job: TrackedJob, now: dt.datetime) -> TrackedJob:
    """A refresh whose clock reads `now` (the same store as every refresh: `store_snapshot`)."""
    job = TrackedJob.objects.get(pk=job.pk)
    details = refresh.fetch_job(token=job.token, job_id=job.job_id)
    refresh.store_snapshot(job, details, now=now)
    return job


# --- the Notifications page ---------------------------------------------------------------------


def section(page: str, workspace) -> str:
    return re.search(rf'<section class="panel" id="workspace-{workspace.pk}".*?</section>', page, re.S).group(0)


def test_the_channel_form_offers_the_cost_warnings_and_says_when_nothing_is_set(alice_client, alice, team):
    part = section(alice_client.get("/notifications/").content.decode(), team)
    for value, label in (
        ("budget_80", "Budget 80%"),
        ("budget_100", "Budget 100%"),
        ("cost_projection", "Expensive job"),
    ):
        checkbox = re.search(rf'<input type="checkbox" name="events" value="{value}"[^>]*>', part).group(0)
        assert re.search(rf"{re.escape(checkbox)}\s+{label}</label>", part)
        # The note is the checkbox's description, and its id is unique on the page.
        described_by = re.search(r'aria-describedby="([^"]+)"', checkbox).group(1)
        assert f'id="{described_by}"' in part
    assert part.count("No monthly budget is set for this workspace, so this is never sent:") == 2
    assert "No expensive-job warning is set for this workspace, so this is never sent:" in part
    assert part.count(f'<a href="/spend/?workspace={team.pk}">set one on the Spend page</a>') == 3
    # The other workspace's form has ids of its own.
    page = alice_client.get("/notifications/").content.decode()
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))

    set_budget(team, monthly=Decimal("500"), expensive=Decimal("50"))
    part = section(alice_client.get("/notifications/").content.decode(), team)
    assert part.count("Monthly budget: $500.00.") == 2
    assert "When one job is projected to cost more than $50.00." in part
    assert "never sent" not in part and "/spend/" not in part

    response = alice_client.post(
        f"/notifications/workspaces/{team.pk}/channels/",
        {"kind": "webhook", "url": "https://hooks.example.com/spend", "events": ["budget_80", "cost_projection"]},
    )
    assert response.status_code == 302
    assert team.channels.get().events == ["budget_80", "cost_projection"]


def test_a_member_may_subscribe_their_own_email_to_the_budget_warnings(client, bob, team):
    client.force_login(bob)
    part = section(client.get("/notifications/").content.decode(), team)
    for label in ("Budget 80%", "Budget 100%", "Expensive job"):
        assert f" {label}</label>" in part
    assert "No monthly budget is set for this workspace, so this is never sent; its owners set one on" in part
    assert f'<a href="/spend/?workspace={team.pk}">the Spend page</a>' in part

    response = client.post(
        f"/notifications/workspaces/{team.pk}/channels/",
        {"kind": "email", "email": "bob@example.com", "events": ["budget_100"]},
    )
    assert response.status_code == 302
    channel = team.channels.get()
    assert (channel.user, channel.events) == (bob, ["budget_100"])


def test_an_unknown_event_is_refused_with_the_form_again(alice_client, alice):
    workspace = alice.personal_workspace
    response = alice_client.post(
        f"/notifications/workspaces/{workspace.pk}/channels/",
        {"kind": "email", "email": "a@example.com", "events": ["budget_50"]},
    )
    assert response.status_code == 422
    assert "Select a valid choice. budget_50 is not one of the available choices." in response.content.decode()
    assert not workspace.channels.exists()


# --- budget_80 and budget_100 -------------------------------------------------------------------


def test_budget_warnings_go_out_once_at_80_and_once_at_100_percent(fake_api, alice, alice_token, receiver):
    workspace = alice.personal_workspace
    set_budget(workspace, monthly=Decimal("100"))
    subscribe(workspace, alice, "webhook", receiver.url)
    first = running(fake_api, alice, alice_token, tokens_m=20)  # ≈ $40 at finish
    second = running(fake_api, alice, alice_token, tokens_m=10)  # ≈ $20 at finish
    progress(fake_api, first, tokens_m=21)  # $42 + $20: 62%
    assert events_of(receiver) == []

    progress(fake_api, second, tokens_m=20)  # $42 + $40 in flight: 82%
    [warning] = delivered(receiver)
    assert warning["event"] == "budget_80"
    assert warning["message"] == (
        "This month's spend, $82.00 ($0.00 finished, $82.00 projected for running jobs), "
        "passed 80% of the $100.00 budget."
    )
    for field in ("job_id", "label", "workspace", "status", "model", "event_at", "url", "delivery_id"):
        assert field in warning
    assert (warning["job_id"], warning["status"]) == (second.job_id, "running")
    assert warning["url"] == f"https://ftdash.example.com/jobs/{second.pk}/"
    assert warning["spend_url"] == f"https://ftdash.example.com/spend/?workspace={workspace.pk}"

    # More training, still between 80% and 100%: no second budget_80.
    for tokens in (21, 22, 23):
        progress(fake_api, first, tokens_m=tokens)
    assert events_of(receiver) == ["budget_80"]

    # The second job ends at $45 (frozen) with the first ≈ $46 in flight: 91%; then the first grows.
    progress(fake_api, second, tokens_m=45, step=100, status="succeeded")
    assert events_of(receiver) == ["budget_80"]
    progress(fake_api, first, tokens_m=28)  # $45 finished + $56 in flight: 101%
    assert events_of(receiver) == ["budget_80", "budget_100"]
    last = receiver.json()[-1]
    assert last["message"] == (
        "This month's spend, $101.00 ($45.00 finished, $56.00 projected for running jobs), "
        "passed 100% of the $100.00 budget."
    )

    for tokens in (30, 35, 40):
        progress(fake_api, first, tokens_m=tokens)
    progress(fake_api, first, tokens_m=45, step=100, status="succeeded")
    assert events_of(receiver) == ["budget_80", "budget_100"]
    assert BudgetAlert.objects.filter(workspace=workspace).count() == 2
    # On the job's timeline, too.
    assert JobEvent.objects.filter(kind__in=["budget_80", "budget_100"]).count() == 2


def test_both_warnings_go_out_when_one_refresh_passes_both_thresholds(fake_api, alice, alice_token, receiver):
    set_budget(alice.personal_workspace, monthly=Decimal("100"))
    subscribe(alice.personal_workspace, alice, "webhook", receiver.url)
    job = running(fake_api, alice, alice_token, tokens_m=1)
    progress(fake_api, job, tokens_m=60)  # ≈ $120 at finish
    assert sorted(events_of(receiver)) == ["budget_100", "budget_80"]


def test_the_budget_warnings_go_out_again_the_next_month(fake_api, alice, alice_token, receiver, settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    workspace = alice.personal_workspace
    set_budget(workspace, monthly=Decimal("100"))
    subscribe(workspace, alice, "webhook", receiver.url)
    done = running(fake_api, alice, alice_token, tokens_m=10)
    steady = running(fake_api, alice, alice_token, tokens_m=10, step=10)  # ≈ $100 at finish
    progress(fake_api, done, tokens_m=85, step=100, status="succeeded")  # $85 + $100: 185%
    assert sorted(events_of(receiver)) == ["budget_100", "budget_80"]

    # The first hour of next month (in the instance's time zone): the finished job counted last
    # month, the running one ≈ $100 (projected) is this month's, so both thresholds pass again.
    next_month = costs.next_month(costs.month_start(timezone.now())) + dt.timedelta(hours=1)
    fake_api.update_job(steady.job_id, trained_tokens=11 * M, trained_steps=11)
    refresh_at(steady, next_month)
    assert sorted(events_of(receiver)) == ["budget_100", "budget_100", "budget_80", "budget_80"]
    assert receiver.json()[-1]["message"].startswith("This month's spend, $100.00 ($0.00 finished, $100.00 projected")
    months = sorted(BudgetAlert.objects.filter(workspace=workspace).values_list("month", flat=True))
    assert months == [costs.month_start(timezone.now()).date()] * 2 + [next_month.date().replace(day=1)] * 2

    fake_api.update_job(steady.job_id, trained_tokens=12 * M, trained_steps=12)
    refresh_at(steady, next_month + dt.timedelta(days=3))
    assert len(delivered(receiver)) == 4


def test_each_workspace_has_its_own_budget_and_its_own_warnings(fake_api, alice, alice_token, team):
    team_token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    set_budget(alice.personal_workspace, monthly=Decimal("100"))
    set_budget(team, monthly=Decimal("100"))
    with Receiver() as personal_hook, Receiver() as team_hook:
        subscribe(alice.personal_workspace, alice, "webhook", personal_hook.url)
        subscribe(team, alice, "webhook", team_hook.url)
        mine = running(fake_api, alice, alice_token, tokens_m=10)
        remote = fake_api.add_job(trained_tokens=10 * M, trained_steps=50, total_steps=100)
        ours = services.job_track(workspace=team, token=team_token, job_id=remote["id"], user=alice)

        progress(fake_api, ours, tokens_m=45)  # the team: ≈ $90; alice's own: ≈ $20
        assert events_of(team_hook) == ["budget_80"] and events_of(personal_hook) == []
        assert team_hook.json()[0]["workspace"] == "Research team"

        progress(fake_api, mine, tokens_m=41)  # alice's own: ≈ $82
        assert events_of(personal_hook) == ["budget_80"] and events_of(team_hook) == ["budget_80"]
    assert sorted(BudgetAlert.objects.values_list("workspace_id", flat=True)) == sorted(
        [team.pk, alice.personal_workspace.pk]
    )


def test_two_refreshes_racing_over_the_threshold_send_one_warning(fake_api, alice, alice_token, receiver, monkeypatch):
    """Two jobs of a workspace are refreshed at the same moment (a page's poll and the worker)
    and each one's snapshot passes 80%: the second refresh runs, start to end, while the first
    is adding the month up, after it found no warning sent yet."""
    set_budget(alice.personal_workspace, monthly=Decimal("100"))
    subscribe(alice.personal_workspace, alice, "webhook", receiver.url)
    first = running(fake_api, alice, alice_token, tokens_m=20)
    second = running(fake_api, alice, alice_token, tokens_m=20)
    fake_api.update_job(first.job_id, trained_tokens=21 * M)
    fake_api.update_job(second.job_id, trained_tokens=22 * M)  # $42 + $44: 86%

    month_spend, raced = costs.month_spend, []

    def add_up_while_another_refresh_runs(workspace, **kwargs):
        if not raced:
            raced.append(True)
            refreshed(second)
        return month_spend(workspace, **kwargs)

    monkeypatch.setattr(costs, "month_spend", add_up_while_another_refresh_runs)
    refreshed(first)
    assert raced
    [warning] = delivered(receiver)
    assert (warning["event"], warning["job_id"]) == ("budget_80", second.job_id)
    assert JobEvent.objects.filter(kind="budget_80").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_worker_sends_the_warnings_with_every_browser_closed(fake_api, alice, alice_token, receiver, settings):
    settings.FTDASH_WORKER_LIST_READS = False
    set_budget(alice.personal_workspace, monthly=Decimal("100"), expensive=Decimal("50"))
    subscribe(alice.personal_workspace, alice, "webhook", receiver.url)
    job = running(fake_api, alice, alice_token, tokens_m=20)
    fake_api.update_job(job.job_id, trained_tokens=45 * M)  # ≈ $90 at finish
    age(job, seconds=3600)
    out = io.StringIO()
    call_command("poll_jobs", "--once", "--concurrency", "1", stdout=out, stderr=out)
    assert sorted(body["event"] for body in receiver.json()) == ["budget_80", "cost_projection"]


# --- cost_projection ----------------------------------------------------------------------------


def test_an_expensive_job_is_warned_about_once(fake_api, alice, alice_token, receiver):
    workspace = alice.personal_workspace
    set_budget(workspace, expensive=Decimal("50"))
    subscribe(workspace, alice, "webhook", receiver.url)
    job = running(fake_api, alice, alice_token, tokens_m=10, suffix="support-bot")
    progress(fake_api, job, tokens_m=25)  # ≈ $50 at finish: not more than $50
    assert events_of(receiver) == []

    progress(fake_api, job, tokens_m=30, step=60)  # ≈ $50 … then ≈ $60
    progress(fake_api, job, tokens_m=36, step=60)
    [warning] = delivered(receiver)
    assert warning["event"] == "cost_projection" and warning["status"] == "running"
    assert warning["message"] == "Projected to cost $60.00 at finish ($36.00 so far), over the $50.00 warning."
    assert warning["url"] == f"https://ftdash.example.com/jobs/{job.pk}/"
    assert "spend_url" not in warning

    for tokens, step in ((40, 62), (50, 70), (80, 90)):
        progress(fake_api, job, tokens_m=tokens, step=step)
    assert events_of(receiver) == ["cost_projection"]


def test_each_expensive_job_is_warned_about(fake_api, alice, alice_token, receiver):
    set_budget(alice.personal_workspace, expensive=Decimal("50"))
    subscribe(alice.personal_workspace, alice, "webhook", receiver.url)
    jobs = [running(fake_api, alice, alice_token, tokens_m=10) for _ in range(2)]
    for job in jobs:
        progress(fake_api, job, tokens_m=30)
    assert sorted(body["job_id"] for body in delivered(receiver)) == sorted(job.job_id for job in jobs)


def test_the_workspace_price_table_counts_for_the_projection(fake_api, alice, alice_token, receiver):
    workspace = alice.personal_workspace
    TrainingPrice.objects.create(workspace=workspace, pattern="Qwen/Qwen3-4B", usd_per_million=Decimal("3"))
    set_budget(workspace, expensive=Decimal("50"))
    subscribe(workspace, alice, "webhook", receiver.url)
    job = running(fake_api, alice, alice_token, tokens_m=5)
    progress(fake_api, job, tokens_m=9)  # 9M × $3 = $27, ≈ $54 at finish (the default price: $18)
    [warning] = delivered(receiver)
    assert warning["message"] == "Projected to cost $54.00 at finish ($27.00 so far), over the $50.00 warning."


def test_no_warning_without_a_price_a_token_count_a_projection_or_a_threshold(
    fake_api, alice, alice_token, team, receiver
):
    workspace = alice.personal_workspace
    set_budget(workspace, expensive=Decimal("1"))
    subscribe(workspace, alice, "webhook", receiver.url)
    unpriced = running(fake_api, alice, alice_token, tokens_m=10, model="meta-llama/Llama-3.1-8B-Instruct")
    progress(fake_api, unpriced, tokens_m=900)
    uncounted = running(fake_api, alice, alice_token, tokens_m=10)
    progress(fake_api, uncounted, tokens_m=0, step=60, trained_tokens=None)
    progress(fake_api, uncounted, tokens_m=0, step=61, trained_tokens=-5)
    no_total = running(fake_api, alice, alice_token, tokens_m=10, total=None)
    progress(fake_api, no_total, tokens_m=200)  # $200 so far, but no projection
    ended = running(fake_api, alice, alice_token, tokens_m=10)
    progress(fake_api, ended, tokens_m=500, step=100, status="succeeded")  # finished: not a projection

    team_token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    subscribe(team, alice, "webhook", receiver.url)  # the team has no threshold set
    remote = fake_api.add_job(trained_tokens=10 * M, trained_steps=50, total_steps=100)
    team_job = services.job_track(workspace=team, token=team_token, job_id=remote["id"], user=alice)
    progress(fake_api, team_job, tokens_m=900)

    assert events_of(receiver) == []
    assert not JobEvent.objects.filter(kind__in=COST_EVENTS).exists()


# --- what each kind of channel reads, and who gets it -------------------------------------------


def test_slack_and_email_carry_the_sums_and_the_links(fake_api, alice, alice_token, team):
    team_token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    set_budget(team, monthly=Decimal("100"), expensive=Decimal("50"))
    remote = fake_api.add_job(trained_tokens=10 * M, trained_steps=50, total_steps=100, suffix="support-bot")
    job = services.job_track(workspace=team, token=team_token, job_id=remote["id"], user=alice)
    services.job_label(job=job, label="Support bot v2")
    with Receiver() as slack:
        subscribe(team, alice, "slack", slack.url)
        subscribe(team, alice, "email", "finance@example.com")
        progress(fake_api, job, tokens_m=45)  # ≈ $90: budget 80% and expensive
        notifications.deliver_due()
        texts = [body["text"] for body in slack.json()]

    job_link = f"https://ftdash.example.com/jobs/{job.pk}/"
    spend_link = f"https://ftdash.example.com/spend/?workspace={team.pk}"
    [budget] = [text for text in texts if "budget_80" in text]
    assert budget.startswith("ftdash: Research team — budget_80 (This month's spend, $90.00 ($0.00 finished,")
    assert "passed 80% of the $100.00 budget." in budget
    assert spend_link in budget and job_link in budget and "Support bot v2" in budget
    [expensive] = [text for text in texts if "cost_projection" in text]
    assert expensive.startswith("ftdash: Support bot v2 — cost_projection (Projected to cost $90.00 at finish")
    assert "($45.00 so far), over the $50.00 warning." in expensive and job_link in expensive

    emails = {email.subject.split(" (")[0]: email for email in mail.outbox}
    assert set(emails) == {"ftdash: Research team — budget_80", "ftdash: Support bot v2 — cost_projection"}
    for email in emails.values():
        assert email.to == ["finance@example.com"] and job_link in email.body
    assert "$90.00" in emails["ftdash: Research team — budget_80"].body
    assert spend_link in emails["ftdash: Research team — budget_80"].body
    assert "over the $50.00 warning" in emails["ftdash: Support bot v2 — cost_projection"].body


def test_channels_not_subscribed_to_a_warning_get_nothing(fake_api, alice, alice_token, bob, team):
    team_token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    set_budget(team, monthly=Decimal("100"), expensive=Decimal("50"))
    with Receiver() as job_events, Receiver() as full_budget, Receiver() as expensive:
        subscribe(team, alice, "webhook", job_events.url, events=["succeeded", "failed", "cancelled", "stalled"])
        subscribe(team, alice, "webhook", full_budget.url, events=["budget_100"])
        subscribe(team, alice, "webhook", expensive.url, events=["cost_projection"])
        services.channel_add(
            workspace=team, actor=bob, kind="email", target="bob@example.com", events=["budget_80"], personal=True
        )
        remote = fake_api.add_job(trained_tokens=10 * M, trained_steps=50, total_steps=100)
        job = services.job_track(workspace=team, token=team_token, job_id=remote["id"], user=alice)
        progress(fake_api, job, tokens_m=42)  # ≈ $84: 80% and expensive, not 100%

        assert events_of(job_events) == [] and events_of(full_budget) == []
        assert events_of(expensive) == ["cost_projection"]
        [email] = mail.outbox
        assert email.to == ["bob@example.com"] and email.subject.startswith("ftdash: Research team — budget_80 (")

        progress(fake_api, job, tokens_m=55)  # ≈ $110
        assert events_of(full_budget) == ["budget_100"] and events_of(job_events) == []
    assert len(mail.outbox) == 1
