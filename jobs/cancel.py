"""Cancelling a job on Token Factory (`POST /v1/fine_tuning/jobs/{id}/cancel`).

Not every Token Factory offers it: an endpoint that answers 404 or 405 is remembered per API
base URL (in the shared cache, for a month), and the button is not offered again there. After
a cancel the job is refreshed at once, so the page shows what the API now says, and the
workspace's audit trail records who cancelled it.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

from jobs import refresh
from jobs.models import ApiToken, TrackedJob
from jobs.services import audit_record
from jobs.tokenfactory import NotOffered, RateLimited

NOT_OFFERED_SECONDS = 30 * 24 * 3600


def _not_offered_key() -> str:
    base_url = settings.FTDASH_API_BASE_URL.rstrip("/")
    return "ftdash:cancel-not-offered:" + hashlib.blake2s(base_url.encode(), digest_size=10).hexdigest()


def cancel_offered() -> bool:
    """False once this API base URL answered a cancel with 404 or 405."""
    try:
        return not cache.get(_not_offered_key())
    except Exception:
        return True  # a cache outage: offer it; the API's answer is remembered next time


def can_cancel(job: TrackedJob) -> bool:
    return not job.is_terminal and job.token_id is not None and cancel_offered()


def job_cancel(*, job: TrackedJob, actor) -> TrackedJob:
    """Ask Token Factory to cancel `job`, record who did, and refresh the job at once.

    Raises ValidationError for a job that cannot be cancelled from here, NotOffered (and
    remembers it) when the API has no cancel, and TokenFactoryError for any other failure.
    """
    if job.is_terminal:
        raise ValidationError(f"{job.job_id} has already finished ({job.status}); there is nothing to cancel.")
    token = ApiToken.objects.filter(pk=job.token_id).first()
    if token is None:
        raise ValidationError("The API token this job used was deleted; move the job to another token first.")
    try:
        token.client().cancel_job(job.job_id)
    except NotOffered:
        cache.set(_not_offered_key(), True, NOT_OFFERED_SECONDS)
        raise
    except RateLimited as exc:
        refresh.pause_token(token, exc)
        raise
    audit_record(workspace=job.workspace, actor=actor, action="job.cancel",
                 description=f"cancelled job {job.job_id}")
    return refresh.refresh_now(job)
