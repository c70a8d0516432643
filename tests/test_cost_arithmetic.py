"""The arithmetic of costs (jobs.costs) and how a sum of dollars reads (jobs.humanize.usd):
cost so far, the projection at finish, what counts as a token count, frozen final costs, the
months spend is counted in, a budget's percentage and the card's line."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs import costs
from jobs.finetuning import FineTuningJob
from jobs.humanize import usd
from jobs.models import TrackedJob, TrainingPrice
from jobs.pricing import parse_price_table
from tests.support.payloads import job_payload

PRICE = costs.Price(Decimal("0.4"), costs.Source.INSTANCE, "Qwen/*")
UTC = dt.UTC


def details(**fields) -> FineTuningJob:
    return FineTuningJob.from_payload(job_payload(**fields))


def cost(price=PRICE, **fields) -> costs.JobCost:
    return costs.compute(details(**fields), price)


# --- per job ------------------------------------------------------------------------------------


def test_cost_so_far_is_trained_tokens_times_the_price_per_million():
    assert cost(trained_tokens=1_275_000).so_far == Decimal("0.51")
    assert cost(trained_tokens=0).so_far == 0
    assert cost(trained_tokens=1).so_far == Decimal("0.0000004")
    free = costs.Price(Decimal(0), costs.Source.WORKSPACE, "Qwen/*")
    assert cost(free, trained_tokens=5_000_000).so_far == 0


def test_the_projection_scales_cost_so_far_by_total_over_trained_steps_while_running():
    assert cost(trained_tokens=1_275_000, trained_steps=17, total_steps=40).projected == Decimal("1.2")
    assert cost(trained_tokens=1_000_000, trained_steps=100, total_steps=100).projected == Decimal("0.4")


@pytest.mark.parametrize(
    "fields",
    [
        {"trained_steps": 0, "total_steps": 100},
        {"trained_steps": None, "total_steps": 100},
        {"trained_steps": 10, "total_steps": None},
        {"trained_steps": 10, "total_steps": 0},
        {"trained_steps": 101, "total_steps": 100},
        {"trained_steps": -5, "total_steps": 100},
        {"trained_steps": 10, "total_steps": -100},
        {"status": "queued"},
        {"status": "validating_files"},
        {"status": "succeeded"},
        {"status": "failed"},
        {"status": "cancelled"},
    ],
)
def test_no_projection_unless_running_with_a_step_done_of_a_known_total(fields):
    job = cost(trained_tokens=1_000_000, **{"trained_steps": 50, "total_steps": 100, **fields})
    assert job.so_far == Decimal("0.4") and job.projected is None


@pytest.mark.parametrize(
    "tokens", [None, "missing", -1, -1_000_000, math.nan, math.inf, True, False, 1e20, 10**20, "1000", 12.5, [1]]
)
def test_a_missing_or_absurd_token_count_is_unknown_never_money(tokens):
    payload = job_payload(trained_steps=50, total_steps=100)
    if tokens == "missing":
        del payload["trained_tokens"]
    else:
        payload["trained_tokens"] = tokens
    job = costs.compute(FineTuningJob.from_payload(payload), PRICE)
    assert (job.tokens, job.so_far, job.projected, job.known) == (None, None, None, False)
    assert job.summary == "No token count yet"


def test_the_largest_plausible_count_is_still_counted():
    assert cost(trained_tokens=costs.MAX_TRAINED_TOKENS).so_far == Decimal(4_000_000)
    assert cost(trained_tokens=costs.MAX_TRAINED_TOKENS + 1).so_far is None


def test_no_price_no_number():
    job = cost(None, trained_tokens=1_000_000)
    assert (job.so_far, job.projected) == (None, None)
    assert job.summary == "No training price for Qwen/Qwen3-4B"
    assert cost(None, model="").summary == "No training price (no model named)"


def test_the_card_line_reads_as_the_issue_shows_it():
    assert (
        cost(trained_tokens=1_275_000, trained_steps=17, total_steps=40).summary == "$0.51 so far · ≈ $1.20 at finish"
    )
    assert cost(trained_tokens=1_275_000, total_steps=None).summary == "$0.51 so far"
    assert cost(trained_tokens=7_750_000, status="succeeded").summary == "$3.10"
    assert cost(trained_tokens=10_000, status="failed").summary == "< $0.01"
    assert cost(trained_tokens=None).summary == "No token count yet"


def test_a_price_says_where_it_came_from():
    assert PRICE.source_label == "this instance's default prices (Qwen/*)"
    assert costs.Price(Decimal("1"), costs.Source.WORKSPACE, "Qwen/Qwen3-4B").source_label == (
        "this workspace's price table (Qwen/Qwen3-4B)"
    )
    assert costs.Price(Decimal("1"), costs.Source.TOKEN_FACTORY, "Qwen/Qwen3-4B").source_label == (
        "Token Factory's model information"
    )


def test_an_ended_job_keeps_its_frozen_cost_whatever_the_prices_today(make_job, settings):
    settings.FTDASH_TRAINING_PRICES = parse_price_table("Qwen/*=0.8", separator=",")
    job = make_job(status="succeeded", trained_tokens=2_000_000, trained_steps=100)
    TrackedJob.objects.filter(pk=job.pk).update(
        finished_at=timezone.now(),
        cost_frozen_at=timezone.now(),
        final_cost_usd=Decimal("0.8"),
        final_tokens=2_000_000,
        final_price_usd_per_million=Decimal("0.4"),
        final_price_source=costs.Source.WORKSPACE,
        final_price_pattern="Qwen/*",
    )
    TrainingPrice.objects.create(workspace=job.workspace, pattern="Qwen/Qwen3-4B", usd_per_million=Decimal("9"))
    frozen = costs.cost_of(TrackedJob.objects.get(pk=job.pk))
    assert (frozen.so_far, frozen.frozen, frozen.is_final, frozen.tokens) == (Decimal("0.8"), True, True, 2_000_000)
    assert frozen.price == costs.Price(Decimal("0.4"), costs.Source.WORKSPACE, "Qwen/*")
    assert frozen.summary == "$0.80"

    # Not frozen (ended while no price applied): today's price, most specific first.
    unfrozen = make_job(status="succeeded", trained_tokens=2_000_000, trained_steps=100)
    today = costs.cost_of(unfrozen)
    assert (today.so_far, today.frozen, today.price.source) == (Decimal("18"), False, costs.Source.WORKSPACE)


def test_attach_prices_a_page_of_jobs_with_one_query(make_job, django_assert_max_num_queries):
    jobs = [make_job(trained_tokens=1_000_000 * n) for n in range(1, 6)]
    TrainingPrice.objects.create(workspace=jobs[0].workspace, pattern="Qwen/*", usd_per_million=Decimal("2"))
    jobs = list(TrackedJob.objects.filter(pk__in=[job.pk for job in jobs]).order_by("pk"))
    with django_assert_max_num_queries(2):  # the price table, and the database cache's read
        costs.attach(jobs)
        sums = [costs.cost_of(job).so_far for job in jobs]
    assert sums == [Decimal(2 * n) for n in range(1, 6)]


# --- months -------------------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/New_York")
def test_a_month_starts_at_local_midnight_of_the_first():
    new_york = ZoneInfo("America/New_York")
    # 03:00 UTC on 1 March is still 28 February in New York.
    start = costs.month_start(dt.datetime(2025, 3, 1, 3, 0, tzinfo=UTC))
    assert start == dt.datetime(2025, 2, 1, tzinfo=new_york)
    assert start.astimezone(UTC) == dt.datetime(2025, 2, 1, 5, 0, tzinfo=UTC)
    # 05:00 UTC is midnight: March.
    assert costs.month_start(dt.datetime(2025, 3, 1, 5, 0, tzinfo=UTC)) == dt.datetime(2025, 3, 1, tzinfo=new_york)
    assert costs.month_start(dt.datetime(2025, 3, 1, 4, 59, 59, tzinfo=UTC)).month == 2
    # December into January.
    assert costs.next_month(dt.datetime(2024, 12, 1, tzinfo=new_york)) == dt.datetime(2025, 1, 1, tzinfo=new_york)
    assert costs.month_start(dt.datetime(2025, 1, 1, 4, 0, tzinfo=UTC)) == dt.datetime(2024, 12, 1, tzinfo=new_york)


@override_settings(TIME_ZONE="Europe/Amsterdam")
def test_months_across_a_daylight_saving_change_keep_local_midnight():
    amsterdam = ZoneInfo("Europe/Amsterdam")
    march = costs.month_start(dt.datetime(2025, 3, 15, 12, tzinfo=UTC))
    april = costs.next_month(march)
    assert march.astimezone(UTC) == dt.datetime(2025, 2, 28, 23, tzinfo=UTC)  # CET, +01:00
    assert april.astimezone(UTC) == dt.datetime(2025, 3, 31, 22, tzinfo=UTC)  # CEST, +02:00
    assert april == dt.datetime(2025, 4, 1, tzinfo=amsterdam)
    assert costs.month_start(dt.datetime(2025, 3, 31, 22, 30, tzinfo=UTC)) == april


@override_settings(TIME_ZONE="Europe/Amsterdam")
def test_a_job_counts_in_the_local_month_it_finished(make_job, alice_workspace):
    def finished(at: dt.datetime, amount: str):
        job = make_job(status="succeeded")
        TrackedJob.objects.filter(pk=job.pk).update(
            finished_at=at, cost_frozen_at=at, final_cost_usd=Decimal(amount), final_price_usd_per_million=1
        )

    finished(dt.datetime(2025, 2, 28, 22, 59, tzinfo=UTC), "1.00")  # 23:59 on 28 February, local
    finished(dt.datetime(2025, 2, 28, 23, 0, tzinfo=UTC), "2.00")  # midnight, 1 March, local
    finished(dt.datetime(2025, 3, 31, 21, 59, tzinfo=UTC), "4.00")  # 23:59 on 31 March (CEST)
    finished(dt.datetime(2025, 3, 31, 22, 0, tzinfo=UTC), "8.00")  # April
    march = costs.month_spend(alice_workspace, now=dt.datetime(2025, 3, 10, tzinfo=UTC))
    assert (march.finished, march.in_flight, march.total) == (Decimal("6"), Decimal(0), Decimal("6"))
    assert costs.month_spend(alice_workspace, now=dt.datetime(2025, 2, 10, tzinfo=UTC)).finished == Decimal("1")
    assert costs.month_spend(alice_workspace, now=dt.datetime(2025, 4, 10, tzinfo=UTC)).finished == Decimal("8")


def test_in_flight_is_the_projection_else_the_cost_so_far(make_job, alice_workspace, settings):
    settings.FTDASH_TRAINING_PRICES = parse_price_table("Qwen/*=1", separator=",")
    make_job(trained_tokens=10_000_000, trained_steps=25, total_steps=100)  # ≈ $40
    make_job(trained_tokens=3_000_000, total_steps=None)  # $3 so far, no projection
    make_job(trained_tokens=None)  # nothing known
    make_job(status="queued", trained_tokens=0, trained_steps=0)
    make_job(model="unpriced/model", trained_tokens=10**9)  # no price: nothing
    spend = costs.month_spend(alice_workspace)
    assert (spend.finished, spend.in_flight) == (Decimal(0), Decimal(43))


@pytest.mark.parametrize(
    ("finished", "in_flight", "budget", "percent"),
    [
        ("0", "0", "100", 0),
        ("40", "39.99", "100", 79),
        ("40", "40", "100", 80),
        ("100", "0", "100", 100),
        ("150", "50", "100", 200),
        ("1", "0", "3", 33),
        ("5", "5", None, None),
        ("5", "5", "0", None),
    ],
)
def test_the_budget_percentage_counts_finished_and_in_flight(finished, in_flight, budget, percent):
    spend = costs.MonthSpend(Decimal(finished), Decimal(in_flight), Decimal(budget) if budget else None)
    assert spend.total == Decimal(finished) + Decimal(in_flight)
    assert spend.budget_percent == percent


# --- dollars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, ""),
        (Decimal(0), "$0.00"),
        (0, "$0.00"),
        (Decimal("0.0000004"), "< $0.01"),
        (Decimal("0.004"), "< $0.01"),
        (Decimal("0.005"), "$0.01"),  # rounded half up: a cost never reads as free
        (Decimal("0.125"), "$0.13"),
        (Decimal("0.51"), "$0.51"),
        (Decimal("1234.5"), "$1,234.50"),
        (1234.5, "$1,234.50"),
        (Decimal("1234567.891"), "$1,234,567.89"),
        (2.675, "$2.68"),
        (Decimal("-1.5"), "-$1.50"),
        (Decimal("NaN"), ""),
    ],
)
def test_usd(amount, text):
    assert usd(amount) == text
