"""What a workspace spends, over real HTTP against the fake Token Factory: the dashboard's summary
(counters and "Spent this month", in one query), the Spend page (months in FTDASH_TIME_ZONE,
breakdowns, in flight, chart and data table, CSV) and the budget its owners set."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import selectors, services
from jobs.models import AuditEvent, Membership, TrackedJob, TrainingPrice, Workspace
from tests.support.accounts import new_user, track_remote_job
from tests.support.django_client import signed_in
from tests.support.tracked_jobs import refreshed

UTC = dt.UTC
QWEN = "Qwen/Qwen3-4B"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
TEAM_SECRET = "sk-team-spend-0123456789-SECRET"


def _page(response) -> str:
    return response.content.decode()


def _text(response) -> str:
    """The page's text, tags dropped and spaces squeezed, as a person reads it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _page(response)))


def _price(workspace, pattern: str, usd: str, user=None) -> None:
    TrainingPrice.objects.create(workspace=workspace, pattern=pattern, usd_per_million=Decimal(usd), created_by=user)


def _finished(
    fake_api, user, token, *, at: dt.datetime, tokens: int, model: str = QWEN, label: str = "", workspace=None, **fields
):
    """A job that finished at `at` on the fake, tracked (fetched once, so its cost is frozen)."""
    remote = fake_api.add_job(
        status=fields.pop("status", "succeeded"),
        finished_at=int(at.timestamp()),
        trained_tokens=tokens,
        model=model,
        total_steps=100,
        trained_steps=100,
        **fields,
    )
    return services.job_track(
        workspace=workspace or user.personal_workspace,
        token=token,
        job_id=remote["id"],
        label=label,
        user=user,
    )


def _this_month_at(day: int = 2) -> dt.datetime:
    """A moment early in the current month (in FTDASH_TIME_ZONE), never in the future."""
    now = timezone.localtime()
    moment = now.replace(day=min(day, now.day), hour=0, minute=30, second=0, microsecond=0)
    return min(moment, now - dt.timedelta(minutes=1))


@pytest.fixture
def team_token(fake_api, alice, team):
    fake_api.add_token(TEAM_SECRET)
    return services.token_create(workspace=team, user=alice, name="team-key", secret=TEAM_SECRET)


@pytest.fixture
def priced(alice_workspace, alice):
    """Alice's workspace prices: Qwen at $0.40 per 1M training tokens, Llama at $0.80."""
    _price(alice_workspace, "Qwen/*", "0.40", alice)
    _price(alice_workspace, LLAMA, "0.80", alice)
    return alice_workspace


# --- the dashboard's summary ---------------------------------------------------------------------


def test_the_dashboard_counts_jobs_by_status_with_both_spellings(alice_client, make_job):
    for status in ("running", "running", "queued", "validating_files", "succeeded", "failed", "cancelled", "canceled"):
        make_job(status=status)
    text = _text(alice_client.get("/"))
    for count, label in ((2, "Running"), (2, "Queued"), (1, "Succeeded"), (1, "Failed"), (2, "Cancelled")):
        assert f"{count} {label}" in text


def test_each_counter_filters_the_dashboard(alice_client, make_job):
    jobs = {status: make_job(status=status) for status in ("queued", "validating_files", "cancelled", "canceled")}
    jobs["running"] = make_job(status="running")
    page = _page(alice_client.get("/"))
    assert 'href="/?status=queued"' in page and 'href="/?status=cancelled"' in page

    queued = _page(alice_client.get("/?status=queued"))
    assert jobs["queued"].job_id in queued and jobs["validating_files"].job_id in queued
    assert jobs["running"].job_id not in queued
    # The one in use is marked, and a second click lifts the filter.
    assert re.search(r'<a class="summary-counter summary-queued" href="/" aria-current="true">', queued)
    # The other counters still count what the other filters keep.
    assert "1 Running" in _text(alice_client.get("/?status=queued"))

    cancelled = _page(alice_client.get("/?status=cancelled"))
    assert jobs["cancelled"].job_id in cancelled and jobs["canceled"].job_id in cancelled
    assert jobs["queued"].job_id not in cancelled


def test_spent_this_month_sums_the_jobs_that_finished_this_month(alice_client, fake_api, alice, alice_token, priced):
    _finished(fake_api, alice, alice_token, at=_this_month_at(), tokens=2_500_000)  # $1.00
    _finished(fake_api, alice, alice_token, at=_this_month_at(), tokens=1_000_000, model=LLAMA)  # $0.80
    last_year = timezone.now() - dt.timedelta(days=400)
    _finished(fake_api, alice, alice_token, at=last_year, tokens=50_000_000)  # $20, not this month
    text = _text(alice_client.get("/"))
    assert "$1.80 Spent this month" in text
    assert 'href="/spend/"' in _page(alice_client.get("/"))


def _counts_queries(user) -> int:
    with CaptureQueriesContext(connection) as queries:
        counts = selectors.dashboard_counts(user=user)
    assert counts["total"] == TrackedJob.objects.count()
    return len(queries)


def test_the_counters_and_the_month_spend_cost_one_query_however_many_jobs(alice, make_job):
    for index in range(10):
        make_job(status=("running", "queued", "succeeded", "failed", "cancelled")[index % 5])
    assert _counts_queries(alice) == 1
    for index in range(190):
        make_job(status=("running", "queued", "succeeded", "failed", "canceled")[index % 5])
    assert _counts_queries(alice) == 1


def test_the_dashboard_page_costs_as_many_queries_for_200_jobs_as_for_10(alice_client, make_job, alice_workspace):
    alice_workspace.monthly_budget_usd = Decimal("100")
    alice_workspace.save()

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get("/").status_code == 200
        return len(captured)

    for _ in range(10):
        make_job(status="succeeded")
    with_10 = queries()
    for _ in range(190):
        make_job(status="succeeded")
    assert queries() == with_10


def test_the_dashboard_shows_the_budget_of_the_one_workspace_shown(
    alice_client, fake_api, alice, alice_token, priced, team
):
    priced.monthly_budget_usd = Decimal("10")
    priced.save()
    _finished(fake_api, alice, alice_token, at=_this_month_at(), tokens=5_000_000)  # $2.00
    running = track_remote_job(
        fake_api, alice, alice_token, total_steps=100, trained_steps=25, trained_tokens=2_500_000
    )
    assert running.status == "running"  # $1.00 so far, ≈ $4.00 at finish

    filtered = _text(alice_client.get(f"/?workspace={priced.pk}"))
    assert "$6.00 of $10.00 budget (60%)" in filtered
    page = _page(alice_client.get(f"/?workspace={priced.pk}"))
    assert re.search(r'<meter id="budget-meter-\d+" min="0" max="10.00"[^>]*value="6.0+"', page)

    # Alice has two workspaces: unfiltered, the budgets are on the Spend page.
    everything = _text(alice_client.get("/"))
    assert "of $10.00 budget" not in everything
    assert "Budgets of your workspaces are on the Spend page: alice (personal) ." in everything
    assert f'href="/spend/?workspace={priced.pk}#budget"' in _page(alice_client.get("/"))


# --- the Spend page ------------------------------------------------------------------------------


def test_the_nav_links_to_the_spend_page_after_the_dashboard(alice_client):
    page = _page(alice_client.get("/spend/"))
    assert re.search(r'>Dashboard</a>\s*<a href="/spend/" aria-current="page">Spend</a>', page)
    assert "Prices in US dollars" in page


def test_a_workspace_without_spend_says_so(alice_client):
    text = _text(alice_client.get("/spend/"))
    assert "No spend in alice (personal) yet." in text
    assert "<svg" not in _page(alice_client.get("/spend/"))


def test_months_breakdowns_and_in_flight(alice_client, fake_api, alice, bob, alice_token, priced):
    this_month = _this_month_at()
    earlier = (timezone.localtime() - dt.timedelta(days=62)).replace(day=10, hour=12)
    _finished(fake_api, alice, alice_token, at=this_month, tokens=2_500_000, label="faq-bot")  # $1.00
    _finished(fake_api, alice, alice_token, at=this_month, tokens=5_000_000, model=LLAMA, label="faq-bot")  # $4.00
    _finished(fake_api, alice, alice_token, at=this_month, tokens=1_250_000)  # $0.50, no label
    _finished(fake_api, alice, alice_token, at=earlier, tokens=25_000_000, label="summariser")  # $10.00
    # A job with no price counts as a job, never as money.
    _finished(fake_api, alice, alice_token, at=this_month, tokens=9_000_000, model="google/gemma-3-27b-it")
    # One tracked by someone who has since left.
    gone = _finished(fake_api, alice, alice_token, at=earlier, tokens=2_500_000)  # $1.00
    TrackedJob.objects.filter(pk=gone.pk).update(added_by=None)
    running = track_remote_job(
        fake_api, alice, alice_token, total_steps=100, trained_steps=50, trained_tokens=5_000_000
    )

    response = alice_client.get("/spend/")
    assert response.status_code == 200
    text = _text(response)
    month_name = f"{timezone.localtime():%B %Y}"
    assert f"{month_name} (this month): $5.50" in text
    assert f"{earlier:%B %Y}: $11.00" in text
    assert "4 finished jobs; 1 without a training price or token count, not counted in the sums." in text
    # By model, by person, by label.
    assert f"{LLAMA} 1 $4.00" in text and f"{QWEN} 2 $1.50" in text and "google/gemma-3-27b-it 1 $0.00" in text
    assert "alice 4 $5.50" in text
    assert "someone who left 1 $1.00" in text and "alice 1 $10.00" in text
    assert "faq-bot 2 $5.00" in text and "no label 2 $0.50" in text and "summariser 1 $10.00" in text
    # In flight: $2.00 so far at step 50 of 100, so $4.00 at finish.
    assert "In flight: $4.00" in text
    assert "$2.00 so far · ≈ $4.00 at finish" in text
    assert f'href="/jobs/{running.pk}/"' in _page(response)


def test_the_chart_and_its_data_table_carry_the_same_numbers(alice_client, fake_api, alice, alice_token, priced):
    _finished(fake_api, alice, alice_token, at=_this_month_at(), tokens=2_500_000)  # $1.00
    earlier = (timezone.localtime() - dt.timedelta(days=62)).replace(day=10, hour=12)
    _finished(fake_api, alice, alice_token, at=earlier, tokens=25_000_000)  # $10.00
    page = _page(alice_client.get("/spend/"))
    assert re.search(
        r'<svg class="chart-svg"[^>]*role="img"[^>]*aria-labelledby="spend-chart-title spend-chart-desc"', page
    )
    assert 'data-bars="12"' in page
    assert f"<title>{earlier:%B %Y}: $10.00 finished</title>" in page
    assert page.count('class="bar-finished"') == 2 + 1  # two months with spend, and the legend
    rows = re.findall(r"<tr><th scope=\"row\">([^<]+)</th><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", page)
    table = {month: (finished, total) for month, finished, _flying, total in rows}
    assert len(rows) == 12
    assert table[f"{earlier:%B %Y}"] == ("$10.00", "$10.00")
    assert table[f"{timezone.localtime():%B %Y}"] == ("$1.00", "$1.00")


def test_months_follow_ftdash_time_zone_at_a_month_boundary(
    settings, alice_client, fake_api, alice, alice_token, priced
):
    settings.TIME_ZONE = "America/New_York"
    # 03:00 UTC on March 1st is still February 28th, 22:00 in New York; 06:00 UTC is March.
    _finished(fake_api, alice, alice_token, at=dt.datetime(2025, 3, 1, 3, 0, tzinfo=UTC), tokens=2_500_000)
    _finished(fake_api, alice, alice_token, at=dt.datetime(2025, 3, 1, 6, 0, tzinfo=UTC), tokens=5_000_000)
    text = _text(alice_client.get("/spend/"))
    assert "February 2025: $1.00" in text
    assert "March 2025: $2.00" in text
    assert "America/New_York time zone" in text
    rows = list(csv.reader(io.StringIO(_page(alice_client.get("/spend/export.csv")))))
    assert sorted(row[0] for row in rows[1:]) == ["2025-02", "2025-03"]


def test_a_price_changed_after_a_job_finished_leaves_its_cost(alice_client, fake_api, alice, alice_token, priced):
    job = _finished(fake_api, alice, alice_token, at=_this_month_at(), tokens=2_500_000)  # $1.00 at $0.40
    TrainingPrice.objects.filter(workspace=priced, pattern="Qwen/*").update(usd_per_million=Decimal("4.00"))
    refreshed(job)
    text = _text(alice_client.get("/spend/"))
    assert "(this month): $1.00" in text
    assert "$10.00" not in text


def test_the_spend_csv(alice_client, fake_api, alice, alice_token, priced):
    finished = _finished(fake_api, alice, alice_token, at=_this_month_at(), tokens=2_500_000, label="=HYPERLINK(x)")
    running = track_remote_job(
        fake_api, alice, alice_token, total_steps=100, trained_steps=50, trained_tokens=5_000_000
    )
    response = alice_client.get("/spend/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(_page(response))))
    assert list(rows[0]) == [
        "month",
        "finished_at",
        "job_id",
        "label",
        "model",
        "tracked_by",
        "trained_tokens",
        "price_usd_per_million",
        "price_source",
        "cost_usd",
    ]
    done, flying = rows
    assert done["month"] == f"{timezone.localtime():%Y-%m}" and done["job_id"] == finished.job_id
    assert done["label"] == "'=HYPERLINK(x)"  # a formula, defused
    assert (done["model"], done["tracked_by"], done["trained_tokens"]) == (QWEN, "alice", "2500000")
    assert Decimal(done["price_usd_per_million"]) == Decimal("0.40") and done["price_source"] == "workspace"
    assert Decimal(done["cost_usd"]) == Decimal("1.00") and done["finished_at"]
    assert flying["month"] == "in flight" and flying["job_id"] == running.job_id and flying["finished_at"] == ""
    assert Decimal(flying["cost_usd"]) == Decimal("4.00")


def test_the_spend_page_runs_a_bounded_number_of_queries(alice_client, fake_api, alice, alice_token, priced):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get("/spend/").status_code == 200
            assert alice_client.get("/spend/export.csv").status_code == 200
        return len(captured)

    now = timezone.localtime()
    for months_ago in range(2):
        _finished(fake_api, alice, alice_token, at=now - dt.timedelta(days=31 * months_ago + 1), tokens=1_000_000)
    track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=5, trained_tokens=100_000)
    few = queries()
    for months_ago in range(2, 14):
        _finished(
            fake_api,
            alice,
            alice_token,
            at=now - dt.timedelta(days=31 * months_ago),
            tokens=1_000_000,
            label=f"l{months_ago}",
        )
    for _ in range(4):
        track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=5, trained_tokens=100_000)
    assert queries() == few


# --- choosing a workspace, and scoping --------------------------------------------------------


def test_the_spend_page_shows_the_workspace_chosen(alice_client, fake_api, alice, team, team_token):
    _price(team, "*", "1.00")
    _finished(fake_api, alice, team_token, at=_this_month_at(), tokens=3_000_000, workspace=team)

    own = _text(alice_client.get("/spend/"))
    assert "No spend in" in own  # her personal workspace first
    chosen = alice_client.get(f"/spend/?workspace={team.pk}")
    assert "(this month): $3.00" in _text(chosen)
    assert re.search(rf'<option value="{team.pk}" selected>Research team</option>', _page(chosen))


@pytest.mark.parametrize("asked", ["foreign", "nonsense", "missing"])
def test_another_workspaces_spend_is_never_shown(alice_client, charlie, asked):
    foreign = charlie.personal_workspace
    value = {"foreign": str(foreign.pk), "nonsense": "abc", "missing": "999999"}[asked]
    assert alice_client.get(f"/spend/?workspace={value}").status_code == 404
    assert alice_client.get(f"/spend/export.csv?workspace={value}").status_code == 404


def test_an_outsider_sees_nothing_of_a_teams_spend(fake_api, alice, team, team_token, charlie):
    _price(team, "*", "1.00")
    job = _finished(fake_api, alice, team_token, at=_this_month_at(), tokens=3_000_000, workspace=team)
    client = signed_in(charlie)
    assert job.job_id not in _page(client.get("/spend/"))
    assert job.job_id not in _page(client.get("/spend/export.csv"))
    assert client.post(f"/workspaces/{team.pk}/budget/", {"monthly_budget_usd": "5"}).status_code == 404


# --- the budget ----------------------------------------------------------------------------------


def test_an_owner_sets_the_budget_and_it_is_audited(alice_client, alice, team):
    response = alice_client.post(
        f"/workspaces/{team.pk}/budget/", {"monthly_budget_usd": "$1,250.50", "expensive_job_usd": "40"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/spend/?workspace={team.pk}#budget"
    team.refresh_from_db()
    assert (team.monthly_budget_usd, team.expensive_job_usd) == (Decimal("1250.50"), Decimal("40.00"))
    audit = AuditEvent.objects.get(workspace=team, action="workspace.budget")
    assert audit.actor == alice
    assert audit.description == (
        "changed the monthly budget from none to $1,250.50 and the expensive-job warning from none to $40.00"
    )
    page = alice_client.get(response["Location"])
    text = _text(page)
    assert "Saved the budget of Research team." in text
    assert "$0.00 of $1,250.50 budget (0%)" in text
    assert "more than $40.00" in text
    assert 'value="1250.50"' in _page(page)

    # Empty clears.
    alice_client.post(f"/workspaces/{team.pk}/budget/", {"monthly_budget_usd": "", "expensive_job_usd": ""})
    team.refresh_from_db()
    assert team.monthly_budget_usd is None and team.expensive_job_usd is None
    assert "No monthly budget set" in _text(alice_client.get(f"/spend/?workspace={team.pk}"))


@pytest.mark.parametrize(
    "value,message",
    [
        ("0", "Enter a positive amount (more than $0), or leave it empty."),
        ("-5", "Enter a positive amount (more than $0), or leave it empty."),
        ("NaN", "Enter an amount in US dollars, like 250 or 99.50."),
        ("inf", "Enter an amount in US dollars, like 250 or 99.50."),
        ("lots", "Enter an amount in US dollars, like 250 or 99.50."),
        ("12.345", "Use whole cents at most (two decimal places)."),
        ("1e12", "Enter an amount under $1,000,000,000."),
    ],
)
def test_a_bad_budget_is_refused_with_a_message(alice_client, team, value, message):
    for field in ("monthly_budget_usd", "expensive_job_usd"):
        response = alice_client.post(f"/workspaces/{team.pk}/budget/", {field: value})
        assert response.status_code == 422
        page = _page(response)
        assert message.replace("'", "&#x27;") in page
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page)
        assert f'value="{value}"' in page  # what was typed, kept to be corrected
    team.refresh_from_db()
    assert team.monthly_budget_usd is None and team.expensive_job_usd is None
    assert not AuditEvent.objects.filter(workspace=team, action="workspace.budget").exists()


def test_only_owners_see_and_use_the_budget_form(team, bob, alice):
    bob_client = signed_in(bob)
    page = _page(bob_client.get(f"/spend/?workspace={team.pk}"))
    assert "Monthly budget (USD)" not in page
    assert "Only the owners of Research team can set its budget." in page
    assert bob_client.post(f"/workspaces/{team.pk}/budget/", {"monthly_budget_usd": "5"}).status_code == 403
    team.refresh_from_db()
    assert team.monthly_budget_usd is None

    owner_page = _page(signed_in(alice).get(f"/spend/?workspace={team.pk}"))
    assert '<label for="budget_monthly_budget_usd">Monthly budget (USD)</label>' in owner_page
    assert "Warn when one job is projected to cost more than $</label>" in owner_page


def test_a_viewer_sees_the_budget_bar(fake_api, alice, team, team_token):
    team.monthly_budget_usd = Decimal("20")
    team.save()
    _price(team, "*", "1.00")
    _finished(fake_api, alice, team_token, at=_this_month_at(), tokens=5_000_000, workspace=team)
    viewer = new_user("vera")
    Membership.objects.create(workspace=team, user=viewer, role=Membership.Role.VIEWER)
    assert "$5.00 of $20.00 budget (25%)" in _text(signed_in(viewer).get(f"/spend/?workspace={team.pk}"))
    assert Workspace.objects.get(pk=team.pk).monthly_budget_usd == Decimal("20")


# --- the chart's geometry (pure) -----------------------------------------------------------------


def test_bars_stack_from_zero_and_bad_values_draw_nothing():
    from jobs.charts import bar_chart

    chart = bar_chart(
        "Spend by month",
        [("Jan", "a", [1.0, 0.0]), ("Feb", "b", [float("nan"), -4.0]), ("Mar", "c", [1.0, 1.0])],
        ["finished", "in-flight"],
    )
    _, top, _, bottom = chart.plot
    january, february, march = chart.bars
    assert [t.label for t in chart.y_ticks][0] == "$0.00" and chart.y_ticks[-1].label == "$2.00"
    assert all(segment.height == 0 for segment in february.segments)
    finished, flying = march.segments
    assert finished.y + finished.height == bottom  # from the axis up
    assert flying.y + flying.height == finished.y and flying.y == top  # stacked, to the top
    assert january.segments[0].height == finished.height
    assert not chart.empty
    assert bar_chart("Nothing", [("Jan", "", [0, 0])], ["finished", "in-flight"]).empty
