"""Django's test client as the in-process tests use it: signed in as someone, and a job's page."""

from __future__ import annotations

from django.test import Client

from jobs.models import TrackedJob


def signed_in(user) -> Client:
    """A client of its own, signed in as `user` (requests that raise fail the test)."""
    client = Client(raise_request_exception=True)
    client.force_login(user)
    return client


def job_page(client: Client, job: TrackedJob) -> str:
    """The job's page as `client` sees it; it must answer 200."""
    response = client.get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    return response.content.decode()
