from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from jobs.models import Membership


@pytest.mark.django_db
def test_it_sends_the_first_visitor_to_admin_creation(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/setup/"
    page = client.get("/setup/").content.decode()
    assert "Create the first administrator account" in page


@pytest.mark.django_db
def test_the_sign_in_page_offers_admin_creation_while_there_are_no_accounts(client):
    assert "Create the first administrator account" in client.get("/accounts/login/").content.decode()


@pytest.mark.django_db
def test_it_creates_the_first_administrator_with_a_personal_workspace(client):
    response = client.post(
        "/setup/",
        {"username": "root", "password1": "a-long-passphrase-1", "password2": "a-long-passphrase-1"},
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.is_staff
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.OWNER
    assert membership.workspace.personal_for == user
    # Signed in straight away.
    assert client.get("/").status_code == 200


def test_it_refuses_a_second_first_administrator(client, alice):
    response = client.post(
        "/setup/",
        {"username": "mallory", "password1": "a-long-passphrase-1", "password2": "a-long-passphrase-1"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert "Create the first administrator account" not in client.get("/accounts/login/").content.decode()


@pytest.mark.django_db
def test_it_explains_a_weak_password(client):
    response = client.post("/setup/", {"username": "root", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not get_user_model().objects.exists()


def test_sign_in_uses_username_and_password_fields(client, alice):
    page = client.get("/accounts/login/").content.decode()
    assert ">Username<" in page and ">Password<" in page
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_sign_out_is_a_post(alice_client):
    assert alice_client.get("/accounts/logout/").status_code == 405
    assert alice_client.post("/accounts/logout/").status_code == 302
    assert alice_client.get("/").status_code == 302


def test_createsuperuser_noinput_gives_a_usable_account(db, client, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-passphrase-1")
    call_command("createsuperuser", "--noinput", username="ops", email="ops@example.com")
    client.post("/accounts/login/", {"username": "ops", "password": "a-long-passphrase-1"})
    assert client.get("/").status_code == 200
    assert Membership.objects.filter(user__username="ops", role="owner").exists()
