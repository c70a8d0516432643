"""The token vault: API keys encrypted at rest, rotatable, and never leaked by an error."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from jobs import services, vault
from jobs.models import ApiToken, TrackedJob
from jobs.sync import refresh
from tests.support.accounts import ALICE_SECRET

SECRET = "sk-vault-test-SECRET-0123456789-ünïcødé"


@pytest.fixture
def old_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def new_key() -> str:
    return Fernet.generate_key().decode()


def test_a_secret_survives_a_round_trip():
    assert vault.decrypt(vault.encrypt(SECRET)) == SECRET


def test_the_ciphertext_does_not_contain_the_secret():
    ciphertext = vault.encrypt(SECRET)

    assert isinstance(ciphertext, str)
    assert SECRET not in ciphertext
    assert "SECRET-0123456789" not in ciphertext
    assert vault.encrypt(SECRET) != ciphertext  # a fresh IV every time


def test_a_stored_token_is_encrypted_in_the_database(alice_token):
    stored = ApiToken.objects.filter(pk=alice_token.pk).values().get()

    assert all(ALICE_SECRET not in str(value) for value in stored.values())
    assert stored["last4"] == ALICE_SECRET[-4:]
    assert vault.decrypt(stored["secret_encrypted"]) == ALICE_SECRET


def test_new_secrets_are_encrypted_with_the_first_key(settings, new_key, old_key):
    settings.FTDASH_ENCRYPTION_KEYS = [new_key, old_key]
    ciphertext = vault.encrypt(SECRET)

    settings.FTDASH_ENCRYPTION_KEYS = [new_key]
    assert vault.decrypt(ciphertext) == SECRET
    settings.FTDASH_ENCRYPTION_KEYS = [old_key]
    with pytest.raises(vault.VaultError):
        vault.decrypt(ciphertext)


def test_a_secret_under_the_old_key_still_decrypts_and_reencrypt_moves_it_to_the_new_key(settings, new_key, old_key):
    settings.FTDASH_ENCRYPTION_KEYS = [old_key]
    under_old = vault.encrypt(SECRET)

    settings.FTDASH_ENCRYPTION_KEYS = [new_key, old_key]
    assert vault.decrypt(under_old) == SECRET
    under_new = vault.reencrypt(under_old)
    assert under_new != under_old and SECRET not in under_new

    settings.FTDASH_ENCRYPTION_KEYS = [new_key]  # the old key retired
    assert vault.decrypt(under_new) == SECRET
    with pytest.raises(vault.VaultError):
        vault.decrypt(under_old)


def test_a_wrong_key_raises_a_vault_error_that_names_the_setting_and_leaks_nothing(settings, new_key, old_key):
    settings.FTDASH_ENCRYPTION_KEYS = [old_key]
    ciphertext = vault.encrypt(SECRET)
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]

    with pytest.raises(vault.VaultError) as caught:
        vault.decrypt(ciphertext)

    message = str(caught.value)
    assert "FTDASH_ENCRYPTION_KEYS" in message
    for leaked in (SECRET, old_key, new_key, ciphertext):
        assert leaked not in message
        assert leaked not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("ciphertext", ["", "not a token", "gAAAAABnot-really-a-fernet-token==", SECRET, "ü"])
def test_garbage_ciphertext_raises_a_vault_error(ciphertext):
    with pytest.raises(vault.VaultError) as caught:
        vault.decrypt(ciphertext)

    assert "FTDASH_ENCRYPTION_KEYS" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_reencrypt_with_a_wrong_key_raises_a_vault_error_without_the_secret(settings, new_key, old_key):
    settings.FTDASH_ENCRYPTION_KEYS = [old_key]
    ciphertext = vault.encrypt(SECRET)
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]

    with pytest.raises(vault.VaultError) as caught:
        vault.reencrypt(ciphertext)

    assert SECRET not in str(caught.value) and new_key not in str(caught.value)


def test_fetching_with_an_undecryptable_token_makes_no_upstream_call(fake_api, alice_token, settings, new_key):
    remote = fake_api.add_job()
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]  # the key the token was saved under is gone

    with pytest.raises(vault.VaultError) as caught:
        refresh.fetch_job(token=alice_token, job_id=remote["id"])

    assert fake_api.calls == []
    assert "FTDASH_ENCRYPTION_KEYS" in str(caught.value)
    assert ALICE_SECRET not in str(caught.value)


def test_fetching_with_a_corrupted_token_makes_no_upstream_call(fake_api, alice_token):
    remote = fake_api.add_job()
    ApiToken.objects.filter(pk=alice_token.pk).update(secret_encrypted="corrupted")

    with pytest.raises(vault.VaultError):
        refresh.fetch_job(token=ApiToken.objects.get(pk=alice_token.pk), job_id=remote["id"])

    assert fake_api.calls == []


def test_a_refresh_with_an_undecryptable_token_says_why_and_makes_no_call(fake_api, make_job, settings, new_key):
    job = make_job(status="running")
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]

    refresh.refresh_now(job)

    stored = TrackedJob.objects.get(pk=job.pk)
    assert fake_api.calls == []
    assert "FTDASH_ENCRYPTION_KEYS" in stored.refresh_error
    assert stored.snapshot == job.snapshot


def test_tracking_with_an_undecryptable_token_saves_nothing_and_makes_no_call(
    fake_api, alice, alice_token, settings, new_key
):
    remote = fake_api.add_job()
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]

    with pytest.raises(vault.VaultError):
        services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=remote["id"], user=alice)

    assert fake_api.calls == []
    assert TrackedJob.objects.count() == 0


def test_checking_an_undecryptable_token_reports_it_without_a_call(fake_api, alice_token, settings, new_key):
    settings.FTDASH_ENCRYPTION_KEYS = [new_key]

    ok, message = services.token_check(token=alice_token)

    assert ok is False
    assert "FTDASH_ENCRYPTION_KEYS" in message and ALICE_SECRET not in message
    assert fake_api.calls == []
    alice_token.refresh_from_db()
    assert alice_token.last_check_ok is False
