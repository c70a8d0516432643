"""Teams through the pages: members, roles, invite links, accounts, workspaces and the audit trail."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from jobs import services
from jobs.models import ApiToken, AuditEvent, Invite, Membership, TrackedJob, Workspace
from tests.support.accounts import new_user
from tests.support.django_client import signed_in

TEAM_SECRET = "sk-team-0123456789-SECRET-t3am"
PASSWORD = "a-Quite-l0ng-passphrase"
INVITE_LINK = re.compile(r"http://testserver/invite/([A-Za-z0-9_-]+)/")


def _page(response) -> str:
    return response.content.decode()


def _audit(workspace) -> list[str]:
    return list(AuditEvent.objects.filter(workspace=workspace).values_list("description", flat=True))


@pytest.fixture
def dave(db, team):
    """A Viewer of the team."""
    user = new_user("dave")
    Membership.objects.create(workspace=team, user=user, role=Membership.Role.VIEWER)
    return user


@pytest.fixture
def team_token(alice, team, fake_api):
    fake_api.add_token(TEAM_SECRET)
    return services.token_create(workspace=team, user=alice, name="team-key", secret=TEAM_SECRET)


@pytest.fixture
def bob_client(bob):
    return signed_in(bob)


# --- creating and running a team --------------------------------------------------------------


def test_the_nav_links_to_teams(alice_client):
    page = _page(alice_client.get("/"))
    assert '<a href="/teams/"' in page and ">Teams</a>" in page


def test_creating_a_team_makes_the_creator_its_owner(alice_client, alice):
    page = _page(alice_client.get("/teams/"))
    assert ">Team name<" in page and "Create team" in page
    response = alice_client.post("/teams/", {"name": "  Vision  "}, follow=True)
    team = Workspace.objects.get(name="Vision")
    assert response.redirect_chain[-1][0] == f"/teams/{team.pk}/"
    assert Membership.objects.get(workspace=team).user == alice
    assert Membership.objects.get(workspace=team).role == Membership.Role.OWNER
    assert "Created the team “Vision”" in _page(response)
    assert _audit(team) == ["created the team “Vision”"]
    # It is listed among alice's teams, with her role.
    listing = _page(alice_client.get("/teams/"))
    assert f'href="/teams/{team.pk}/">Vision</a>' in listing and "<td>Owner</td>" in listing


def test_a_blank_team_name_is_refused(alice_client):
    response = alice_client.post("/teams/", {"name": "   "})
    assert response.status_code == 422
    assert not Workspace.objects.filter(personal_for__isnull=True).exists()


def test_the_team_page_lists_its_members_with_their_roles(alice_client, team):
    page = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert "<h1>Research team</h1>" in page
    assert "alice (you)" in page and ">bob<" in page
    assert "Your role: Owner" in page
    bob_page = _page(signed_in(Membership.objects.get(workspace=team, role="member").user).get(f"/teams/{team.pk}/"))
    assert "Your role: Member" in bob_page and "alice" in bob_page and "bob (you)" in bob_page


def test_the_add_member_form(alice_client, team):
    page = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert ">Username<" in page and ">Role<" in page and ">Invite member</button>" in page
    add_form = page.split(f'action="/teams/{team.pk}/members/add/"')[1].split("</form>")[0]
    assert re.findall(r'<option value="(\w+)"[^>]*>(\w+)</option>', add_form) == [
        ("owner", "Owner"),
        ("member", "Member"),
        ("viewer", "Viewer"),
    ]


def _invite_by_name(client, team, username, role="viewer"):
    return client.post(f"/teams/{team.pk}/members/add/", {"username": username, "role": role}, follow=True)


def _without(page: str, username: str) -> str:
    return page.replace(username, "NAME")


def test_adding_a_member_answers_the_same_whether_or_not_the_account_exists(alice_client, team, charlie):
    real = _invite_by_name(alice_client, team, " charlie ")
    ghost = _invite_by_name(alice_client, team, "ghostly")
    assert real.status_code == ghost.status_code == 200
    assert (
        "Invited charlie as Viewer. If an account named charlie exists, they will see the "
        "invitation on their Teams page and join when they accept it."
    ) in _page(real)
    # The same page, but for the name itself (and the list of pending invitations, which
    # now holds both): nothing says which one has an account.
    real_message = re.search(r"Invited charlie[^<]*", _page(real)).group(0)
    ghost_message = re.search(r"Invited ghostly[^<]*", _page(ghost)).group(0)
    assert _without(real_message, "charlie") == _without(ghost_message, "ghostly")
    pending = _page(alice_client.get(f"/teams/{team.pk}/"))
    for name in ("charlie", "ghostly"):
        assert re.search(rf'<li id="invitation-\d+">{name} as Viewer, invited by alice', pending)
    assert _audit(team)[:2] == ["invited ghostly as Viewer", "invited charlie as Viewer"]
    # Nobody was put into the team without asking.
    assert not Membership.objects.filter(workspace=team, user=charlie).exists()


def test_the_invited_person_accepts_on_their_teams_page(alice_client, team, charlie):
    _invite_by_name(alice_client, team, "charlie")
    charlie_client = signed_in(charlie)
    page = _page(charlie_client.get("/teams/"))
    assert "alice invites you to join <strong>Research team</strong> as Viewer." in page
    accept = re.search(r'action="(/teams/invitations/\d+/accept/)"', page).group(1)
    assert 'Decline<span class="visually-hidden"> the invitation to Research team</span>' in page

    response = charlie_client.post(accept, follow=True)
    assert "You joined Research team as Viewer." in _page(response)
    assert Membership.objects.get(workspace=team, user=charlie).role == Membership.Role.VIEWER
    assert "Invitations" not in _page(charlie_client.get("/teams/"))
    assert "charlie accepted the invitation and joined as Viewer" in _audit(team)
    assert "Waiting for an answer" not in _page(alice_client.get(f"/teams/{team.pk}/"))
    assert charlie_client.post(accept).status_code == 404  # used up


def test_the_invited_person_may_decline(alice_client, team, charlie):
    _invite_by_name(alice_client, team, "charlie")
    charlie_client = signed_in(charlie)
    decline = re.search(r'action="(/teams/invitations/\d+/decline/)"', _page(charlie_client.get("/teams/"))).group(1)
    response = charlie_client.post(decline, follow=True)
    assert "Declined the invitation to Research team." in _page(response)
    assert not Membership.objects.filter(workspace=team, user=charlie).exists()
    assert "charlie declined the invitation" in _audit(team)


def test_only_the_invited_person_may_answer_an_invitation(alice_client, team, charlie, bob):
    _invite_by_name(alice_client, team, "charlie")
    invitation = team.member_invitations.get()
    for other in (alice_client, signed_in(bob), signed_in(new_user("dora"))):
        for answer in ("accept", "decline"):
            assert other.post(f"/teams/invitations/{invitation.pk}/{answer}/").status_code == 404
    assert team.member_invitations.count() == 1
    assert not Membership.objects.filter(workspace=team, user=charlie).exists()


def test_an_account_created_later_under_the_name_gets_no_invitation(alice_client, team):
    _invite_by_name(alice_client, team, "latecomer")
    latecomer = new_user("latecomer")
    assert "Invitations" not in _page(signed_in(latecomer).get("/teams/"))


def test_an_owner_may_withdraw_an_invitation(alice_client, team, charlie):
    _invite_by_name(alice_client, team, "charlie")
    invitation = team.member_invitations.get()
    response = alice_client.post(f"/teams/{team.pk}/invitations/{invitation.pk}/revoke/", follow=True)
    assert "Withdrew the invitation of charlie." in _page(response)
    assert "Invitations" not in _page(signed_in(charlie).get("/teams/"))
    assert "withdrew the invitation of charlie" in _audit(team)


def test_inviting_a_member_again_is_refused(alice_client, team, bob):
    response = alice_client.post(f"/teams/{team.pk}/members/add/", {"username": "bob", "role": "owner"})
    assert response.status_code == 422
    assert "bob is already a member of Research team." in _page(response)
    assert Membership.objects.get(workspace=team, user=bob).role == Membership.Role.MEMBER
    assert not team.member_invitations.exists()


def test_an_owner_changes_a_role(alice_client, team, bob):
    membership = Membership.objects.get(workspace=team, user=bob)
    response = alice_client.post(f"/teams/{team.pk}/members/{membership.pk}/role/", {"role": "viewer"}, follow=True)
    membership.refresh_from_db()
    assert membership.role == Membership.Role.VIEWER
    assert "bob is now Viewer." in _page(response)
    assert "changed bob from Member to Viewer" in _audit(team)


def test_removing_a_member_asks_first(alice_client, team, bob):
    membership = Membership.objects.get(workspace=team, user=bob)
    url = f"/teams/{team.pk}/members/{membership.pk}/remove/"
    page = _page(alice_client.get(url))
    assert "Remove bob from Research team?" in page and ">Remove member</button>" in page
    assert Membership.objects.filter(pk=membership.pk).exists()
    response = alice_client.post(url, follow=True)
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert "Removed bob from Research team." in _page(response)
    assert "removed bob" in _audit(team)
    # bob no longer reaches the team.
    assert signed_in(bob).get(f"/teams/{team.pk}/").status_code == 404


def test_a_member_leaves_the_team(bob_client, team, bob):
    page = _page(bob_client.get(f"/teams/{team.pk}/leave/"))
    assert "Leave Research team?" in page and ">Leave team</button>" in page
    response = bob_client.post(f"/teams/{team.pk}/leave/", follow=True)
    assert response.redirect_chain[-1][0] == "/teams/"
    assert "You left Research team." in _page(response)
    assert not Membership.objects.filter(workspace=team, user=bob).exists()
    assert "bob left the team" in _audit(team)


def test_the_last_owner_can_neither_leave_nor_be_demoted(alice_client, team, alice):
    owner = Membership.objects.get(workspace=team, user=alice)
    page = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert "Leave team" not in page  # not even offered
    response = alice_client.post(f"/teams/{team.pk}/leave/", follow=True)
    assert "The last owner cannot leave or be removed" in _page(response)
    response = alice_client.post(f"/teams/{team.pk}/members/{owner.pk}/remove/", follow=True)
    assert "The last owner cannot leave or be removed" in _page(response)
    response = alice_client.post(f"/teams/{team.pk}/members/{owner.pk}/role/", {"role": "member"}, follow=True)
    assert "A team needs at least one owner" in _page(response)
    owner.refresh_from_db()
    assert owner.role == Membership.Role.OWNER
    assert team.memberships.count() == 2
    assert _audit(team) == []


def test_with_a_second_owner_the_first_may_step_down(alice_client, team, alice, bob):
    bob_membership = Membership.objects.get(workspace=team, user=bob)
    alice_client.post(f"/teams/{team.pk}/members/{bob_membership.pk}/role/", {"role": "owner"})
    owner = Membership.objects.get(workspace=team, user=alice)
    alice_client.post(f"/teams/{team.pk}/members/{owner.pk}/role/", {"role": "member"})
    owner.refresh_from_db()
    assert owner.role == Membership.Role.MEMBER


def test_an_owner_renames_the_team(alice_client, team):
    page = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert ">Rename team</button>" in page
    response = alice_client.post(f"/teams/{team.pk}/rename/", {"name": "Applied research"}, follow=True)
    team.refresh_from_db()
    assert team.name == "Applied research"
    assert "<h1>Applied research</h1>" in _page(response)
    assert "renamed the team “Research team” to “Applied research”" in _audit(team)


def test_deleting_a_team_asks_first_and_takes_its_tokens_and_jobs(
    alice_client, team, team_token, make_job, alice_token
):
    job = make_job(workspace=team, token=team_token)
    own_job = make_job()
    url = f"/teams/{team.pk}/delete/"
    page = _page(alice_client.get(url))
    assert "Delete the team Research team?" in page
    assert "1 token(s)" in page and "1 job(s)" in page and ">Delete team</button>" in page
    assert Workspace.objects.filter(pk=team.pk).exists()
    response = alice_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == "/teams/"
    assert "Deleted the team “Research team”" in _page(response)
    assert not Workspace.objects.filter(pk=team.pk).exists()
    assert not ApiToken.objects.filter(pk=team_token.pk).exists()
    assert not TrackedJob.objects.filter(pk=job.pk).exists()
    assert not Membership.objects.filter(workspace_id=team.pk).exists()
    # alice's own things are untouched.
    assert TrackedJob.objects.filter(pk=own_job.pk).exists() and ApiToken.objects.filter(pk=alice_token.pk).exists()


def test_a_personal_workspace_has_no_team_page(alice_client, alice):
    personal = alice.personal_workspace
    assert alice_client.get(f"/teams/{personal.pk}/").status_code == 404
    assert alice_client.post(f"/teams/{personal.pk}/delete/").status_code == 404
    assert alice_client.post(f"/teams/{personal.pk}/leave/").status_code == 404
    assert Workspace.objects.filter(pk=personal.pk).exists()


# --- invite links -----------------------------------------------------------------------------


def _create_invite(client, team, role="member") -> str:
    response = client.post(f"/teams/{team.pk}/invites/", {"role": role}, follow=True)
    page = _page(response)
    links = INVITE_LINK.findall(page)
    assert len(links) == 1, page
    assert "it is not shown again" in page
    return links[0]


def test_an_owner_creates_an_invite_link_shown_once(alice_client, team):
    page = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert ">Create invite link</button>" in page
    secret = _create_invite(alice_client, team, role="viewer")
    invite = Invite.objects.get()
    assert invite.role == Membership.Role.VIEWER and invite.workspace == team
    expected_expiry = timezone.now() + dt.timedelta(days=7)  # FTDASH_INVITE_DAYS
    assert abs((invite.expires_at - expected_expiry).total_seconds()) < 60
    assert invite.created_by.get_username() == "alice" and invite.used_at is None
    # Only a hash is stored: the secret is in no column of the row.
    row = Invite.objects.filter(pk=invite.pk).values().get()
    assert all(secret not in str(value) for value in row.values())
    assert invite.token_hash != secret and len(invite.token_hash) == 64
    # Shown once: the team page no longer has it, but lists the unused link.
    again = _page(alice_client.get(f"/teams/{team.pk}/"))
    assert secret not in again and "Unused links" in again and "Viewer, created by alice" in again
    assert "created an invite link for a new Viewer" in _audit(team)


def test_a_newcomer_joins_through_an_invite_link(alice_client, team):
    secret = _create_invite(alice_client, team, role="viewer")
    newcomer = Client()
    page = _page(newcomer.get(f"/invite/{secret}/"))
    assert "Join Research team" in page and "invited as <strong>Viewer</strong> by alice" in page
    assert ">Create account and join</button>" in page and 'name="password1"' in page
    response = newcomer.post(
        f"/invite/{secret}/", {"username": "nina", "password1": PASSWORD, "password2": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/teams/{team.pk}/"
    page = _page(response)
    assert "Welcome to Research team." in page and "Your role: Viewer" in page
    nina = get_user_model().objects.get(username="nina")
    assert nina.check_password(PASSWORD)
    assert Membership.objects.get(workspace=team, user=nina).role == Membership.Role.VIEWER
    assert Workspace.objects.filter(personal_for=nina).exists()
    assert int(newcomer.session["_auth_user_id"]) == nina.pk
    invite = Invite.objects.get()
    assert invite.used_by == nina and invite.used_at is not None
    assert "nina joined as Viewer through an invite link" in _audit(team)
    # Single use: the next visitor finds a dead link, and nothing is created.
    second = Client()
    response = second.get(f"/invite/{secret}/")
    assert response.status_code == 404 and "This invite link is not valid" in _page(response)
    response = second.post(f"/invite/{secret}/", {"username": "otto", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 404
    assert not get_user_model().objects.filter(username="otto").exists()


def test_a_newcomer_with_a_bad_password_is_asked_again(alice_client, team):
    secret = _create_invite(alice_client, team)
    response = Client().post(f"/invite/{secret}/", {"username": "nina", "password1": "123", "password2": "123"})
    assert response.status_code == 422
    assert not get_user_model().objects.filter(username="nina").exists()
    assert Invite.objects.get().is_usable


def test_a_signed_in_user_just_accepts(alice_client, team, charlie):
    secret = _create_invite(alice_client, team, role="member")
    client = signed_in(charlie)
    page = _page(client.get(f"/invite/{secret}/"))
    assert ">Join Research team</button>" in page
    assert 'name="password1"' not in page and "Create account and join" not in page
    response = client.post(f"/invite/{secret}/", follow=True)
    assert "Welcome to Research team." in _page(response)
    assert Membership.objects.get(workspace=team, user=charlie).role == Membership.Role.MEMBER
    assert client.get(f"/invite/{secret}/").status_code == 404


def test_an_existing_member_cannot_use_up_a_link(alice_client, team, bob_client, bob):
    secret = _create_invite(alice_client, team, role="owner")
    response = bob_client.post(f"/invite/{secret}/")
    assert response.status_code == 422
    assert "You are already a member of Research team." in _page(response)
    assert Membership.objects.get(workspace=team, user=bob).role == Membership.Role.MEMBER
    assert Invite.objects.get().is_usable


def test_an_expired_invite_link_is_not_valid(alice_client, team, charlie):
    secret = _create_invite(alice_client, team)
    Invite.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = signed_in(charlie).get(f"/invite/{secret}/")
    assert response.status_code == 404 and "not valid" in _page(response)
    assert signed_in(charlie).post(f"/invite/{secret}/").status_code == 404
    assert not Membership.objects.filter(workspace=team, user=charlie).exists()


def test_a_revoked_invite_link_is_not_valid(alice_client, team):
    secret = _create_invite(alice_client, team)
    invite = Invite.objects.get()
    response = alice_client.post(f"/teams/{team.pk}/invites/{invite.pk}/revoke/", follow=True)
    assert "Invite revoked." in _page(response)
    assert not Invite.objects.exists()
    assert Client().get(f"/invite/{secret}/").status_code == 404
    assert "revoked an unused invite for a Member" in _audit(team)


def test_made_up_invite_links_are_not_valid(db):
    response = Client().get("/invite/not-a-secret/")
    assert response.status_code == 404 and "This invite link is not valid" in _page(response)


# --- accounts ---------------------------------------------------------------------------------


def test_open_sign_up_is_off_by_default(db, alice):
    assert Client().get("/accounts/signup/").status_code == 404
    response = Client().post("/accounts/signup/", {"username": "zed", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 404
    assert not get_user_model().objects.filter(username="zed").exists()


def test_open_sign_up_creates_an_account_when_switched_on(db, alice, settings):
    settings.FTDASH_SIGNUP_OPEN = True
    client = Client()
    assert ">Create account</button>" in _page(client.get("/accounts/signup/"))
    response = client.post("/accounts/signup/", {"username": "zed", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    zed = get_user_model().objects.get(username="zed")
    assert not zed.is_staff and not zed.is_superuser
    assert Workspace.objects.filter(personal_for=zed).exists()
    assert int(client.session["_auth_user_id"]) == zed.pk
    assert client.get("/").status_code == 200


def test_superusers_create_accounts_and_others_may_not(db, alice):
    root = get_user_model().objects.create_superuser(username="root", password="root-password-1")
    client = signed_in(root)
    assert "Create an account" in _page(client.get("/accounts/create/"))
    assert "create an account" in _page(client.get("/teams/"))
    response = client.post(
        "/accounts/create/", {"username": "made", "password1": PASSWORD, "password2": PASSWORD}, follow=True
    )
    assert "Created the account made." in _page(response)
    made = get_user_model().objects.get(username="made")
    assert made.check_password(PASSWORD) and not made.is_superuser
    assert signed_in(alice).get("/accounts/create/").status_code == 403
    response = signed_in(alice).post(
        "/accounts/create/", {"username": "x2", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="x2").exists()
    assert "create an account" not in _page(signed_in(alice).get("/teams/"))


def test_a_user_changes_their_password(alice_client, alice):
    page = _page(alice_client.get("/accounts/password_change/"))
    assert 'name="old_password"' in page and 'href="/accounts/password_change/"' in page
    response = alice_client.post(
        "/accounts/password_change/",
        {"old_password": "alice-password-1", "new_password1": PASSWORD, "new_password2": PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/accounts/password_change/done/"
    assert "Password changed" in _page(response)
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
    # Still signed in after the change.
    assert alice_client.get("/").status_code == 200
    wrong = alice_client.post(
        "/accounts/password_change/",
        {"old_password": "nope", "new_password1": "x" + PASSWORD, "new_password2": "x" + PASSWORD},
    )
    assert wrong.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


# --- roles in the pages -----------------------------------------------------------------------


def test_a_viewer_only_looks(team, dave, team_token, make_job):
    job = make_job(workspace=team, token=team_token)
    client = signed_in(dave)
    dashboard = _page(client.get("/"))
    assert job.job_id in dashboard
    assert "Track job" not in dashboard and "team-key" not in dashboard
    assert f"/jobs/{job.pk}/remove/" not in dashboard
    page = _page(client.get(f"/jobs/{job.pk}/"))
    assert job.job_id in page
    for absent in (
        "Refresh now",
        ">Remove<",
        f"/jobs/{job.pk}/remove/",
        f"/jobs/{job.pk}/label/",
        f"/jobs/{job.pk}/move/",
        "Save label",
        "Move job",
    ):
        assert absent not in page, absent
    team_page = _page(client.get(f"/teams/{team.pk}/"))
    assert "Your role: Viewer" in team_page and "Add member" not in team_page
    assert "team-key" not in _page(client.get("/tokens/"))


def test_a_member_works_with_jobs_but_does_not_manage(team, bob, team_token, make_job, fake_api):
    job = make_job(workspace=team, token=team_token)
    client = signed_in(bob)
    page = _page(client.get(f"/jobs/{job.pk}/"))
    assert "Refresh now" in page and f"/jobs/{job.pk}/remove/" in page and "Save label" in page
    dashboard = _page(client.get("/"))
    assert "Track job" in dashboard and "team-key" in dashboard  # uses the team's token…
    tokens = _page(client.get("/tokens/"))
    assert "team-key" not in tokens and f"/tokens/{team_token.pk}/" not in tokens  # …without managing it
    team_page = _page(client.get(f"/teams/{team.pk}/"))
    for absent in (
        "Add member",
        "Create invite link",
        "Delete team",
        "Rename team",
        "Audit trail",
        f"/teams/{team.pk}/delete/",
        "Change role",
    ):
        assert absent not in team_page, absent
    assert "Leave team" in team_page


def test_an_owner_sees_every_control(alice_client, team, team_token, make_job):
    job = make_job(workspace=team, token=team_token)
    team_page = _page(alice_client.get(f"/teams/{team.pk}/"))
    for present in ("Add member", "Create invite link", "Delete team", "Rename team", "Audit trail", "Change role"):
        assert present in team_page, present
    assert "team-key" in _page(alice_client.get("/tokens/"))
    page = _page(alice_client.get(f"/jobs/{job.pk}/"))
    assert "Refresh now" in page and "Save label" in page


# --- workspaces on the dashboard, tokens and jobs ---------------------------------------------


def _cards(page: str) -> list[str]:
    return page.split('class="job-card"')[1:]


def test_the_dashboard_shows_the_jobs_of_every_workspace_with_its_name(alice_client, alice, team, team_token, make_job):
    own = make_job(suffix="own-run")
    shared = make_job(workspace=team, token=team_token, suffix="shared-run")
    page = _page(alice_client.get("/"))
    cards = _cards(page)
    assert len(cards) == 2
    by_job = {job.job_id: next(c for c in cards if job.job_id in c) for job in (own, shared)}
    assert "alice (personal)" in by_job[own.job_id]
    assert "Research team" in by_job[shared.job_id]
    assert ">Workspace<" in page and "All workspaces" in page  # the filter
    filtered = _page(alice_client.get(f"/?workspace={team.pk}"))
    assert shared.job_id in filtered and own.job_id not in filtered
    assert "Tracked jobs in Research team" in filtered
    personal = _page(alice_client.get(f"/?workspace={alice.personal_workspace.pk}"))
    assert own.job_id in personal and shared.job_id not in personal


def test_the_workspace_filter_ignores_workspaces_of_others(make_job, charlie, alice_client):
    job = make_job()
    page = _page(signed_in(charlie).get(f"/?workspace={job.workspace_id}"))
    assert job.job_id not in page
    assert job.job_id in _page(alice_client.get(f"/?workspace={job.workspace_id}"))


def test_the_workspace_select_appears_only_with_more_than_one(alice_client, charlie, team):
    assert ">Workspace<" in _page(alice_client.get("/tokens/"))  # personal + team
    assert ">Workspace<" not in _page(signed_in(charlie).get("/tokens/"))  # personal only


def test_a_token_is_saved_in_the_chosen_workspace(alice_client, alice, team):
    response = alice_client.post(
        "/tokens/", {"name": "shared", "secret": TEAM_SECRET, "workspace": team.pk}, follow=True
    )
    token = ApiToken.objects.get(name="shared")
    assert token.workspace == team
    assert "Saved token “shared” (…t3am) in Research team." in _page(response)
    assert "added token “shared” (…t3am)" in _audit(team)
    # Left out, it goes to the personal workspace.
    alice_client.post("/tokens/", {"name": "mine", "secret": TEAM_SECRET})
    assert ApiToken.objects.get(name="mine").workspace == alice.personal_workspace


def test_a_member_cannot_save_a_token_in_the_team(bob_client, team):
    response = bob_client.post("/tokens/", {"name": "sneaky", "secret": TEAM_SECRET, "workspace": team.pk})
    assert response.status_code == 422
    assert not ApiToken.objects.filter(workspace=team).exists()


def test_a_job_is_tracked_in_the_chosen_workspace(alice_client, alice_token, team, team_token, fake_api):
    body = fake_api.add_job(suffix="team-run")
    page = _page(alice_client.get("/"))
    assert ">Workspace<" in page and '<select name="workspace"' in page
    response = alice_client.post("/jobs/track/", {"job_id": body["id"], "workspace": team.pk, "token": team_token.pk})
    assert response.status_code == 302
    job = TrackedJob.objects.get(job_id=body["id"])
    assert job.workspace == team and job.token == team_token
    assert f"started tracking {body['id']}" in _audit(team)


def test_a_job_cannot_be_tracked_with_a_token_of_another_workspace(
    alice_client, alice_token, team, team_token, fake_api
):
    body = fake_api.add_job()
    response = alice_client.post("/jobs/track/", {"job_id": body["id"], "workspace": team.pk, "token": alice_token.pk})
    assert response.status_code == 422
    assert "belongs to alice (personal)" in _page(response)
    assert not TrackedJob.objects.exists()


def test_a_member_tracks_with_the_team_token(bob_client, team, team_token, fake_api):
    body = fake_api.add_job()
    response = bob_client.post("/jobs/track/", {"job_id": body["id"], "token": team_token.pk})
    assert response.status_code == 302
    assert TrackedJob.objects.get(job_id=body["id"]).workspace == team


def test_a_viewer_cannot_track_with_the_team_token(team, dave, team_token, fake_api):
    body = fake_api.add_job()
    fake_api.reset_calls()
    response = signed_in(dave).post(
        "/jobs/track/", {"job_id": body["id"], "workspace": team.pk, "token": team_token.pk}
    )
    assert response.status_code in (403, 422)
    assert not TrackedJob.objects.exists() and not fake_api.calls


def test_moving_a_token_moves_its_jobs(alice_client, alice, alice_token, team, make_job):
    job = make_job()
    response = alice_client.post(
        f"/tokens/{alice_token.pk}/edit/", {"name": "research", "secret": "", "workspace": team.pk}
    )
    assert response.status_code == 302
    alice_token.refresh_from_db()
    job.refresh_from_db()
    assert alice_token.workspace == team and job.workspace == team
    assert "moved token “research” (…wxyz) and its 1 job(s) to Research team" in _audit(alice.personal_workspace)
    assert "moved token “research” (…wxyz) and its 1 job(s) here from alice (personal)" in _audit(team)


def test_the_token_edit_page_offers_the_workspace_to_move_to(alice_client, team, team_token):
    """Moving a token is an edit of its workspace; the page must show that choice."""
    page = _page(alice_client.get(f"/tokens/{team_token.pk}/edit/"))
    assert ">Workspace<" in page and '<select name="workspace"' in page
    assert "Moving a token moves the jobs tracked with it." in page


def test_renaming_a_team_token_keeps_it_in_the_team(alice_client, team, team_token, make_job):
    """What the edit page's form sends (name and a blank secret) must not move the token."""
    job = make_job(workspace=team, token=team_token)
    response = alice_client.post(f"/tokens/{team_token.pk}/edit/", {"name": "team-key-2", "secret": ""})
    assert response.status_code == 302
    team_token.refresh_from_db()
    job.refresh_from_db()
    assert team_token.name == "team-key-2"
    assert team_token.workspace == team, "renaming moved the team's token to alice's personal workspace"
    assert job.workspace == team


def test_a_job_is_moved_with_a_token_of_the_target_workspace(
    alice_client, alice, alice_token, team, team_token, make_job
):
    job = make_job()
    page = _page(alice_client.get(f"/jobs/{job.pk}/"))
    assert ">Move job</button>" in page and ">Move to workspace<" in page
    response = alice_client.post(f"/jobs/{job.pk}/move/", {"workspace": team.pk, "token": team_token.pk}, follow=True)
    job.refresh_from_db()
    assert job.workspace == team and job.token == team_token
    assert "Moved to Research team, read with “team-key”." in _page(response)
    assert f"moved {job.job_id} out to Research team" in _audit(alice.personal_workspace)
    assert f"moved {job.job_id} in from alice (personal)" in _audit(team)


def test_a_job_is_not_moved_with_a_token_of_another_workspace(alice_client, alice_token, team, team_token, make_job):
    job = make_job()
    response = alice_client.post(f"/jobs/{job.pk}/move/", {"workspace": team.pk, "token": alice_token.pk})
    assert response.status_code == 422
    job.refresh_from_db()
    assert job.workspace == alice_token.workspace


def test_moving_into_a_workspace_where_one_only_views_is_refused(bob, team, team_token, make_job, alice):
    """bob is a Member of the team but only a Viewer of "Lookout", which has a token."""
    lookout = services.team_create(name="Lookout", owner=alice)
    Membership.objects.create(workspace=lookout, user=bob, role=Membership.Role.VIEWER)
    lookout_token = services.token_create(workspace=lookout, user=alice, name="lookout-key", secret=TEAM_SECRET)
    job = make_job(workspace=team, token=team_token)
    client = signed_in(bob)
    assert "lookout-key" not in _page(client.get(f"/jobs/{job.pk}/"))
    response = client.post(f"/jobs/{job.pk}/move/", {"workspace": lookout.pk, "token": lookout_token.pk})
    assert response.status_code in (403, 422)
    job.refresh_from_db()
    assert job.workspace == team and job.token == team_token


# --- the audit trail --------------------------------------------------------------------------


def test_the_audit_trail_tells_who_did_what(alice_client, alice, bob, charlie, team, team_token, fake_api, make_job):
    bob_client = signed_in(bob)
    body = fake_api.add_job()
    assert bob_client.post("/jobs/track/", {"job_id": body["id"], "token": team_token.pk}).status_code == 302
    job = TrackedJob.objects.get(job_id=body["id"])
    assert bob_client.post(f"/jobs/{job.pk}/remove/").status_code == 302
    alice_client.post(f"/teams/{team.pk}/members/add/", {"username": "charlie", "role": "viewer"})
    signed_in(charlie).post(f"/teams/invitations/{team.member_invitations.get().pk}/accept/")
    charlie_membership = Membership.objects.get(workspace=team, user=charlie)
    alice_client.post(f"/teams/{team.pk}/members/{charlie_membership.pk}/remove/")
    moved = make_job()
    alice_client.post(f"/jobs/{moved.pk}/move/", {"workspace": team.pk, "token": team_token.pk})
    alice_client.post(f"/tokens/{team_token.pk}/delete/")

    response = alice_client.get(f"/workspaces/{team.pk}/audit/")
    assert response.status_code == 200
    page = _page(response)
    assert "Audit trail of Research team" in page
    rows = re.findall(r"<tr><td><time[^>]*>[^<]*</time></td><td>([^<]*)</td><td>([^<]*)</td></tr>", page)
    expected = [
        ("alice", "added token “team-key” (…t3am)"),
        ("bob", f"started tracking {body['id']}"),
        ("bob", f"stopped tracking {body['id']}"),
        ("alice", "invited charlie as Viewer"),
        ("charlie", "charlie accepted the invitation and joined as Viewer"),
        ("alice", "removed charlie"),
        ("alice", f"moved {moved.job_id} in from alice (personal)"),
        ("alice", "deleted token “team-key” (…t3am)"),
    ]
    assert [(who, what.replace("&#x27;", "'")) for who, what in rows] == list(reversed(expected))
    # Owners only.
    assert bob_client.get(f"/workspaces/{team.pk}/audit/").status_code == 403
    assert signed_in(charlie).get(f"/workspaces/{team.pk}/audit/").status_code == 404
    # Everyone sees the trail of their own personal workspace.
    own = _page(alice_client.get(f"/workspaces/{alice.personal_workspace.pk}/audit/"))
    assert f"moved {moved.job_id} out to Research team" in own
