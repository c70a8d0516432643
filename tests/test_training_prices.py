"""Training prices: the table a workspace's owners keep (its page, the team page's section, the
personal Settings page), and where a job's price comes from, against the fake Token Factory over
HTTP: the workspace's table, then the instance's defaults, then Token Factory's model information,
the most specific pattern winning in each."""

from __future__ import annotations

import html
from decimal import Decimal

import pytest

from jobs import costs, services
from jobs.models import Membership, TrackedJob, TrainingPrice
from jobs.pricing import PriceEntry
from tests.support.accounts import new_user, track_remote_job
from tests.support.django_client import signed_in

BASE_MODEL = "Qwen/Qwen3-4B"


def _page(response) -> str:
    return html.unescape(response.content.decode())


def _prices_url(workspace) -> str:
    return f"/workspaces/{workspace.pk}/prices/"


def _add(client, workspace, pattern, price, **extra):
    return client.post(_prices_url(workspace), {"pattern": pattern, "usd_per_million": price}, follow=True, **extra)


def _rows(workspace) -> list[tuple[str, Decimal]]:
    return list(
        TrainingPrice.objects.filter(workspace=workspace).order_by("pattern").values_list("pattern", "usd_per_million")
    )


def _cost(job: TrackedJob) -> costs.JobCost:
    return costs.cost_of(TrackedJob.objects.get(pk=job.pk))


@pytest.fixture
def dave(db, team):
    """A Viewer of the team."""
    user = new_user("dave")
    Membership.objects.create(workspace=team, user=user, role=Membership.Role.VIEWER)
    return user


# --- the page -----------------------------------------------------------------------------------


def test_an_empty_table_says_so_and_explains_where_prices_come_from(alice_client, alice_workspace, settings):
    settings.FTDASH_TRAINING_PRICES = []
    page = _page(alice_client.get(_prices_url(alice_workspace)))
    assert "<h1>Training prices</h1>" in page
    assert "No training prices yet." in page
    assert "Prices in US dollars" in page
    assert "This instance's default prices" in page and "none set." in page
    assert "Token Factory's model information" in page
    assert "the most specific pattern wins" in page
    assert ">Model or pattern<" in page and ">USD per 1M training tokens<" in page
    assert ">Add price</button>" in page


def test_an_owner_adds_a_price_and_it_is_listed_with_who_added_it_and_audited(alice_client, alice_workspace, make_job):
    make_job(model=BASE_MODEL)
    page = _page(_add(alice_client, alice_workspace, BASE_MODEL, "0.4"))
    assert f"Added the training price {BASE_MODEL}: 0.40 USD per 1M training tokens." in page
    assert "No job in this workspace uses a model matching" not in page
    assert _rows(alice_workspace) == [(BASE_MODEL, Decimal("0.4"))]
    row = page.split('id="price-')[1].split("</tr>")[0]
    assert f"<code>{BASE_MODEL}</code>" in row and "<td>0.40</td>" in row and "alice" in row
    assert "Change price" in row and "Remove" in row
    audit = _page(alice_client.get(f"/workspaces/{alice_workspace.pk}/audit/"))
    assert f"added the training price {BASE_MODEL} = 0.40 USD per 1M tokens" in audit


def test_a_pattern_no_job_uses_is_accepted_with_a_note(alice_client, alice_workspace, make_job):
    make_job(model=BASE_MODEL)
    page = _page(_add(alice_client, alice_workspace, "meta-llama/*", "0.8"))
    assert "Added the training price meta-llama/*" in page
    assert "No job in this workspace uses a model matching meta-llama/* yet." in page
    assert _rows(alice_workspace) == [("meta-llama/*", Decimal("0.8"))]


def test_adding_the_same_pattern_again_changes_its_price(alice_client, alice_workspace, bob):
    _add(alice_client, alice_workspace, "Qwen/*", "0.4")
    page = _page(_add(alice_client, alice_workspace, "qwen/*", "0.8"))  # patterns are not case-sensitive
    assert "Changed the training price of qwen/* from 0.40 to 0.80 USD per 1M training tokens." in page
    assert _rows(alice_workspace) == [("qwen/*", Decimal("0.8"))]
    assert "add the same model or pattern again" in page
    audit = _page(alice_client.get(f"/workspaces/{alice_workspace.pk}/audit/"))
    assert "changed the training price of qwen/* from 0.40 to 0.80 USD per 1M tokens" in audit


def test_a_rows_change_price_link_starts_the_form_with_its_pattern(alice_client, alice_workspace):
    _add(alice_client, alice_workspace, "meta-llama/Llama-3.1-*", "0.5")
    page = alice_client.get(_prices_url(alice_workspace)).content.decode()
    assert "?pattern=meta-llama/Llama-3.1-%2A#add-price" in page
    form = alice_client.get(_prices_url(alice_workspace) + "?pattern=meta-llama/Llama-3.1-%2A").content.decode()
    assert 'value="meta-llama/Llama-3.1-*"' in form
    # Garbage in the link only leaves the form empty.
    assert alice_client.get(_prices_url(alice_workspace) + "?pattern=a%20b").status_code == 200


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("-0.4", "A price cannot be negative."),
        ("NaN", "A price must be a finite number of USD per 1M training tokens."),
        ("inf", "A price must be a finite number of USD per 1M training tokens."),
        ("", "Enter a price in USD per 1M training tokens, such as 0.4."),
        ("   ", "Enter a price in USD per 1M training tokens, such as 0.4."),
        ("cheap", "“cheap” is not a number: enter USD per 1M training tokens, such as 0.4."),
        ("0,4", "“0,4” is not a number"),
        ("1000.01", "1000.01 USD per 1M tokens is over the 1000 limit"),
        ("5000", "5000 USD per 1M tokens is over the 1000 limit"),
    ],
)
def test_a_bad_price_is_refused_with_a_message_and_the_form_again(alice_client, alice_workspace, price, message):
    response = alice_client.post(_prices_url(alice_workspace), {"pattern": "Qwen/*", "usd_per_million": price})
    assert response.status_code == 422
    page = _page(response)
    assert message in page
    assert 'aria-invalid="true"' in page
    assert 'value="Qwen/*"' in page  # what was typed stays
    assert not _rows(alice_workspace)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "Enter a model name, such as meta-llama/Llama-3.1-8B-Instruct, or a pattern like Qwen/*."),
        ("Qwen 3", "A model name or pattern has no spaces."),
        ("x" * 301, "A model name or pattern is at most 300 characters."),
    ],
)
def test_a_bad_pattern_is_refused_with_a_message(alice_client, alice_workspace, pattern, message):
    response = alice_client.post(_prices_url(alice_workspace), {"pattern": pattern, "usd_per_million": "0.4"})
    assert response.status_code == 422
    assert message in _page(response)
    assert not _rows(alice_workspace)


def test_zero_is_a_price(alice_client, alice_workspace):
    page = _page(_add(alice_client, alice_workspace, "free-org/*", "0"))
    assert "Added the training price free-org/*: 0.00 USD per 1M training tokens." in page
    assert _rows(alice_workspace) == [("free-org/*", Decimal(0))]


def test_remove_asks_first_then_removes_the_row_and_audits_it(alice_client, alice_workspace):
    _add(alice_client, alice_workspace, "Qwen/*", "0.4")
    price = TrainingPrice.objects.get(workspace=alice_workspace)
    url = f"/workspaces/{alice_workspace.pk}/prices/{price.pk}/remove/"
    confirm = _page(alice_client.get(url))
    assert "Remove the training price Qwen/*?" in confirm and ">Remove price</button>" in confirm
    assert _rows(alice_workspace)  # asking changes nothing
    page = _page(alice_client.post(url, follow=True))
    assert "Removed the training price Qwen/*." in page and "No training prices yet." in page
    assert not _rows(alice_workspace)
    audit = _page(alice_client.get(f"/workspaces/{alice_workspace.pk}/audit/"))
    assert "removed the training price Qwen/* = 0.40 USD per 1M tokens" in audit


def test_a_price_of_another_workspace_cannot_be_removed_through_yours(alice, alice_client, alice_workspace, team):
    other = services.training_price_set(team, "Qwen/*", "0.4", alice).price
    response = alice_client.post(f"/workspaces/{alice_workspace.pk}/prices/{other.pk}/remove/")
    assert response.status_code == 404
    assert TrainingPrice.objects.filter(pk=other.pk).exists()


def test_the_instance_defaults_are_listed_read_only(alice_client, alice_workspace, settings):
    settings.FTDASH_TRAINING_PRICES = [
        PriceEntry("meta-llama/Llama-3.1-8B-Instruct", Decimal("0.4")),
        PriceEntry("Qwen/*", Decimal("0.8")),
    ]
    page = _page(alice_client.get(_prices_url(alice_workspace)))
    defaults = page.split("This instance's default prices")[1].split("Token Factory's model information")[0]
    assert "FTDASH_TRAINING_PRICES" in defaults
    assert "<code>meta-llama/Llama-3.1-8B-Instruct</code>: 0.40 USD per 1M training tokens" in defaults
    assert "<code>Qwen/*</code>: 0.80 USD per 1M training tokens" in defaults
    assert "<form" not in defaults


# --- who may change the table --------------------------------------------------------------------


def test_members_and_viewers_read_the_table_but_cannot_change_it(alice, bob, dave, team):
    services.training_price_set(team, "Qwen/*", "0.4", alice)
    for user in (bob, dave):
        client = signed_in(user)
        page = _page(client.get(_prices_url(team)))
        assert "<code>Qwen/*</code>" in page and "<td>0.40</td>" in page
        assert "Only the workspace's owners can change its prices." in page
        assert ">Add price</button>" not in page and "Remove" not in page and "Change price" not in page
        assert client.post(_prices_url(team), {"pattern": "meta-llama/*", "usd_per_million": "9"}).status_code == 403
    assert _rows(team) == [("Qwen/*", Decimal("0.4"))]


def test_outsiders_get_404(charlie, team):
    assert signed_in(charlie).get(_prices_url(team)).status_code == 404


# --- the team page and the personal settings ---------------------------------------------------


def test_the_team_page_lists_the_prices_with_a_link_to_edit_them(alice, alice_client, bob, team):
    page = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert "Training prices" in page and "No training prices of this workspace's own yet" in page
    assert f'<a href="/workspaces/{team.pk}/prices/">Edit training prices</a>' in page
    services.training_price_set(team, "meta-llama/*", "0.35", alice)
    page = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert "<code>meta-llama/*</code>" in page and "<td>0.35</td>" in page
    member_page = _page(signed_in(bob).get(f"/teams/{team.pk}/"))
    assert "<code>meta-llama/*</code>" in member_page and "View training prices" in member_page
    assert "Edit training prices" not in member_page
    # The prices page leads back to the team.
    assert f'<a href="/teams/{team.pk}/">← Research team</a>' in _page(alice_client.get(_prices_url(team)))


def test_the_personal_workspace_prices_are_on_the_settings_page_linked_beside_the_username(
    alice, alice_client, alice_workspace
):
    dashboard = _page(alice_client.get("/"))
    user_menu = dashboard.split('class="nav-user"')[1].split("Sign out")[0]
    assert '<a class="nav-settings" href="/settings/">Settings</a>' in user_menu
    services.training_price_set(alice_workspace, BASE_MODEL, "0.4", alice)
    page = _page(alice_client.get("/settings/"))
    assert "<h1>Settings</h1>" in page and 'aria-current="page">Settings</a>' in page
    assert "Training prices" in page and f"<code>{BASE_MODEL}</code>" in page
    assert f'<a href="/workspaces/{alice_workspace.pk}/prices/">Edit training prices</a>' in page
    assert '<a href="/settings/">← Settings</a>' in _page(alice_client.get(_prices_url(alice_workspace)))


# --- finished jobs: priced when a price arrives, never rewritten after -----------------------------


def test_a_finished_job_without_a_price_gets_one_when_added_and_keeps_it_when_the_price_changes(
    fake_api, alice, alice_token, alice_client, alice_workspace, settings
):
    settings.FTDASH_TRAINING_PRICES = []
    job = track_remote_job(
        fake_api, alice, alice_token, status="succeeded", total_steps=100, trained_steps=100, trained_tokens=409_600
    )
    tokens = 409_600
    assert _cost(job).summary == f"No training price for {BASE_MODEL}"

    page = _page(_add(alice_client, alice_workspace, BASE_MODEL, "0.5"))
    assert "1 finished job(s) that had no price now have a final cost." in page
    first = _cost(job)
    assert first.frozen and first.so_far == Decimal(tokens) * Decimal("0.5") / 1_000_000
    assert first.price.source == costs.Source.WORKSPACE

    _add(alice_client, alice_workspace, BASE_MODEL, "2")
    _add(alice_client, alice_workspace, "Qwen/*", "3")
    assert _cost(job) == first  # the price of the moment it ended, not today's
    remove = TrainingPrice.objects.get(workspace=alice_workspace, pattern=BASE_MODEL)
    alice_client.post(f"/workspaces/{alice_workspace.pk}/prices/{remove.pk}/remove/")
    assert _cost(job) == first


# --- where the price comes from, against the fake over HTTP ---------------------------------------


def _refreshed(client, job) -> costs.JobCost:
    """The job after its page's Refresh (which reads the token's /v0/models), as costs see it."""
    assert client.post(f"/jobs/{job.pk}/refresh/").status_code == 302
    return _cost(job)


def test_token_factorys_model_information_prices_a_job_after_a_refresh(
    fake_api, alice, alice_token, alice_client, alice_workspace, settings
):
    settings.FTDASH_TRAINING_PRICES = []
    running_job = track_remote_job(
        fake_api, alice, alice_token, total_steps=100, trained_steps=10, trained_tokens=40_960
    )
    assert _cost(running_job).price is None
    fake_api.add_base_model(BASE_MODEL, training_price_per_million_tokens=0.4)
    fake_api.add_base_model("meta-llama/Llama-3.1-8B-Instruct", training_price_per_million_tokens="0.2")
    cost = _refreshed(alice_client, running_job)
    assert cost.price.usd_per_million == Decimal("0.4")
    assert cost.price.source == costs.Source.TOKEN_FACTORY
    assert cost.price.source_label == "Token Factory's model information"
    assert cost.tokens == 40_960 and cost.so_far == Decimal("0.016384")
    assert cost.projected == Decimal("0.16384")  # 10 of 100 steps done
    # The prices page shows what the workspace's tokens read (model names as the cache keeps them).
    listed = _page(alice_client.get(_prices_url(alice_workspace))).split("Token Factory's model information")[1]
    assert "0.40 USD per 1M training tokens" in listed and "0.20 USD per 1M training tokens" in listed


@pytest.mark.parametrize(
    "garbage",
    ["NaN", float("nan"), "Infinity", -0.4, "-1", 5000, "5000", {"usd": 0.4}, [0.4], "cheap", "", True],
    ids=repr,
)
def test_garbage_prices_in_the_model_information_are_ignored(fake_api, alice_client, running_job, settings, garbage):
    settings.FTDASH_TRAINING_PRICES = []
    fake_api.add_base_model(BASE_MODEL, training_price_per_million_tokens=garbage)
    cost = _refreshed(alice_client, running_job)
    assert cost.price is None and cost.so_far is None
    assert cost.summary == f"No training price for {BASE_MODEL}"
    assert alice_client.get(f"/jobs/{running_job.pk}/").status_code == 200


@pytest.mark.parametrize("status", [404, 405])
def test_an_api_without_models_changes_nothing(fake_api, alice_client, alice_workspace, running_job, settings, status):
    settings.FTDASH_TRAINING_PRICES = []
    fake_api.add_base_model(BASE_MODEL, training_price_per_million_tokens=0.4)
    fake_api.set_models(status=status)
    cost = _refreshed(alice_client, running_job)
    assert cost.price is None
    assert TrackedJob.objects.get(pk=running_job.pk).refresh_error == ""
    assert alice_client.get(_prices_url(alice_workspace)).status_code == 200
    # An instance default still applies.
    settings.FTDASH_TRAINING_PRICES = [PriceEntry("Qwen/*", Decimal("0.6"))]
    assert _cost(running_job).price.source == costs.Source.INSTANCE


def test_the_workspace_beats_the_instance_which_beats_token_factory(
    fake_api, alice_client, alice_workspace, running_job, settings
):
    fake_api.add_base_model(BASE_MODEL, training_price_per_million_tokens=0.4)
    settings.FTDASH_TRAINING_PRICES = []
    assert _refreshed(alice_client, running_job).price.source == costs.Source.TOKEN_FACTORY

    settings.FTDASH_TRAINING_PRICES = [PriceEntry("Qwen/*", Decimal("0.6"))]
    price = _cost(running_job).price
    assert (price.source, price.usd_per_million, price.pattern) == (costs.Source.INSTANCE, Decimal("0.6"), "Qwen/*")
    assert price.source_label == "this instance's default prices (Qwen/*)"

    _add(alice_client, alice_workspace, "qwen/*", "0.8")  # a glob of the workspace beats the instance's
    price = _cost(running_job).price
    assert (price.source, price.usd_per_million) == (costs.Source.WORKSPACE, Decimal("0.8"))
    assert price.source_label == "this workspace's price table (qwen/*)"

    row = TrainingPrice.objects.get(workspace=alice_workspace)
    alice_client.post(f"/workspaces/{alice_workspace.pk}/prices/{row.pk}/remove/")
    assert _cost(running_job).price.source == costs.Source.INSTANCE


def test_the_most_specific_pattern_wins(fake_api, alice, alice_token, alice_client, alice_workspace, settings):
    settings.FTDASH_TRAINING_PRICES = [PriceEntry("meta-llama/Llama-3.1-8B-Instruct", Decimal("9"))]
    exact = track_remote_job(fake_api, alice, alice_token, model="meta-llama/Llama-3.1-8B-Instruct", trained_steps=5)
    other_31 = track_remote_job(
        fake_api, alice, alice_token, model="meta-llama/Llama-3.1-70B-Instruct", trained_steps=5
    )
    other = track_remote_job(fake_api, alice, alice_token, model="meta-llama/Llama-3.2-1B", trained_steps=5)
    _add(alice_client, alice_workspace, "meta-llama/*", "1")
    _add(alice_client, alice_workspace, "meta-llama/Llama-3.1-*", "0.5")
    _add(alice_client, alice_workspace, "META-LLAMA/llama-3.1-8b-instruct", "0.3")
    prices = {job.pk: _cost(job).price for job in (exact, other_31, other)}
    assert prices[exact.pk].usd_per_million == Decimal("0.3")  # the exact name, whatever its case
    assert prices[other_31.pk].usd_per_million == Decimal("0.5")  # the longer glob
    assert prices[other.pk].usd_per_million == Decimal("1")
    assert {price.source for price in prices.values()} == {costs.Source.WORKSPACE}
