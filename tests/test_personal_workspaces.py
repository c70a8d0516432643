"""Every account has its personal workspace from the moment it exists, whichever way it was
made, so that reading someone's workspaces never has to write (issue 18: reads do not write)."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.access import user_memberships, user_workspaces
from jobs.models import Membership, Workspace
from tests.conftest import track_remote_job

PASSWORD = "a-long-passphrase-1"
NEW_ACCOUNT = {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD}


def assert_has_personal_workspace(username: str) -> None:
    user = get_user_model().objects.get(username=username)
    workspace = Workspace.objects.get(personal_for=user)
    assert workspace.name == f"{username} (personal)"
    assert Membership.objects.filter(workspace=workspace, user=user, role=Membership.Role.OWNER).count() == 1


def test_the_first_run_administrator_has_one(client, db):
    client.post("/setup/", {"username": "root", "password1": PASSWORD, "password2": PASSWORD})
    assert_has_personal_workspace("root")


def test_an_account_made_by_an_administrator_has_one(client, alice):
    alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    assert client.post("/accounts/create/", NEW_ACCOUNT).status_code == 302
    assert_has_personal_workspace("newcomer")


def test_an_account_made_by_open_sign_up_has_one(client, db, settings):
    settings.FTDASH_SIGNUP_OPEN = True
    assert client.post("/accounts/signup/", NEW_ACCOUNT).status_code == 302
    assert_has_personal_workspace("newcomer")


def test_an_account_made_by_an_invite_link_has_one(client, alice, team):
    _, secret = services.invite_create(team=team, role=Membership.Role.MEMBER, actor=alice)
    assert client.post(f"/invite/{secret}/", NEW_ACCOUNT).status_code == 302
    assert_has_personal_workspace("newcomer")
    assert Membership.objects.filter(user__username="newcomer", workspace=team).exists()


def test_an_account_made_on_first_single_sign_on_has_one(db, settings):
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.RemoteUserBackend"]
    assert authenticate(RequestFactory().get("/"), remote_user="sso-person") is not None
    assert_has_personal_workspace("sso-person")


def test_an_account_made_by_createsuperuser_has_one(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", username="ops", email="ops@example.com")
    assert_has_personal_workspace("ops")


def test_an_account_made_by_create_user_has_one(db):
    get_user_model().objects.create_user("plain", password=PASSWORD)
    assert_has_personal_workspace("plain")


def test_saving_an_account_again_adds_nothing(alice):
    alice.first_name = "Alice"
    alice.save()
    assert Workspace.objects.filter(personal_for=alice).count() == 1
    assert Membership.objects.filter(user=alice).count() == 1


def test_reading_memberships_writes_nothing(alice, django_assert_num_queries):
    Membership.objects.filter(user=alice).delete()  # as if it had been lost
    with django_assert_num_queries(2):  # one read each, and no write
        assert user_memberships(alice) == []
        assert user_workspaces(alice) == []
    assert not Membership.objects.filter(user=alice).exists()


def _inserts(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("INSERT")]


def test_viewing_the_dashboard_inserts_nothing(alice_client, alice_token, alice, fake_api):
    track_remote_job(fake_api, alice, alice_token, status="succeeded")
    alice_client.get("/")  # the session's first sight of the page out of the way
    with CaptureQueriesContext(connection) as captured:
        assert alice_client.get("/").status_code == 200
    assert _inserts(captured.captured_queries) == []


def test_viewing_the_notifications_and_tokens_pages_inserts_nothing(alice_client):
    for path in ("/notifications/", "/tokens/"):
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get(path).status_code == 200
        assert _inserts(captured.captured_queries) == [], path


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_gives_an_old_account_its_personal_workspace():
    before = [("jobs", "0010_token_request_budget")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        User, OldWorkspace, OldMembership = (
            old.get_model("auth", "User"),
            old.get_model("jobs", "Workspace"),
            old.get_model("jobs", "Membership"),
        )
        lonely = User.objects.create(username="old-timer", password="!")
        settled = User.objects.create(username="settled", password="!")
        theirs = OldWorkspace.objects.create(name="settled's own name", personal_for=settled)
        OldMembership.objects.create(workspace=theirs, user=settled, role="owner")
        team = OldWorkspace.objects.create(name="A team")
        OldMembership.objects.create(workspace=team, user=lonely, role="member")
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        # Forward through 0011_personal_workspaces to the latest, which the models below expect.
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert_has_personal_workspace("old-timer")
    assert Workspace.objects.get(personal_for_id=settled.pk).name == "settled's own name"  # left as it was
    assert Membership.objects.filter(user_id=settled.pk).count() == 1
    assert Membership.objects.filter(user_id=lonely.pk, workspace_id=team.pk, role="member").exists()
    assert [m.workspace.name for m in user_memberships(get_user_model().objects.get(pk=lonely.pk))] == [
        "old-timer (personal)",
        "A team",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_undoes_as_nothing():
    kept = get_user_model().objects.create_user("kept", password=PASSWORD)
    executor = MigrationExecutor(connection)
    executor.migrate([("jobs", "0010_token_request_budget")])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert Workspace.objects.filter(personal_for=kept).count() == 1
