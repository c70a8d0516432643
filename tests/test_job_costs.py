"""What a job costs, as people see it: on its card, in the Cost panel of its page (with the working
and where the price came from), in compare and in the exports; frozen when the job finishes, so
that a later price change leaves it alone until an owner presses "Recalculate with today's
prices" (audited). Jobs with known token counts on the fake Token Factory, over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from html import unescape

import pytest
from django.utils import dateformat, timezone

from jobs import services
from jobs.models import AuditEvent, Membership, TrackedJob, TrainingPrice
from jobs.pricing import PriceEntry
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.django_client import job_page, signed_in
from tests.support.tracked_jobs import refreshed

TOKENS = 2_048_000  # × $0.40 per 1M = $0.8192; at 25 of 100 steps, ≈ $3.2768 at finish
RUNNING = {"total_steps": 100, "trained_steps": 25, "trained_tokens": TOKENS}


def _price(workspace, pattern: str = "Qwen/*", usd: str = "0.40") -> TrainingPrice:
    return TrainingPrice.objects.create(workspace=workspace, pattern=pattern, usd_per_million=Decimal(usd))


def _text(html: str) -> str:
    """What a person reads: tags as spaces (a term and its value apart), entities decoded,
    white space collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def _cost_panel(html: str) -> str:
    match = re.search(r'<section class="panel cost-panel".*?</section>', html, re.DOTALL)
    assert match, "the job page has no Cost panel"
    return match.group(0)


def _card(client, job: TrackedJob) -> str:
    page = client.get("/").content.decode()
    match = re.search(rf'<li class="job-card" id="job-{job.pk}".*?</li>', page, re.DOTALL)
    assert match, f"no card for job {job.pk} on the dashboard"
    return match.group(0)


def _card_cost(client, job: TrackedJob) -> str:
    match = re.search(r'<p class="job-cost">(.*?)</p>', _card(client, job), re.DOTALL)
    assert match, "the card has no cost line"
    return match.group(1)


def _version(html: str) -> str:
    return re.search(r'data-live-version="([^"]+)"', html).group(1)


def _team_job(fake_api, alice, team, **fields) -> TrackedJob:
    token = services.token_create(workspace=team, user=alice, name="team", secret=ALICE_SECRET)
    remote = fake_api.add_job(**fields)
    return services.job_track(workspace=team, token=token, job_id=remote["id"], user=alice)


# --- a running job ---------------------------------------------------------------------------


def test_a_running_job_shows_cost_so_far_and_at_finish_on_its_card_and_page(alice_client, fake_api, alice, alice_token):
    _price(alice.personal_workspace)
    job = track_remote_job(fake_api, alice, alice_token, **RUNNING)

    assert _text(_card_cost(alice_client, job)) == "Cost: $0.82 so far · ≈ $3.28 at finish"
    panel = _text(_cost_panel(job_page(alice_client, job)))
    assert "Cost so far $0.82" in panel
    assert "Projected at finish ≈ $3.28" in panel
    assert "Trained tokens 2,048,000" in panel
    assert "2,048,000 trained tokens × $0.40 per 1M tokens = $0.82" in panel
    assert "$0.82 × 100 total steps ÷ 25 trained steps ≈ $3.28" in panel
    assert "$0.40 per 1M training tokens, from this workspace's price table (Qwen/*)" in panel
    assert "Prices in US dollars" in panel
    assert "Final cost" not in panel


def test_the_cost_follows_the_job_as_it_trains(alice_client, fake_api, alice, alice_token):
    _price(alice.personal_workspace)
    job = track_remote_job(
        fake_api, alice, alice_token, total_steps=100, trained_steps=25, trained_tokens=TOKENS, tokens_per_step=81_920
    )
    assert _text(_card_cost(alice_client, job)) == "Cost: $0.82 so far · ≈ $3.28 at finish"
    fake_api.advance(job.job_id, 25)
    refreshed(job)
    # 50 steps × 81,920 tokens = 4,096,000 tokens: $1.64 so far, still ≈ $3.28 at finish.
    assert _text(_card_cost(alice_client, job)) == "Cost: $1.64 so far · ≈ $3.28 at finish"


@pytest.mark.parametrize(
    "fields",
    [
        {"total_steps": 100, "trained_steps": 0, "trained_tokens": 0},
        {"total_steps": None, "trained_steps": 10, "trained_tokens": 40_960},
    ],
    ids=["no-step-done", "total-unknown"],
)
def test_the_projection_is_not_yet_known_before_a_step_or_without_a_total(
    alice_client, fake_api, alice, alice_token, fields
):
    _price(alice.personal_workspace)
    job = track_remote_job(fake_api, alice, alice_token, **fields)
    panel = _text(_cost_panel(job_page(alice_client, job)))
    assert "Projected at finish not yet known" in panel
    assert "at finish" not in _text(_card_cost(alice_client, job))


def test_the_page_names_the_instance_defaults_and_a_workspace_price_wins_over_them(
    alice_client, fake_api, alice, alice_token, settings
):
    settings.FTDASH_TRAINING_PRICES = [PriceEntry("Qwen/Qwen3-4B", Decimal("0.5")), PriceEntry("*", Decimal("9"))]
    job = track_remote_job(fake_api, alice, alice_token, **RUNNING)
    panel = _text(_cost_panel(job_page(alice_client, job)))
    assert "$0.50 per 1M training tokens, from this instance's default prices (Qwen/Qwen3-4B)" in panel
    assert "Cost so far $1.02" in panel  # 2,048,000 × $0.50 per 1M = $1.024

    _price(alice.personal_workspace, pattern="qwen/*", usd="0.125")
    panel = _text(_cost_panel(job_page(alice_client, job)))
    assert "$0.125 per 1M training tokens, from this workspace's price table (qwen/*)" in panel
    assert "2,048,000 trained tokens × $0.125 per 1M tokens = $0.26" in panel


def test_the_price_in_token_factorys_model_information_is_used_last(alice_client, fake_api, alice, alice_token):
    fake_api.add_base_model("Qwen/Qwen3-4B", training_price_per_million_tokens=0.4)
    job = track_remote_job(fake_api, alice, alice_token, **RUNNING)
    refreshed(job)  # reads /v0/models beside the job
    panel = _text(_cost_panel(job_page(alice_client, job)))
    assert "$0.40 per 1M training tokens, from Token Factory's model information" in panel
    assert "Cost so far $0.82" in panel


@pytest.mark.parametrize(
    "tokens", [None, -2048, float("nan"), 10**14, "2048000"], ids=["null", "negative", "nan", "huge", "text"]
)
def test_an_unknown_or_absurd_token_count_is_never_money(alice_client, fake_api, alice, alice_token, tokens):
    _price(alice.personal_workspace)
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=25, trained_tokens=tokens)
    assert _text(_card_cost(alice_client, job)) == "Cost: No token count yet"
    panel = _text(_cost_panel(job_page(alice_client, job)))
    assert "Cost so far No token count yet" in panel
    assert "Trained tokens No token count yet" in panel
    assert "$0.40 per 1M training tokens" in panel  # the price is known, the count is not
    assert "trained tokens ×" not in panel and "≈" not in panel
    document = json.loads(alice_client.get(f"/jobs/{job.pk}/export.json").content)
    assert document["cost"]["so_far"] is None and document["cost"]["trained_tokens"] is None


# --- no price -----------------------------------------------------------------------------------


def test_no_price_says_so_and_offers_owners_a_link_to_add_one(fake_api, alice, bob, team):
    job = _team_job(fake_api, alice, team, **RUNNING)
    alice_page = job_page(signed_in(alice), job)
    bob_page = job_page(signed_in(bob), job)
    for html in (alice_page, bob_page):
        panel = _cost_panel(html)
        assert "No training price for <code>Qwen/Qwen3-4B</code>" in panel
        assert "$" not in _text(panel)
    link = f'<a href="/workspaces/{team.pk}/prices/">Add a training price</a>'
    assert link in _cost_panel(alice_page)  # alice owns the team
    assert "Add a training price" not in bob_page  # bob is a member
    assert signed_in(alice).get(f"/workspaces/{team.pk}/prices/").status_code == 200
    card = _card_cost(signed_in(bob), job)
    assert card.endswith("No training price for <code>Qwen/Qwen3-4B</code>")

    # The live part is rendered once per variant and shared: an owner's copy never reaches a member.
    alice_poll = signed_in(alice).get(f"/jobs/{job.pk}/live/?v={job.pk}.stale").content.decode()
    bob_poll = signed_in(bob).get(f"/jobs/{job.pk}/live/?v={job.pk}.stale").content.decode()
    assert link in alice_poll
    assert "No training price for <code>Qwen/Qwen3-4B</code>" in bob_poll and "Add a training price" not in bob_poll


# --- a finished job: frozen, and recalculated on request -------------------------------------------


def _finished(fake_api, alice, alice_token) -> TrackedJob:
    """A job that ran at $0.40 per 1M tokens and finished with 2,048,000 tokens: $0.82."""
    _price(alice.personal_workspace)
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=25, tokens_per_step=20_480)
    fake_api.advance(job.job_id, 75)
    return refreshed(job)


def test_changing_a_price_after_a_job_finished_leaves_its_cost_unchanged(alice_client, fake_api, alice, alice_token):
    job = _finished(fake_api, alice, alice_token)
    assert job.status == "succeeded" and job.cost_frozen_at is not None
    frozen_on = dateformat.format(timezone.localtime(job.cost_frozen_at), "j M Y")

    TrainingPrice.objects.filter(workspace=alice.personal_workspace).update(usd_per_million=Decimal("0.80"))

    assert _text(_card_cost(alice_client, job)) == "Cost: $0.82"
    panel = _text(_cost_panel(job_page(alice_client, job)))
    assert "Final cost $0.82" in panel
    assert "2,048,000 trained tokens × $0.40 per 1M tokens = $0.82" in panel
    assert f"Price frozen when the job finished, {frozen_on}" in panel
    assert "Projected" not in panel and "so far" not in panel
    cost = json.loads(alice_client.get(f"/jobs/{job.pk}/export.json").content)["cost"]
    assert cost["final"] == "0.819200" and cost["frozen"] is True and cost["price_usd_per_million"] == "0.4000"


def test_recalculating_with_todays_prices_asks_first_changes_the_cost_and_is_audited(
    alice_client, fake_api, alice, alice_token
):
    job = _finished(fake_api, alice, alice_token)
    TrainingPrice.objects.filter(workspace=alice.personal_workspace).update(usd_per_million=Decimal("0.80"))
    page = job_page(alice_client, job)
    assert f'href="/jobs/{job.pk}/recalculate-cost/"' in page
    card_version = re.search(r'id="job-\d+" data-live-key="\d+" data-live-version="([^"]+)"', _card(alice_client, job))

    confirm = _text(alice_client.get(f"/jobs/{job.pk}/recalculate-cost/").content.decode())
    assert "Recalculate with today's prices?" in confirm
    assert "cost $0.82" in confirm and "With today's prices: $1.64" in confirm
    assert TrackedJob.objects.get(pk=job.pk).final_cost_usd == Decimal("0.8192")  # a GET changes nothing
    assert not AuditEvent.objects.filter(action="job.cost_recalculate").exists()

    response = alice_client.post(f"/jobs/{job.pk}/recalculate-cost/", follow=True)
    assert "Recalculated the cost with today's prices: $1.64 (was $0.82)." in _text(response.content.decode())
    panel = _text(_cost_panel(response.content.decode()))
    assert "Final cost $1.64" in panel and "× $0.80 per 1M tokens = $1.64" in panel
    audit = AuditEvent.objects.get(action="job.cost_recalculate")
    assert audit.actor_name == "alice"
    assert audit.description == f"recalculated the cost of {job.job_id} with today's prices: $1.64 (was $0.82)"

    # Open pages learn of it at their next poll: the frozen cost is part of the live version.
    poll = alice_client.get(f"/jobs/{job.pk}/live/?v={job.pk}.{_version(page)}")
    assert poll.status_code == 200 and "Final cost $1.64" in _text(poll.content.decode())
    cards = alice_client.get(f"/live/cards/?v={job.pk}.{card_version.group(1)}")
    assert cards.status_code == 200 and '<p class="job-cost"><span class="visually-hidden">Cost: </span>$1.64</p>' in (
        cards.content.decode()
    )


def test_only_owners_may_recalculate_and_only_finished_jobs(fake_api, alice, bob, team, alice_client, alice_token):
    running = track_remote_job(fake_api, alice, alice_token, **RUNNING)
    assert "Recalculate with today's prices" not in job_page(alice_client, running)
    page = alice_client.post(f"/jobs/{running.pk}/recalculate-cost/", follow=True).content.decode()
    assert "This job has not finished: its cost follows today's prices until it does." in _text(page)

    finished = _team_job(fake_api, alice, team, status="succeeded", trained_steps=100, trained_tokens=TOKENS)
    assert "Recalculate with today's prices" in job_page(signed_in(alice), finished)
    assert "Recalculate with today's prices" not in job_page(signed_in(bob), finished)
    assert signed_in(bob).post(f"/jobs/{finished.pk}/recalculate-cost/").status_code == 403
    Membership.objects.filter(workspace=team, user=bob).update(role=Membership.Role.VIEWER)
    assert signed_in(bob).get(f"/jobs/{finished.pk}/recalculate-cost/").status_code == 403
    assert not AuditEvent.objects.filter(action="job.cost_recalculate").exists()


# --- compare and exports ------------------------------------------------------------------------


def test_compare_has_a_cost_row(alice_client, fake_api, alice, alice_token):
    _price(alice.personal_workspace)
    priced = track_remote_job(fake_api, alice, alice_token, **RUNNING)
    unpriced = track_remote_job(fake_api, alice, alice_token, model="meta-llama/Llama-3.1-8B-Instruct", **RUNNING)
    page = alice_client.get(f"/jobs/compare/?ids={priced.pk}&ids={unpriced.pk}").content.decode()
    row = re.search(r"<tr[^>]*>\s*<th scope=\"row\">Cost.*?</tr>", page, re.DOTALL)
    assert row, "no Cost row in compare"
    cells = [_text(cell) for cell in re.findall(r"<td>(.*?)</td>", row.group(0), re.DOTALL)]
    assert cells == ["$0.82 so far · ≈ $3.28 at finish", "No training price for meta-llama/Llama-3.1-8B-Instruct"]


def test_the_json_export_carries_the_cost(alice_client, fake_api, alice, alice_token):
    _price(alice.personal_workspace)
    priced = track_remote_job(fake_api, alice, alice_token, **RUNNING)
    unpriced = track_remote_job(fake_api, alice, alice_token, model="meta-llama/Llama-3.1-8B-Instruct", **RUNNING)
    assert json.loads(alice_client.get(f"/jobs/{priced.pk}/export.json").content)["cost"] == {
        "currency": "USD",
        "so_far": "0.819200",
        "projected": "3.276800",
        "final": None,
        "trained_tokens": TOKENS,
        "price_usd_per_million": "0.4000",
        "price_source": "workspace",
        "price_pattern": "Qwen/*",
        "frozen": False,
    }
    assert json.loads(alice_client.get(f"/jobs/{unpriced.pk}/export.json").content)["cost"] == {
        "currency": "USD",
        "so_far": None,
        "projected": None,
        "final": None,
        "trained_tokens": TOKENS,
        "price_usd_per_million": None,
        "price_source": None,
        "price_pattern": None,
        "frozen": False,
    }


def test_the_dashboard_csv_has_cost_columns(alice_client, fake_api, alice, alice_token):
    finished = _finished(fake_api, alice, alice_token)
    running = track_remote_job(fake_api, alice, alice_token, **RUNNING)
    unpriced = track_remote_job(fake_api, alice, alice_token, model="meta-llama/Llama-3.1-8B-Instruct", **RUNNING)
    rows = list(csv.DictReader(io.StringIO(alice_client.get("/jobs/export.csv").content.decode())))
    by_id = {row["job_id"]: row for row in rows}
    header = list(rows[0])
    start = header.index("cost_usd")
    assert header[start : start + 3] == ["cost_usd", "projected_cost_usd", "price_source"]
    assert [by_id[running.job_id][k] for k in ("cost_usd", "projected_cost_usd", "price_source")] == [
        "0.819200",
        "3.276800",
        "workspace",
    ]
    assert [by_id[finished.job_id][k] for k in ("cost_usd", "projected_cost_usd", "price_source")] == [
        "0.819200",
        "",
        "workspace",
    ]
    assert [by_id[unpriced.job_id][k] for k in ("cost_usd", "projected_cost_usd", "price_source")] == ["", "", ""]
