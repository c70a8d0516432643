"""The authorization table: every URL name of ours, how it is called, and who may call it.

ROUTES maps each URL name to how its kwargs are built from objects of a team workspace owned
by alice (`team_objects`, which the `objects` fixture returns), which methods it answers (each a
read or a write), the minimum role each method needs and what an allowed write changes.
`url_names()` walks the URLconf, so a test can tell when a view has no entry.
tests/test_authorization_matrix.py holds every entry to the rules of jobs/access.py;
tests/test_csrf.py posts to every route of it without a CSRF token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from jobs import badges, services
from jobs.models import (
    AccessToken,
    ApiToken,
    AuditEvent,
    Delivery,
    ImportListing,
    ImportRun,
    Membership,
    MetricsKey,
    NotificationChannel,
    ShareLink,
    TrackedJob,
    TrainingAlertSettings,
    TrainingPrice,
    Workspace,
)
from tests.support.accounts import new_user
from tests.support.payloads import job_payload

HTMX = {"HTTP_HX_REQUEST": "true"}

# Minimum roles, in increasing order.
PUBLIC, SIGNED_IN, VIEWER, MEMBER, OWNER, SUPERUSER = "public", "signed-in", "viewer", "member", "owner", "superuser"
RANK = {PUBLIC: 0, SIGNED_IN: 1, VIEWER: 2, MEMBER: 3, OWNER: 4, SUPERUSER: 5}
TEAM_ROLES = {"dave": VIEWER, "bob": MEMBER, "alice": OWNER}

TEAM_NAME = "Quokka Lab 7f3"
TEAM_SECRET = "sk-quokka-team-0123456789-SECRET-q7k2"
TOKEN_NAME = "quokka-token-zx9"
TOKEN2_NAME = "quokka-token-two-m4"
SUFFIX = "quokka-suffix-k2v"
LABEL = "quokka label p8"
PASSWORD = "a-Quite-l0ng-passphrase"
CHANNEL_TARGET = "quokka-alerts-w8@example.com"
BOB_CHANNEL_TARGET = "bob-quokka-own-r5@example.com"
PRICE_PATTERN = "quokka-org/Quokka-7B-*"
# The "Training alerts" form as it starts for a workspace that never saved it.
ALERT_DEFAULTS = {
    "overfitting_on": "on",
    "overfitting_rises": "2",
    "diverged_on": "on",
    "diverged_factor": "2",
    "eta_slipped_on": "on",
    "eta_slip_percent": "50",
    "eta_slip_minutes": "15",
    "slow_on": "on",
    "slow_percent": "40",
    "slow_window_minutes": "15",
    "queue_stall_minutes": "180",
}


@dataclasses.dataclass(frozen=True)
class Route:
    kwargs: Callable[[dict], dict]
    # method -> minimum role. GET is a read, POST a write.
    methods: dict[str, str]
    # POST body that makes the call succeed for a user with the role.
    data: Callable[[dict], dict] = lambda o: {}
    # Reached through a job, token, team, member or invite of the team: outsiders get 404.
    scoped: bool = False
    # The thing to act on is picked in the form (a token, a workspace) among those the user may
    # use: a user without the role is refused by the form (422) rather than with a 403.
    form_refusal: bool = False
    # Anonymous visitors get ?next=<this url> on the sign-in redirect.
    login_next: bool = True
    # Needs the fake Token Factory (calls upstream).
    upstream: bool = False
    # Only this user (a key of the objects) may call it, whatever their role; everyone else,
    # the team's owners included, gets 404 (an invitation addressed to someone).
    addressed_to: str | None = None
    # Authenticated by a key of its own in the Authorization header, never by a session: a
    # request without one is a 401 (with WWW-Authenticate), not a redirect to sign in.
    bearer: bool = False
    # After an allowed POST by the user (a key of the objects): did the write really happen?
    # A 2xx can be a form re-rendered with an error, a 3xx a redirect that changed nothing.
    effect: Callable[[dict, str], bool] | None = None


def _none(o):
    return {}


def _job(o):
    return {"pk": o["job"].pk}


def _finished_job(o):
    """The team's job, finished (its cost can be recalculated only then)."""
    for job in TrackedJob.objects.filter(pk=o["job"].pk):
        job.snapshot = {**job.snapshot, "status": "succeeded", "trained_steps": job.snapshot.get("total_steps")}
        job.status = "succeeded"
        job.save(update_fields=["snapshot", "status"])
    return _job(o)


def _token(o):
    return {"pk": o["token"].pk}


def _team(o):
    return {"pk": o["team"].pk}


def _member(o):
    return {"pk": o["team"].pk, "member_pk": o["erin_membership"].pk}


def _invite(o):
    return {"pk": o["team"].pk, "invite_pk": o["invite"].pk}


def _invitation(o):
    return {"pk": o["team"].pk, "invitation_pk": o["invitation"].pk}


def _invitation_answer(o):
    return {"pk": o["invitation"].pk}


def _secret(o):
    return {"secret": o["invite_secret"]}


def _channel(o):
    return {"pk": o["channel"].pk}


def _price(o):
    return {"pk": o["team"].pk, "price_pk": o["price"].pk}


def _metrics_key(o):
    return {"pk": o["team"].pk, "key_pk": o["metrics_key"].pk}


def _metrics_secret(o):
    """The team's metrics key, in the path."""
    return {"key": o["metrics_secret"]}


def _fresh(instance):
    return type(instance).objects.get(pk=instance.pk)


def _left_unless_sole_owner(o, username) -> bool:
    """Members and viewers leave; the sole owner (alice) is refused, with a message, and stays."""
    still_member = Membership.objects.filter(workspace=o["team"], user=o[username]).exists()
    return still_member == (username == "alice")


def _import_run(o, state: str):
    """A reading of the team token's job list that found the untracked job (made on first use)."""
    token = ApiToken.objects.filter(pk=o["token"].pk).first()
    if token is None:  # (the outsiders' twin request for a token that does not exist)
        return ImportRun(pk=0)
    run = ImportRun.objects.filter(token=token).first() or ImportRun.objects.create(
        token=token, state=state, pages_read=1, jobs_found=1, cursor=o["untracked_job_id"]
    )
    ImportListing.objects.get_or_create(
        run=run,
        job_id=o["untracked_job_id"],
        defaults={"status": "running", "snapshot": job_payload(id=o["untracked_job_id"]), "position": 0},
    )
    return run


def _share_key(o):
    """A read-only link to the team's job (made on first use), by its key."""
    if "share_key" not in o:
        o["share_key"] = services.share_link_create(job=o["job"], actor=o["alice"], days=None)[1]
    return {"key": o["share_key"]}


def _share_link(o):
    """A read-only link of the team's job (made on first use), to revoke."""
    job = TrackedJob.objects.filter(pk=o["job"].pk).first()
    if job is None:  # (the outsiders' twin request for a job that does not exist)
        return {"pk": o["job"].pk, "link_pk": 987654}
    link = ShareLink.objects.filter(job=job).first() or services.share_link_create(job=job, actor=o["alice"], days=7)[0]
    return {"pk": job.pk, "link_pk": link.pk}


def _job_badge(o):
    return {"key": badges.job_key(o["job"])}


def _new_account(o):
    return {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD}


ROUTES: dict[str, Route] = {
    # --- public and account pages
    "login": Route(_none, {"GET": PUBLIC, "POST": PUBLIC}, data=lambda o: {"username": "nobody", "password": "wrong"}),
    "logout": Route(_none, {"POST": PUBLIC}),
    "first_admin": Route(_none, {"GET": PUBLIC, "POST": PUBLIC}),
    "healthz": Route(_none, {"GET": PUBLIC}),
    "readyz": Route(_none, {"GET": PUBLIC}),
    "invite_accept": Route(_secret, {"GET": PUBLIC, "POST": PUBLIC}, data=_new_account),
    "signup": Route(_none, {"GET": PUBLIC, "POST": PUBLIC}, data=_new_account),
    "password_change": Route(
        _none,
        {"GET": SIGNED_IN, "POST": SIGNED_IN},
        data=lambda o: {"old_password": "x", "new_password1": "y", "new_password2": "y"},
    ),
    "password_change_done": Route(_none, {"GET": SIGNED_IN}),
    "account_create": Route(
        _none,
        {"GET": SUPERUSER, "POST": SUPERUSER},
        data=lambda o: {"username": "made-by-admin", "password1": PASSWORD, "password2": PASSWORD},
    ),
    # --- dashboard and jobs
    # The dashboard sends anonymous visitors to sign in (or to first-run setup) without ?next=.
    "dashboard": Route(_none, {"GET": SIGNED_IN}, login_next=False),
    "track_job": Route(
        _none,
        {"POST": MEMBER},
        form_refusal=True,
        upstream=True,
        data=lambda o: {"job_id": o["untracked_job_id"], "workspace": o["team"].pk, "token": o["token"].pk},
        effect=lambda o, u: o["team"].jobs.filter(job_id=o["untracked_job_id"]).exists(),
    ),
    "job_detail": Route(_job, {"GET": VIEWER}, scoped=True),
    "dashboard_live": Route(_none, {"GET": SIGNED_IN}),
    "job_live": Route(_job, {"GET": VIEWER}, scoped=True),
    "job_refresh": Route(
        _job,
        {"POST": MEMBER},
        scoped=True,
        upstream=True,
        effect=lambda o, u: bool(o["fake_api"].calls_for(o["job"].job_id)),
    ),
    "job_label": Route(
        _job,
        {"POST": MEMBER},
        scoped=True,
        data=lambda o: {"label": "relabelled"},
        effect=lambda o, u: _fresh(o["job"]).label == "relabelled",
    ),
    "job_remove": Route(
        _job,
        {"GET": MEMBER, "POST": MEMBER},
        scoped=True,
        effect=lambda o, u: not TrackedJob.objects.filter(pk=o["job"].pk).exists(),
    ),
    "job_move": Route(
        _job,
        {"POST": MEMBER},
        scoped=True,
        data=lambda o: {"workspace": o["team"].pk, "token": o["token2"].pk},
        effect=lambda o, u: _fresh(o["job"]).token_id == o["token2"].pk,
    ),
    "job_cancel": Route(
        _job,
        {"GET": MEMBER, "POST": MEMBER},
        scoped=True,
        upstream=True,
        effect=lambda o, u: any(
            c.method == "POST" and c.path.endswith("/cancel") for c in o["fake_api"].calls_for(o["job"].job_id)
        ),
    ),
    "job_recalculate_cost": Route(
        _finished_job,
        {"GET": OWNER, "POST": OWNER},
        scoped=True,
        effect=lambda o, u: AuditEvent.objects.filter(workspace=o["team"], action="job.cost_recalculate").exists(),
    ),
    "job_alerts_mute": Route(
        _job,
        {"POST": MEMBER},
        scoped=True,
        effect=lambda o, u: _fresh(o["job"]).alerts_muted_at is not None,
    ),
    # The table's job is not muted: an allowed unmute leaves it unmuted (test_job_alerts_ui unmutes a muted one).
    "job_alerts_unmute": Route(
        _job,
        {"POST": MEMBER},
        scoped=True,
        effect=lambda o, u: _fresh(o["job"]).alerts_muted_at is None,
    ),
    # --- read-only share links (owners and members make and revoke them) and status badges
    "job_share_create": Route(
        _job,
        {"POST": MEMBER},
        scoped=True,
        data=lambda o: {"expiry": "7"},
        effect=lambda o, u: ShareLink.objects.filter(job=o["job"]).exists(),
    ),
    "job_share_revoke": Route(
        _share_link,
        {"POST": MEMBER},
        scoped=True,
        effect=lambda o, u: ShareLink.objects.filter(job=o["job"], revoked_at__isnull=False).exists(),
    ),
    "job_badge_rotate": Route(
        _job, {"POST": OWNER}, scoped=True, effect=lambda o, u: _fresh(o["job"]).badge_rotation > 0
    ),
    "workspace_badge_rotate": Route(
        _team, {"POST": OWNER}, scoped=True, effect=lambda o, u: _fresh(o["team"]).badge_rotation > 0
    ),
    # Anyone with the key, no account needed (tests/test_share_links.py, tests/test_badges.py).
    "shared_job": Route(_share_key, {"GET": PUBLIC}),
    "shared_job_live": Route(_share_key, {"GET": PUBLIC}),
    "badge_svg": Route(_job_badge, {"GET": PUBLIC}),
    "badge_json": Route(_job_badge, {"GET": PUBLIC}),
    "badge_shields": Route(_job_badge, {"GET": PUBLIC}),
    "job_export_json": Route(_job, {"GET": VIEWER}, scoped=True),
    "job_export_metrics": Route(_job, {"GET": VIEWER}, scoped=True),
    # Without ?ids= the compare page explains how to pick jobs; with ids, see test_compare.py.
    "job_compare": Route(_none, {"GET": SIGNED_IN}),
    "dashboard_export": Route(_none, {"GET": SIGNED_IN}),
    # --- spend: without ?workspace= a person sees their own (personal) workspace's spend; a
    # foreign ?workspace= is a 404 (tests/test_spend.py).
    "spend": Route(_none, {"GET": SIGNED_IN}),
    "spend_export": Route(_none, {"GET": SIGNED_IN}),
    "workspace_budget": Route(
        _team,
        {"POST": OWNER},
        scoped=True,
        data=lambda o: {"monthly_budget_usd": "250", "expensive_job_usd": ""},
        effect=lambda o, u: _fresh(o["team"]).monthly_budget_usd == 250,
    ),
    # --- tokens
    "token_list": Route(
        _none,
        {"GET": SIGNED_IN, "POST": SIGNED_IN},
        data=lambda o: {"name": "my own", "secret": "sk-own-token-12345678"},
        effect=lambda o, u: ApiToken.objects.filter(name="my own").exists(),
    ),
    "token_edit": Route(
        _token,
        {"GET": OWNER, "POST": OWNER},
        scoped=True,
        data=lambda o: {"name": "renamed token", "workspace": o["team"].pk},
        effect=lambda o, u: _fresh(o["token"]).name == "renamed token",
    ),
    "token_delete": Route(
        _token,
        {"GET": OWNER, "POST": OWNER},
        scoped=True,
        effect=lambda o, u: not ApiToken.objects.filter(pk=o["token"].pk).exists(),
    ),
    "token_test": Route(
        _token,
        {"POST": OWNER},
        scoped=True,
        upstream=True,
        effect=lambda o, u: any(c.token == TEAM_SECRET for c in o["fake_api"].calls),
    ),
    # Importing a token's jobs: whoever may track jobs in the token's workspace.
    "token_import": Route(_token, {"GET": MEMBER}, scoped=True),
    "token_import_progress": Route(_token, {"GET": MEMBER}, scoped=True),
    "token_import_start": Route(
        _token,
        {"POST": MEMBER},
        scoped=True,
        upstream=True,
        effect=lambda o, u: ImportRun.objects.filter(token=o["token"]).exists(),
    ),
    "token_import_resume": Route(
        _token,
        {"POST": MEMBER},
        scoped=True,
        data=lambda o: {"run": _import_run(o, "failed").pk},
        effect=lambda o, u: ImportRun.objects.filter(token=o["token"], state="reading").exists(),
    ),
    "token_import_track": Route(
        _token,
        {"POST": MEMBER},
        scoped=True,
        data=lambda o: {"run": _import_run(o, "done").pk, "select_all": "1"},
        effect=lambda o, u: o["team"].jobs.filter(job_id=o["untracked_job_id"]).exists(),
    ),
    # --- teams
    "team_list": Route(
        _none,
        {"GET": SIGNED_IN, "POST": SIGNED_IN},
        data=lambda o: {"name": "Another team"},
        effect=lambda o, u: Membership.objects.filter(
            workspace__name="Another team", user=o[u], role=Membership.Role.OWNER
        ).exists(),
    ),
    "team_detail": Route(_team, {"GET": VIEWER}, scoped=True),
    "team_rename": Route(
        _team,
        {"POST": OWNER},
        scoped=True,
        data=lambda o: {"name": "Renamed team"},
        effect=lambda o, u: _fresh(o["team"]).name == "Renamed team",
    ),
    "team_delete": Route(
        _team,
        {"GET": OWNER, "POST": OWNER},
        scoped=True,
        effect=lambda o, u: not Workspace.objects.filter(pk=o["team"].pk).exists(),
    ),
    "team_leave": Route(
        _team, {"GET": VIEWER, "POST": VIEWER}, scoped=True, effect=lambda o, u: _left_unless_sole_owner(o, u)
    ),
    "member_add": Route(
        _team,
        {"POST": OWNER},
        scoped=True,
        data=lambda o: {"username": "frank", "role": "member"},
        effect=lambda o, u: o["team"].member_invitations.filter(username="frank").exists(),
    ),
    "member_role": Route(
        _member,
        {"POST": OWNER},
        scoped=True,
        data=lambda o: {"role": "viewer"},
        effect=lambda o, u: _fresh(o["erin_membership"]).role == Membership.Role.VIEWER,
    ),
    "member_remove": Route(
        _member,
        {"GET": OWNER, "POST": OWNER},
        scoped=True,
        effect=lambda o, u: not Membership.objects.filter(pk=o["erin_membership"].pk).exists(),
    ),
    "invite_create": Route(
        _team,
        {"POST": OWNER},
        scoped=True,
        data=lambda o: {"role": "member"},
        effect=lambda o, u: o["team"].invites.count() == 2,
    ),
    "invite_revoke": Route(
        _invite,
        {"POST": OWNER},
        scoped=True,
        effect=lambda o, u: not o["team"].invites.filter(pk=o["invite"].pk).exists(),
    ),
    "invitation_revoke": Route(
        _invitation,
        {"POST": OWNER},
        scoped=True,
        effect=lambda o, u: not o["team"].member_invitations.filter(pk=o["invitation"].pk).exists(),
    ),
    "invitation_accept": Route(_invitation_answer, {"POST": SIGNED_IN}, scoped=True, addressed_to="gina"),
    "invitation_decline": Route(_invitation_answer, {"POST": SIGNED_IN}, scoped=True, addressed_to="gina"),
    "audit_trail": Route(_team, {"GET": OWNER}, scoped=True),
    # --- training prices: every member reads a workspace's table, its owners change it
    "workspace_prices": Route(
        _team,
        {"GET": VIEWER, "POST": OWNER},
        scoped=True,
        data=lambda o: {"pattern": "quokka-org/*", "usd_per_million": "0.7"},
        effect=lambda o, u: TrainingPrice.objects.filter(workspace=o["team"], pattern="quokka-org/*").exists(),
    ),
    "workspace_price_remove": Route(
        _price,
        {"GET": OWNER, "POST": OWNER},
        scoped=True,
        effect=lambda o, u: not TrainingPrice.objects.filter(pk=o["price"].pk).exists(),
    ),
    # --- training alerts (and the stall limit): every member reads them, its owners change them
    "workspace_training_alerts": Route(
        _team,
        {"GET": VIEWER, "POST": OWNER},
        scoped=True,
        data=lambda o: {**ALERT_DEFAULTS, "diverged_factor": "3", "queue_stall_minutes": "42"},
        effect=lambda o, u: (
            _fresh(o["team"]).queue_stall_minutes == 42
            and TrainingAlertSettings.objects.filter(workspace=o["team"], diverged_factor=3).exists()
        ),
    ),
    # Everyone's own: the personal workspace's settings.
    "personal_settings": Route(_none, {"GET": SIGNED_IN}),
    # --- Prometheus metrics: scraped with a workspace's key (no session); its owners make keys
    "workspace_metrics": Route(_none, {"GET": PUBLIC}, bearer=True),
    "workspace_metrics_by_path": Route(_metrics_secret, {"GET": PUBLIC}),
    "instance_metrics": Route(_none, {"GET": PUBLIC}),  # 404 while FTDASH_METRICS_TOKEN is unset
    # The JSON API's docs page: public, as the schema it is rendered from is (no one's data on it).
    "api_docs": Route(_none, {"GET": PUBLIC}),
    "metrics_key_create": Route(
        _team,
        {"POST": OWNER},
        scoped=True,
        effect=lambda o, u: MetricsKey.objects.filter(workspace=o["team"]).count() == 2,
    ),
    "metrics_key_revoke": Route(
        _metrics_key,
        {"POST": OWNER},
        scoped=True,
        effect=lambda o, u: _fresh(o["metrics_key"]).revoked_at is not None,
    ),
    # Everyone's own access tokens to the JSON API; another person's is a 404, even to a team's owner.
    "access_tokens": Route(
        _none,
        {"GET": SIGNED_IN, "POST": SIGNED_IN},
        data=lambda o: {"name": "matrix script", "expiry": "30", "scope": "read"},
        effect=lambda o, u: AccessToken.objects.filter(user=o[u], name="matrix script").exists(),
    ),
    "access_token_revoke": Route(
        lambda o: {"pk": o["access_token"].pk},
        {"GET": SIGNED_IN, "POST": SIGNED_IN},
        scoped=True,
        addressed_to="gina",
        effect=lambda o, u: AccessToken.objects.get(pk=o["access_token"].pk).revoked_at is not None,
    ),
    # --- notifications
    "notification_list": Route(_none, {"GET": SIGNED_IN}),
    # Every member may subscribe (members and viewers by email, for themselves); see
    # test_members_may_only_add_their_own_email_channel for what they may not add.
    "channel_add": Route(
        _team,
        {"POST": VIEWER},
        scoped=True,
        data=lambda o: {"kind": "email", "email": "someone@example.com", "events": ["failed"]},
        effect=lambda o, u: NotificationChannel.objects.filter(workspace=o["team"]).count() == 3,
    ),
    # A team-wide channel: its owners' business (a subscriber's own one: see the tests below).
    "channel_test": Route(
        _channel,
        {"POST": OWNER},
        scoped=True,
        effect=lambda o, u: Delivery.objects.filter(channel=o["channel"]).exists(),
    ),
    "channel_delete": Route(
        _channel,
        {"GET": OWNER, "POST": OWNER},
        scoped=True,
        effect=lambda o, u: not NotificationChannel.objects.filter(pk=o["channel"].pk).exists(),
    ),
}

# Django's own auth views that we keep: the rest of django.contrib.auth.urls is not ours.
DJANGO_AUTH_KEPT = {"login", "logout", "password_change"}


#: The JSON API's URLs take access tokens, never the session this table is about: its own
#: tests (tests/test_api.py, and schemathesis in tests/test_api_schema.py) cover who may call them.
API_NAMESPACE = "api-v1"


def _walk(patterns, in_django_auth=False):
    for pattern in patterns:
        if isinstance(pattern, URLResolver) and pattern.namespace == API_NAMESPACE:
            continue
        if isinstance(pattern, URLResolver):
            module = getattr(pattern.urlconf_module, "__name__", pattern.urlconf_name)
            yield from _walk(pattern.url_patterns, in_django_auth or module == "django.contrib.auth.urls")
        elif isinstance(pattern, URLPattern):
            yield pattern.name, in_django_auth


def url_names() -> set[str]:
    names = set()
    for name, from_django_auth in _walk(get_resolver().url_patterns):
        if not name or name == "static":
            continue
        if from_django_auth and name not in DJANGO_AUTH_KEPT:
            continue
        names.add(name)
    return names


def all_pattern_names() -> set[str]:
    return {name for name, _ in _walk(get_resolver().url_patterns) if name}


CASES = [(name, method) for name, route in ROUTES.items() for method in route.methods]
POST_CASES = [(name, m) for name, m in CASES if m == "POST"]


def case_id(case):
    return f"{case[0]}-{case[1]}"


# --- fixtures ---------------------------------------------------------------------------------


def team_objects(alice, bob, charlie, team, make_job) -> dict:
    """The team (alice Owner, bob Member, dave Viewer, erin Member) with two tokens, a job, an
    invite link, and an invitation of gina (no member yet) waiting for her answer, a Prometheus metrics key; in the
    database only (`known_upstream` tells a fake Token Factory about its tokens and jobs)."""
    team.name = TEAM_NAME
    team.save()
    dave, erin, frank, gina = new_user("dave"), new_user("erin"), new_user("frank"), new_user("gina")
    Membership.objects.create(workspace=team, user=dave, role=Membership.Role.VIEWER)
    erin_membership = Membership.objects.create(workspace=team, user=erin, role=Membership.Role.MEMBER)
    token = services.token_create(workspace=team, user=alice, name=TOKEN_NAME, secret=TEAM_SECRET)
    token2 = services.token_create(workspace=team, user=alice, name=TOKEN2_NAME, secret=TEAM_SECRET + "2")
    job = make_job(workspace=team, token=token, suffix=SUFFIX)
    job.label = LABEL
    job.save()
    services.audit_record(workspace=team, actor=alice, action="job.track", description=f"started tracking {job.job_id}")
    invite, invite_secret = services.invite_create(team=team, role="member", actor=alice)
    invitation = services.member_invite(team=team, username="gina", role="member", actor=alice)
    # A team-wide email channel (owners') and bob's own email subscription in the team.
    channel = services.channel_add(
        workspace=team, actor=alice, kind="email", target=CHANNEL_TARGET, events=["succeeded", "failed"], personal=False
    )
    bob_channel = services.channel_add(
        workspace=team, actor=bob, kind="email", target=BOB_CHANNEL_TARGET, events=["failed"], personal=True
    )
    price = services.training_price_set(team, PRICE_PATTERN, "0.35", alice).price
    metrics_key, metrics_secret = services.metrics_key_create(workspace=team, actor=alice)
    access_token, _secret = services.access_token_create(
        user=gina, name="gina's script", scope="read", expires_in_days=None
    )
    untracked = job_payload()["id"]
    return {
        "metrics_key": metrics_key,
        "metrics_secret": metrics_secret,
        "alice": alice,
        "bob": bob,
        "charlie": charlie,
        "dave": dave,
        "erin": erin,
        "frank": frank,
        "gina": gina,
        "invitation": invitation,
        "team": team,
        "token": token,
        "token2": token2,
        "job": job,
        "invite": invite,
        "invite_secret": invite_secret,
        "erin_membership": erin_membership,
        "untracked_job_id": untracked,
        "channel": channel,
        "bob_channel": bob_channel,
        "price": price,
        "access_token": access_token,
    }


def known_upstream(o: dict, fake_api) -> None:
    """The team's two tokens and its jobs (the tracked one and the untracked one), on `fake_api`."""
    fake_api.add_token(TEAM_SECRET)
    fake_api.add_token(TEAM_SECRET + "2")
    fake_api.add_job(o["job"].job_id, suffix=SUFFIX)
    fake_api.add_job(o["untracked_job_id"])
    o["fake_api"] = fake_api


def url_for(name: str, o: dict) -> str:
    return reverse(name, kwargs=ROUTES[name].kwargs(o))


def call(client: Client, name: str, method: str, o: dict, **headers):
    url = url_for(name, o)
    if method == "GET":
        return client.get(url, **headers)
    return client.post(url, ROUTES[name].data(o), **headers)
