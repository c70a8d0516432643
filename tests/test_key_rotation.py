"""Rotating FTDASH_ENCRYPTION_KEYS, and what happens when the key is wrong or missing.

Rotation (docs/security.md): put the new key first and keep the old one after it, run
`manage.py rotate_encryption_keys`, then drop the old key. With a wrong key nothing may break
silently: the start-up check names the setting, the rotate command changes nothing, and no
page ever sends a ciphertext (or anything) upstream in place of the token.
"""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from jobs import services, vault
from jobs.models import ApiToken, TrackedJob
from tests.support.accounts import ALICE_SECRET

SECRETS = {
    "research": ALICE_SECRET,
    "second": "sk-second-0123456789-SECRET-abcd",
    "team": "sk-team-0123456789-SECRET-efgh",
}


@pytest.fixture
def old_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def wrong_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def tokens(settings, old_key, alice, alice_workspace, team) -> list[ApiToken]:
    """Three tokens in two workspaces, saved while FTDASH_ENCRYPTION_KEYS = [old]."""
    settings.FTDASH_ENCRYPTION_KEYS = [old_key]
    return [
        services.token_create(workspace=alice_workspace, user=alice, name="research", secret=SECRETS["research"]),
        services.token_create(workspace=alice_workspace, user=alice, name="second", secret=SECRETS["second"]),
        services.token_create(workspace=team, user=alice, name="team", secret=SECRETS["team"]),
    ]


def ciphertexts() -> dict[str, str]:
    return dict(ApiToken.objects.values_list("name", "secret_encrypted"))


def decrypted() -> dict[str, str]:
    return {name: vault.decrypt(ciphertext) for name, ciphertext in ciphertexts().items()}


def rotate() -> str:
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    return out.getvalue()


def check_database() -> str:
    """`manage.py check --database default`; returns what it reported (raises on errors)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("check", "--database", "default", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


# ---------------------------------------------------------------------------- rotation


def test_rotation_step_by_step(settings, tokens, old_key, new_key):
    under_old = ciphertexts()
    assert decrypted() == SECRETS

    # 1. The new key first, the old one after it: everything still decrypts.
    settings.FTDASH_ENCRYPTION_KEYS = [new_key, old_key]
    assert decrypted() == SECRETS
    assert "ftdash.E001" not in check_database()

    # 2. Re-encrypt everything under the new key.
    output = rotate()
    assert "Re-encrypted 3 token(s)" in output
    assert all(secret not in output for secret in SECRETS.values())
    under_new = ciphertexts()
    assert all(under_new[name] != under_old[name] for name in SECRETS)
    assert all(secret not in ciphertext for secret in SECRETS.values() for ciphertext in under_new.values())
    assert decrypted() == SECRETS

    # 3. The old key can go.
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]
    assert decrypted() == SECRETS
    assert "ftdash.E001" not in check_database()
    # …and it really is gone from the ciphertexts: the old key alone reads none of them.
    settings.FTDASH_ENCRYPTION_KEYS = [old_key]
    for ciphertext in under_new.values():
        with pytest.raises(vault.VaultError):
            vault.decrypt(ciphertext)


def test_rotating_twice_is_harmless(settings, tokens, old_key, new_key):
    settings.FTDASH_ENCRYPTION_KEYS = [new_key, old_key]
    rotate()
    rotate()
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]
    assert decrypted() == SECRETS


def test_tokens_saved_during_rotation_use_the_new_key(settings, tokens, alice, alice_workspace, old_key, new_key):
    settings.FTDASH_ENCRYPTION_KEYS = [new_key, old_key]
    services.token_create(workspace=alice_workspace, user=alice, name="fresh", secret="sk-fresh-0123456789-wxyz")

    settings.FTDASH_ENCRYPTION_KEYS = [new_key]
    assert vault.decrypt(ciphertexts()["fresh"]) == "sk-fresh-0123456789-wxyz"


# ---------------------------------------------------------------------------- a wrong key


def test_with_a_wrong_key_the_check_names_the_setting(settings, tokens, wrong_key):
    settings.FTDASH_ENCRYPTION_KEYS = [wrong_key]

    with pytest.raises(SystemCheckError) as caught:
        check_database()

    message = str(caught.value)
    assert "ftdash.E001" in message
    assert "FTDASH_ENCRYPTION_KEYS" in message
    assert "3 stored API token(s)" in message
    assert all(secret not in message for secret in SECRETS.values())
    assert wrong_key not in message


def test_with_a_wrong_key_rotation_fails_and_changes_nothing(settings, tokens, wrong_key):
    before = ciphertexts()
    settings.FTDASH_ENCRYPTION_KEYS = [wrong_key]

    with pytest.raises(CommandError) as caught:
        rotate()

    assert "Nothing was changed" in str(caught.value)
    assert "FTDASH_ENCRYPTION_KEYS" in str(caught.value)
    assert all(secret not in str(caught.value) for secret in SECRETS.values())
    assert ciphertexts() == before


def test_rotation_is_all_or_nothing_when_one_token_is_unreadable(
    settings, tokens, alice, alice_workspace, old_key, new_key, wrong_key
):
    settings.FTDASH_ENCRYPTION_KEYS = [wrong_key]
    services.token_create(workspace=alice_workspace, user=alice, name="stray", secret="sk-stray-0123456789-zzzz")
    before = ciphertexts()
    settings.FTDASH_ENCRYPTION_KEYS = [new_key, old_key]  # reads three of the four

    with pytest.raises(CommandError) as caught:
        rotate()

    assert "“stray”" in str(caught.value) and "1 token(s)" in str(caught.value)
    assert ciphertexts() == before  # not even the readable three were rewritten


def test_with_a_wrong_key_the_test_button_explains_and_calls_nothing_upstream(
    client, settings, alice, tokens, fake_api, wrong_key
):
    fake_api.add_token(SECRETS["research"])
    settings.FTDASH_ENCRYPTION_KEYS = [wrong_key]
    client.force_login(alice)

    response = client.post(f"/tokens/{tokens[0].pk}/test/", follow=True)

    assert response.status_code == 200
    page = response.content.decode()
    assert "cannot be decrypted with the configured FTDASH_ENCRYPTION_KEYS" in page
    assert fake_api.calls == []
    assert all(secret not in page for secret in SECRETS.values())
    assert tokens[0].secret_encrypted not in page


def test_with_a_wrong_key_a_job_refresh_explains_and_calls_nothing_upstream(
    client, settings, alice, tokens, fake_api, wrong_key
):
    remote = fake_api.add_job(token=SECRETS["research"], total_steps=100)
    fake_api.add_token(SECRETS["research"])
    services.job_track(workspace=alice.personal_workspace, token=tokens[0], job_id=remote["id"], user=alice)
    job = TrackedJob.objects.get()
    fake_api.reset_calls()
    settings.FTDASH_ENCRYPTION_KEYS = [wrong_key]
    client.force_login(alice)

    # "Refresh now" on the job page.
    response = client.post(f"/jobs/{job.pk}/refresh/", follow=True)
    assert response.status_code == 200
    assert "FTDASH_ENCRYPTION_KEYS" in response.content.decode()

    # A poll of a job that is due.
    TrackedJob.objects.filter(pk=job.pk).update(checked_at=job.checked_at.replace(year=2000))
    poll = client.get(f"/jobs/{job.pk}/live/", HTTP_HX_REQUEST="true")
    assert poll.status_code == 200
    assert "FTDASH_ENCRYPTION_KEYS" in poll.content.decode()

    assert fake_api.calls == []
    stored = TrackedJob.objects.get(pk=job.pk)
    assert stored.snapshot == job.snapshot  # the last good snapshot stays


def test_with_a_wrong_key_tracking_a_job_explains_and_calls_nothing_upstream(
    client, settings, alice, tokens, fake_api, wrong_key
):
    remote = fake_api.add_job(token=SECRETS["research"])
    settings.FTDASH_ENCRYPTION_KEYS = [wrong_key]
    client.force_login(alice)
    client.raise_request_exception = False  # see the response a person gets

    response = client.post(
        "/jobs/track/",
        {
            "job_id": remote["id"],
            "workspace": alice.personal_workspace.pk,
            "token": tokens[0].pk,
            "label": "",
        },
    )

    assert fake_api.calls == []
    assert TrackedJob.objects.count() == 0
    # The form again with the vault's message, as for any other reason the job cannot be read;
    # not a server error page.
    assert response.status_code == 422, f"{response.status_code}: VaultError not handled by the track view"
    assert "FTDASH_ENCRYPTION_KEYS" in response.content.decode()


def test_a_corrupted_ciphertext_never_goes_upstream(client, settings, alice, tokens, fake_api):
    ApiToken.objects.filter(pk=tokens[0].pk).update(secret_encrypted="gAAAAA-not-really-a-token")
    client.force_login(alice)

    client.post(f"/tokens/{tokens[0].pk}/test/")

    assert fake_api.calls == []


# ---------------------------------------------------------------------------- the edit form


def test_saving_the_edit_form_with_a_blank_secret_keeps_the_stored_secret(client, alice, tokens):
    token = tokens[0]
    client.force_login(alice)
    form = client.get(f"/tokens/{token.pk}/edit/").content.decode()
    assert token.secret_encrypted not in form and SECRETS["research"] not in form

    response = client.post(
        f"/tokens/{token.pk}/edit/",
        {
            "name": "renamed",
            "secret": "",
            "workspace": token.workspace_id,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    token.refresh_from_db()
    assert token.name == "renamed"
    assert vault.decrypt(token.secret_encrypted) == SECRETS["research"]
    assert token.last4 == SECRETS["research"][-4:]


def test_saving_the_edit_form_with_a_new_secret_replaces_it(client, alice, tokens):
    token = tokens[0]
    client.force_login(alice)

    client.post(
        f"/tokens/{token.pk}/edit/",
        {
            "name": token.name,
            "secret": "sk-replaced-0123456789-9876",
            "workspace": token.workspace_id,
        },
    )

    token.refresh_from_db()
    assert vault.decrypt(token.secret_encrypted) == "sk-replaced-0123456789-9876"
    assert token.last4 == "9876"
