"""Shared fixtures: a fake Token Factory over real HTTP, and three people.

alice owns a workspace (her personal one), bob is a member of a team workspace alice owns,
charlie is an outsider who must never see either.
"""

from __future__ import annotations

import itertools
import os

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs import services
from jobs.models import Membership, TrackedJob, Workspace
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, unavailable
from tests.fake_tokenfactory import FakeTokenFactory

ALICE_SECRET = "sk-alice-0123456789-SECRET-wxyz"


@pytest.fixture
def fake_api(settings):
    """A fake Token Factory on loopback, with ftdash pointed at it and fast retries."""
    with FakeTokenFactory() as server:
        settings.FTDASH_API_BASE_URL = server.url
        server.add_token(ALICE_SECRET)
        yield server


def _user(username: str):
    return get_user_model().objects.create_user(username=username, password=f"{username}-password-1")


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


@pytest.fixture
def charlie(db):
    return _user("charlie")


@pytest.fixture
def alice_workspace(alice) -> Workspace:
    return alice.personal_workspace


@pytest.fixture
def team(alice, bob) -> Workspace:
    workspace = Workspace.objects.create(name="Research team")
    Membership.objects.create(workspace=workspace, user=alice, role=Membership.Role.OWNER)
    Membership.objects.create(workspace=workspace, user=bob, role=Membership.Role.MEMBER)
    return workspace


@pytest.fixture
def alice_token(alice, alice_workspace):
    return services.token_create(
        workspace=alice_workspace, user=alice, name="research", secret=ALICE_SECRET
    )


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


_job_numbers = itertools.count(1)


def job_payload(**fields) -> dict:
    """A realistic job body as the API sends it; `fields` override."""
    number = next(_job_numbers)
    payload = {
        "id": f"ftjob-{number:032x}",
        "object": "fine_tuning.job",
        "created_at": 1753341502,
        "error": None,
        "finished_at": None,
        "hyperparameters": {"batch_size": 32, "n_epochs": 10, "learning_rate": 1e-05, "lora": True, "lora_r": 16},
        "model": "Qwen/Qwen3-4B",
        "organization_id": "",
        "result_files": [],
        "seed": 42,
        "status": "running",
        "trained_tokens": 1000,
        "training_file": "file-76807105",
        "validation_file": None,
        "estimated_finish": None,
        "integrations": None,
        "method": None,
        "suffix": "my-run",
        "trained_steps": 25,
        "total_steps": 100,
    }
    payload.update(fields)
    return payload


def track_remote_job(fake_api, user, token, **fields) -> TrackedJob:
    """Add a job to the fake API and track it (fetching it once) in the user's personal workspace."""
    remote = fake_api.add_job(**fields)
    return services.job_track(
        workspace=user.personal_workspace, token=token, job_id=remote["id"], user=user
    )


@pytest.fixture
def make_job(alice, alice_workspace, alice_token):
    """Store a tracked job with a snapshot directly (no network), for page tests."""

    def make(workspace=None, token=None, fetched_at=None, **fields) -> TrackedJob:
        payload = job_payload(**fields)
        now = fetched_at or timezone.now()
        return TrackedJob.objects.create(
            workspace=workspace or alice_workspace,
            token=token or alice_token,
            job_id=payload["id"],
            added_by=alice,
            snapshot=payload,
            status=payload["status"],
            fetched_at=now,
            checked_at=now,
        )

    return make


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    if not os.path.exists(CHROMIUM):
        unavailable("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[test]'")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_executable):
    """One Chromium for the whole run: Playwright's sync API allows one instance per process."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()
