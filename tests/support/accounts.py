"""People and what they hold, for tests that name it: alice's API-token secret (the fake Token
Factory of tests/conftest.py knows it), more people than conftest's three, and a job of the fake
tracked in someone's personal workspace.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from jobs import services
from jobs.access import user_memberships
from jobs.models import TrackedJob

ALICE_SECRET = "sk-alice-0123456789-SECRET-wxyz"


def track_remote_job(fake_api, user, token, **fields) -> TrackedJob:
    """Add a job to the fake API and track it (fetching it once) in the user's personal workspace."""
    remote = fake_api.add_job(**fields)
    return services.job_track(workspace=user.personal_workspace, token=token, job_id=remote["id"], user=user)


def new_user(username: str, **extra):
    """A person with a personal workspace, as sign-up makes one (password: <username>-password-1)."""
    user = get_user_model().objects.create_user(username=username, password=f"{username}-password-1", **extra)
    user_memberships(user)
    return user
