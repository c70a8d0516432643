"""Shared fixtures: a fake Token Factory over real HTTP, three people, and what several test
modules build on them (a running job, the objects of the authorization table, Chromium).

alice owns a workspace (her personal one), bob is a member of a team workspace alice owns,
charlie is an outsider who must never see either. Helpers that are not fixtures are in
tests/support/.
"""

from __future__ import annotations

import copy
import os
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

from jobs import services
from jobs.models import Membership, TrackedJob, Workspace
from tests.support.accounts import ALICE_SECRET, track_remote_job
from tests.support.authorization import known_upstream, team_objects
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, unavailable
from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.payloads import job_payload

# Fixtures through which a test reaches the database (and so the database cache).
_DATABASE_FIXTURES = {"db", "transactional_db", "_django_db_helper", "django_db_reset_sequences"}


@pytest.fixture(autouse=True)
def _caches_emptied_after_each_test(request, django_db_blocker):
    """Nothing a test leaves in a cache reaches the next one.

    The database cache's table is not a model's, so the flush after a `transaction=True` test
    keeps its rows, and SQLite then hands out the same primary keys again: a "this job's log is
    behind" mark left for job 3 made the next test's job 3 read its log (a flake seen in CI).
    """
    yield
    if _DATABASE_FIXTURES & set(request.fixturenames):
        with django_db_blocker.unblock():
            for cache in caches.all():
                cache.clear()


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


def _team(alice, bob) -> Workspace:
    workspace = Workspace.objects.create(name="Research team")
    Membership.objects.create(workspace=workspace, user=alice, role=Membership.Role.OWNER)
    Membership.objects.create(workspace=workspace, user=bob, role=Membership.Role.MEMBER)
    return workspace


@pytest.fixture
def team(alice, bob) -> Workspace:
    return _team(alice, bob)


def _alice_token(alice):
    return services.token_create(workspace=alice.personal_workspace, user=alice, name="research", secret=ALICE_SECRET)


@pytest.fixture
def alice_token(alice, alice_workspace):
    return _alice_token(alice)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _job_maker(alice, alice_token):
    def make(workspace=None, token=None, fetched_at=None, **fields) -> TrackedJob:
        payload = job_payload(**fields)
        now = fetched_at or timezone.now()
        return TrackedJob.objects.create(
            workspace=workspace or alice.personal_workspace,
            token=token or alice_token,
            job_id=payload["id"],
            added_by=alice,
            snapshot=payload,
            status=payload["status"],
            fetched_at=now,
            checked_at=now,
        )

    return make


@pytest.fixture
def make_job(alice, alice_workspace, alice_token):
    """Store a tracked job with a snapshot directly (no network), for page tests."""
    return _job_maker(alice, alice_token)


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
        browser = playwright.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def _team_objects_of_the_module(django_db_setup, django_db_blocker):
    """The objects of the authorization table, made once for a module's hundreds of tests (as
    Django's setUpTestData does): in a transaction held open around the module and rolled back
    after it, inside which each test's own transaction (the `db` fixture) rolls back what the
    test did. The same people, team, token and job as the function fixtures above make."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            alice, bob, charlie = _user("alice"), _user("bob"), _user("charlie")
            team = _team(alice, bob)
            made = team_objects(alice, bob, charlie, team, _job_maker(alice, _alice_token(alice)))
        except BaseException:
            outer.__exit__(*sys.exc_info())
            raise
    yield made
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


@pytest.fixture
def objects(_team_objects_of_the_module, db, fake_api) -> dict:
    """Everything the routes of the authorization table act on (tests/support/authorization.py),
    as if made for this test alone: fresh copies of the module's objects, its job just fetched
    (as a job made now would be), and its tokens and jobs known to this test's fake API."""
    made = copy.deepcopy(_team_objects_of_the_module)
    now = timezone.now()
    TrackedJob.objects.filter(pk=made["job"].pk).update(fetched_at=now, checked_at=now)
    made["job"].fetched_at = made["job"].checked_at = now
    known_upstream(made, fake_api)
    return made


@pytest.fixture
def running_job(fake_api, alice, alice_token) -> TrackedJob:
    """A running job of alice's on the fake API (step 10 of 100), tracked in her workspace."""
    return track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
