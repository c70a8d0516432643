"""What the people of tests/conftest.py hold, for tests that name it: alice's API-token secret
(the fake Token Factory knows it), and a job of the fake tracked in someone's personal workspace.
"""

from __future__ import annotations

from jobs import services
from jobs.models import TrackedJob

ALICE_SECRET = "sk-alice-0123456789-SECRET-wxyz"


def track_remote_job(fake_api, user, token, **fields) -> TrackedJob:
    """Add a job to the fake API and track it (fetching it once) in the user's personal workspace."""
    remote = fake_api.add_job(**fields)
    return services.job_track(workspace=user.personal_workspace, token=token, job_id=remote["id"], user=user)
