"""Who may call which URL, generated from the URLconf so that a new view cannot be forgotten.

ROUTES (tests/support/authorization.py) maps every URL name of ours to how its kwargs are built
from objects of a team workspace owned by alice, which methods it answers (each a read or a
write) and the minimum role each method needs. `test_the_table_covers_every_url` fails as soon
as a view is added without an entry there; the parametrized tests then hold every entry to the rules of
jobs/access.py: anonymous visitors are sent to sign in (HTMX ones with a 401 + HX-Redirect),
outsiders get 404, roles that are too low get 403.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import get_resolver, reverse

from jobs.models import Membership, MetricsKey, NotificationChannel, TrackedJob, TrainingAlertSettings, TrainingPrice
from tests.support.accounts import new_user
from tests.support.authorization import (
    BOB_CHANNEL_TARGET,
    CASES,
    CHANNEL_TARGET,
    HTMX,
    LABEL,
    MEMBER,
    OWNER,
    PRICE_PATTERN,
    PUBLIC,
    RANK,
    ROUTES,
    SIGNED_IN,
    SUFFIX,
    SUPERUSER,
    TEAM_NAME,
    TEAM_ROLES,
    TEAM_SECRET,
    TOKEN2_NAME,
    TOKEN_NAME,
    VIEWER,
    all_pattern_names,
    call,
    case_id,
    url_for,
    url_names,
)
from tests.support.django_client import signed_in

# --- the table is complete ----------------------------------------------------------------------


def test_the_table_covers_every_url():
    names = url_names()
    assert names, "the URLconf walk found nothing"
    missing = names - ROUTES.keys()
    stale = ROUTES.keys() - names
    assert not missing, f"URL names without an entry in ROUTES (add who may call them): {sorted(missing)}"
    assert not stale, f"ROUTES entries for URLs that no longer exist: {sorted(stale)}"


# Allowed POSTs whose effect is checked elsewhere, and why.
EFFECT_CHECKED_ELSEWHERE = {
    "password_change": "the table's body uses a wrong old password; test_tokens/test_first_run change one",
}


def test_every_write_someone_may_make_says_what_it_changes():
    for name, route in ROUTES.items():
        needed = route.methods.get("POST")
        if needed in (None, PUBLIC, SUPERUSER) or route.addressed_to or name in EFFECT_CHECKED_ELSEWHERE:
            continue
        assert route.effect is not None, f"{name}: an allowed POST must say what state it changes"


def test_the_table_says_what_every_entry_needs():
    for name, route in ROUTES.items():
        assert route.methods, name
        assert set(route.methods) <= {"GET", "POST"}, name
        assert all(role in RANK for role in route.methods.values()), name
        if route.scoped and not route.addressed_to:
            assert all(RANK[r] >= RANK[VIEWER] for r in route.methods.values()), name


def test_every_url_of_the_site_answers_an_anonymous_get_without_a_server_error(client, objects):
    """Every pattern, also any not in ROUTES (such as Django auth views pulled in with an
    include): a URL the site serves must not crash (a missing template is a 500)."""
    resolver = get_resolver()
    failures = []
    for name in sorted(all_pattern_names()):
        if name == "static":
            continue
        possibilities = resolver.reverse_dict.getlist(name)
        try:
            url = reverse(name, kwargs=ROUTES[name].kwargs(objects)) if name in ROUTES else None
        except Exception:
            url = None
        if url is None:
            # e.g. Django's password reset views, which take uidb64/token.
            params = possibilities[0][0][0][1] if possibilities else []
            url = reverse(name, kwargs={p: "MQ" if p == "uidb64" else "set-password" for p in params})
        response = Client(raise_request_exception=False).get(url)
        if response.status_code >= 500:
            failures.append(f"{name} {url} -> {response.status_code}")
    assert not failures, "URLs that crash: " + "; ".join(failures)


# --- anonymous visitors -------------------------------------------------------------------------

NON_PUBLIC = [c for c in CASES if ROUTES[c[0]].methods[c[1]] != PUBLIC]
PUBLIC_CASES = [c for c in CASES if ROUTES[c[0]].methods[c[1]] == PUBLIC]


@pytest.mark.parametrize("case", NON_PUBLIC, ids=case_id)
def test_anonymous_visitors_are_sent_to_sign_in(client, objects, case):
    name, method = case
    url = url_for(name, objects)
    response = call(client, name, method, objects)
    assert response.status_code == 302, response.status_code
    expected = "/accounts/login/?next=" + quote(url, safe="/") if ROUTES[name].login_next else "/accounts/login/"
    assert response["Location"] == expected
    assert not TrackedJob.objects.exclude(pk=objects["job"].pk).exists()


@pytest.mark.parametrize("case", NON_PUBLIC, ids=case_id)
def test_anonymous_htmx_requests_get_401_with_hx_redirect(client, objects, case):
    name, method = case
    response = call(client, name, method, objects, **HTMX)
    assert response.status_code == 401
    assert response["HX-Redirect"].startswith("/accounts/login/")


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=case_id)
def test_public_urls_answer_anonymous_visitors(client, objects, case):
    name, method = case
    response = call(client, name, method, objects)
    assert response.status_code < 500
    if ROUTES[name].bearer:  # no key sent: refused as the key's own scheme says, not sent to sign in
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    else:
        assert response.status_code not in (401, 403)
    assert "next=" not in response.get("Location", "")


# --- outsiders ----------------------------------------------------------------------------------

SCOPED = [c for c in CASES if ROUTES[c[0]].scoped]
SCOPED_OTHER_METHOD = [
    (name, m) for name, route in ROUTES.items() if route.scoped for m in ("GET", "POST") if m not in route.methods
]


@pytest.mark.parametrize("case", SCOPED, ids=case_id)
def test_outsiders_get_404_on_everything_of_the_team(objects, case):
    name, method = case
    response = call(signed_in(objects["charlie"]), name, method, objects)
    assert response.status_code == 404
    missing = call(signed_in(objects["charlie"]), name, method, _missing(objects))
    assert without_per_request_values(response.content) == without_per_request_values(missing.content)


def without_per_request_values(page: bytes) -> bytes:
    """The page without the values that differ on every request whatever it shows: the CSP
    nonce of its scripts and the CSRF token (masked anew each time)."""
    page = re.sub(rb'(nonce|name="csrfmiddlewaretoken" value)="[^"]+"', b"", page)
    return re.sub(rb'"x-csrftoken": "[^"]+"', b"", page)


@pytest.mark.parametrize("case", SCOPED_OTHER_METHOD, ids=case_id)
def test_outsiders_learn_nothing_from_other_methods(objects, case):
    """A GET on a POST-only URL (or the reverse) answers 405 whether or not the object exists."""
    name, method = case
    client = signed_in(objects["charlie"])
    url = url_for(name, objects)
    real = client.get(url) if method == "GET" else client.post(url)
    missing_url = url_for(name, _missing(objects))
    fake = client.get(missing_url) if method == "GET" else client.post(missing_url)
    assert real.status_code == fake.status_code == 405


def _missing(o: dict) -> dict:
    """The same objects with every primary key pointing at nothing."""

    class Ghost:
        pk = 987654

    return {
        **o,
        "job": Ghost,
        "token": Ghost,
        "team": Ghost,
        "erin_membership": Ghost,
        "invite": Ghost,
        "channel": Ghost,
        "bob_channel": Ghost,
        "invitation": Ghost,
        "price": Ghost,
        "metrics_key": Ghost,
    }


@pytest.mark.parametrize("case", [c for c in CASES if ROUTES[c[0]].form_refusal], ids=case_id)
def test_outsiders_cannot_use_the_team_through_forms(objects, case):
    name, method = case
    before = TrackedJob.objects.count()
    response = call(signed_in(objects["charlie"]), name, method, objects)
    assert response.status_code in (403, 404, 422)
    assert TrackedJob.objects.count() == before
    assert not objects["fake_api"].calls


# --- roles --------------------------------------------------------------------------------------

ROLE_CASES = [
    (username, name, method)
    for username in ("dave", "bob", "alice")
    for name, method in CASES
    if RANK[ROUTES[name].methods[method]] >= RANK[SIGNED_IN]
]


@pytest.mark.parametrize("username,name,method", ROLE_CASES, ids=lambda v: str(v))
def test_each_role_may_do_exactly_what_its_role_allows(objects, username, name, method):
    route = ROUTES[name]
    needed = route.methods[method]
    role = TEAM_ROLES[username]
    allowed = needed == SIGNED_IN or (needed != SUPERUSER and RANK[role] >= RANK[needed])
    before = _state(objects)
    response = call(signed_in(objects[username]), name, method, objects)
    if route.addressed_to:
        assert response.status_code == 404
        assert _state(objects) == before
    elif allowed:
        if method == "GET":
            # 204: a live poll with nothing new to show (no job named in the query).
            assert response.status_code in (200, 204), response.status_code
        else:
            assert 200 <= response.status_code < 400, response.status_code
            if route.effect is not None:
                assert route.effect(objects, username), f"{name} answered {response.status_code} but changed nothing"
    elif route.form_refusal:
        assert response.status_code in (403, 422)
        assert _state(objects) == before
    else:
        assert response.status_code == 403
        assert _state(objects) == before


def _state(o: dict):
    team = o["team"]
    return (
        sorted(TrackedJob.objects.values_list("pk", "workspace_id", "token_id", "label", "alerts_muted_at")),
        sorted(team.tokens.values_list("pk", "name", "workspace_id")),
        sorted(Membership.objects.filter(workspace=team).values_list("user_id", "role")),
        sorted(team.invites.values_list("pk", "used_at")),
        sorted(team.member_invitations.values_list("pk", "username", "role")),
        team.__class__.objects.filter(pk=team.pk).values_list("name", "queue_stall_minutes").first(),
        sorted(NotificationChannel.objects.filter(workspace=team).values_list("pk", "kind", "target", "user_id")),
        sorted(TrainingPrice.objects.filter(workspace=team).values_list("pattern", "usd_per_million")),
        list(TrainingAlertSettings.objects.filter(workspace=team).values()),
        sorted(MetricsKey.objects.filter(workspace=team).values_list("pk", "revoked_at")),
    )


def test_viewers_are_refused_every_write_that_needs_more_than_viewing(objects):
    """The same rule as above, spelled out: a viewer gets 200 on reads and 403 on writes."""
    client = signed_in(objects["dave"])
    for name, method in CASES:
        needed = ROUTES[name].methods[method]
        if not ROUTES[name].scoped or (method == "POST" and needed == VIEWER):
            continue  # (leaving the team is open to viewers, and would end this walk)
        response = call(client, name, method, objects)
        if method == "GET" and needed == VIEWER:
            assert response.status_code == 200, name
        elif needed in (MEMBER, OWNER):
            assert response.status_code == 403, (name, method)


def test_only_superusers_create_accounts(objects):
    root = new_user("root", is_superuser=True, is_staff=True)
    client = signed_in(root)
    assert client.get("/accounts/create/").status_code == 200
    response = client.post("/accounts/create/", ROUTES["account_create"].data(objects))
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="made-by-admin").exists()
    for username in ("alice", "bob", "dave", "charlie"):
        assert signed_in(objects[username]).get("/accounts/create/").status_code == 403


# --- nothing leaks to outsiders -----------------------------------------------------------------


def test_nothing_of_the_team_reaches_an_outsider(objects):
    charlie = objects["charlie"]
    client = signed_in(charlie)
    responses = []
    for name, method in CASES:
        if name in ("invite_accept", "workspace_metrics_by_path", "logout") or name in KEY_HOLDERS_ROUTES:
            # The invite secret, the metrics key and share/badge keys are the capability to see
            # what they open; logout ends the sweep.
            continue
        for headers in ({}, HTMX):
            responses.append(call(client, name, method, objects, **headers))
    team = objects["team"]
    extra_gets = [
        "/",
        f"/?workspace={team.pk}",
        "/tokens/",
        "/teams/",
        "/notifications/",
        f"/notifications/channels/{objects['bob_channel'].pk}/delete/",
        f"/workspaces/{charlie.personal_workspace.pk}/audit/",
        "/invite/not-a-real-secret/",
    ]
    for url in extra_gets:
        responses.append(client.get(url))
        responses.append(client.get(url, **HTMX))
    # (Not the team's job ID: the form would rightly echo what charlie typed.)
    responses.append(
        client.post(
            "/jobs/track/", {"job_id": "ftjob-charlie-typed-this", "workspace": team.pk, "token": objects["token"].pk}
        )
    )
    responses.append(client.post("/tokens/", {"name": "x", "secret": "sk-12345678", "workspace": team.pk}))
    responses.append(client.post(f"/teams/{team.pk}/members/add/", {"username": "charlie", "role": "owner"}))
    responses.append(client.post(f"/notifications/channels/{objects['bob_channel'].pk}/test/"))
    responses.append(client.post(f"/notifications/channels/{objects['bob_channel'].pk}/delete/"))

    secrets = [
        objects["job"].job_id,
        SUFFIX,
        LABEL,
        TOKEN_NAME,
        TOKEN2_NAME,
        TEAM_NAME,
        TEAM_SECRET,
        TEAM_SECRET[-4:],
        f"started tracking {objects['job'].job_id}",
        "created an invite link",
        objects["untracked_job_id"],
        CHANNEL_TARGET,
        BOB_CHANNEL_TARGET,
        PRICE_PATTERN,
    ]
    assert len(responses) > 50
    for response in responses:
        text = response.content.decode(errors="replace") + " ".join(f"{k}: {v}" for k, v in response.items())
        for secret in secrets:
            assert secret not in text, (secret, response.status_code, response.request["PATH_INFO"])
    assert not Membership.objects.filter(workspace=team, user=charlie).exists()
    assert TrackedJob.objects.count() == 1
    assert NotificationChannel.objects.filter(workspace=team).count() == 2


# A share link's or a badge's key is the capability to see the job (or its status): whoever holds
# it sees that, and nothing else of the team.
KEY_HOLDERS_ROUTES = ("shared_job", "shared_job_live", "badge_svg", "badge_json", "badge_shields")


def test_a_share_link_or_badge_shows_its_holder_the_job_and_nothing_else_of_the_team(objects):
    secrets = [
        TOKEN_NAME,
        TOKEN2_NAME,
        TEAM_NAME,
        TEAM_SECRET,
        TEAM_SECRET[-4:],
        "started tracking",
        "created an invite link",
        objects["untracked_job_id"],
        CHANNEL_TARGET,
        BOB_CHANNEL_TARGET,
        PRICE_PATTERN,
        *(objects[name].get_username() for name in ("alice", "bob", "dave", "erin", "gina")),
    ]
    for name in KEY_HOLDERS_ROUTES:
        for client in (Client(), signed_in(objects["charlie"])):
            response = call(client, name, "GET", objects)
            assert response.status_code == 200, name
            text = response.content.decode(errors="replace") + " ".join(f"{k}: {v}" for k, v in response.items())
            for secret in secrets:
                assert secret not in text, (secret, name)
    assert LABEL in call(Client(), "shared_job", "GET", objects).content.decode()


# --- notification channels: what members may add, and a subscriber's own channel --------------


def _channel_add_url(o) -> str:
    return reverse("channel_add", kwargs={"pk": o["team"].pk})


def test_members_and_viewers_may_only_add_email_for_themselves(objects):
    for username in ("bob", "dave"):
        client = signed_in(objects[username])
        for kind, url in (
            ("webhook", "https://hooks.example.com/team-hook"),
            ("slack", "https://hooks.slack.com/services/T0/B0/xyz"),
        ):
            before = _state(objects)
            response = client.post(_channel_add_url(objects), {"kind": kind, "url": url, "events": ["failed"]})
            assert response.status_code == 422, (username, kind)
            assert _state(objects) == before
            assert not NotificationChannel.objects.filter(target=url).exists()
        response = client.post(
            _channel_add_url(objects),
            {"kind": "email", "email": f"{username}-own@example.com", "events": ["succeeded"]},
        )
        assert response.status_code == 302
        channel = NotificationChannel.objects.get(target=f"{username}-own@example.com")
        assert (channel.kind, channel.workspace, channel.user) == ("email", objects["team"], objects[username])
    # An owner's channel is the team's, not personal.
    response = signed_in(objects["alice"]).post(
        _channel_add_url(objects),
        {"kind": "webhook", "url": "https://hooks.example.com/team-hook", "events": ["failed"]},
    )
    assert response.status_code == 302
    channel = NotificationChannel.objects.get(target="https://hooks.example.com/team-hook")
    assert (channel.kind, channel.user) == ("webhook", None)


@pytest.mark.parametrize(
    "name,method", [("channel_test", "POST"), ("channel_delete", "GET"), ("channel_delete", "POST")]
)
def test_a_subscriber_may_test_and_remove_their_own_channel_and_other_members_may_not(objects, name, method):
    channel = objects["bob_channel"]
    url = reverse(name, kwargs={"pk": channel.pk})
    for username, refused in (("erin", 403), ("dave", 403), ("charlie", 404)):
        client = signed_in(objects[username])
        response = client.get(url) if method == "GET" else client.post(url)
        assert response.status_code == refused, username
        assert NotificationChannel.objects.filter(pk=channel.pk).exists()
    client = signed_in(objects["bob"])
    response = client.get(url) if method == "GET" else client.post(url)
    assert response.status_code == (200 if method == "GET" else 302)
    if name == "channel_delete" and method == "POST":
        assert not NotificationChannel.objects.filter(pk=channel.pk).exists()


def test_members_see_only_their_own_channels_of_the_team(objects):
    page = signed_in(objects["bob"]).get("/notifications/").content.decode()
    assert BOB_CHANNEL_TARGET in page and CHANNEL_TARGET not in page
    page = signed_in(objects["erin"]).get("/notifications/").content.decode()
    assert BOB_CHANNEL_TARGET not in page and CHANNEL_TARGET not in page
    page = signed_in(objects["alice"]).get("/notifications/").content.decode()
    assert BOB_CHANNEL_TARGET in page and CHANNEL_TARGET in page


# --- adding members: an invitation, then the person's own answer --------------------------------


def test_an_owner_adding_a_member_creates_only_an_invitation(objects):
    team, frank = objects["team"], objects["frank"]
    response = call(signed_in(objects["alice"]), "member_add", "POST", objects)
    assert response.status_code == 302
    assert not Membership.objects.filter(workspace=team, user=frank).exists()
    assert team.member_invitations.filter(username="frank", user=frank, role="member").exists()


@pytest.mark.parametrize("answer,joins", [("invitation_accept", True), ("invitation_decline", False)])
def test_the_invited_person_answers_for_themselves(objects, answer, joins):
    team, gina = objects["team"], objects["gina"]
    response = call(signed_in(gina), answer, "POST", objects)
    assert response.status_code == 302
    assert not team.member_invitations.exists()
    assert Membership.objects.filter(workspace=team, user=gina, role="member").exists() == joins
