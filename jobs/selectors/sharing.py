"""Reads for read-only share links and status badges: the job a link opens, a job's links for
its page, and a badge's one row (jobs.badges says what the badge shows)."""

from __future__ import annotations

from django.db.models import Count, Q

from jobs import badges
from jobs.models import ShareLink, TrackedJob, Workspace


def shared_job(key: str) -> tuple[ShareLink, TrackedJob] | None:
    """The usable link with this key and its job (one query), or None: an unknown, revoked or
    expired key opens nothing."""
    if not ShareLink.looks_like_key(key):
        return None
    link = ShareLink.objects.usable().filter(key_hash=ShareLink.hash_key(key)).select_related("job").first()
    return (link, link.job) if link else None


def job_share_links(job: TrackedJob) -> list[ShareLink]:
    """The job's links that still open it, newest first, with who made them."""
    return list(ShareLink.objects.usable().filter(job=job).select_related("created_by"))


def badge_for(key: str) -> badges.Badge | None:
    """The badge whose key this is, in one query; None for a key that is not (or no longer) one."""
    parsed = badges.parse_key(key)
    if parsed is None:
        return None
    if parsed.kind == badges.JOB:
        job = (
            TrackedJob.objects.filter(pk=parsed.pk).only("pk", "badge_rotation", "label", "status", "snapshot").first()
        )
        if job is None or not parsed.matches(job.badge_rotation):
            return None
        return badges.job_badge(label=job.label, details=job.details)
    row = (
        Workspace.objects.filter(pk=parsed.pk)
        .annotate(
            running=Count("jobs", filter=Q(jobs__status="running")),
            failed=Count("jobs", filter=Q(jobs__status="failed")),
        )
        .values_list("badge_rotation", "name", "running", "failed")
        .first()
    )
    if row is None or not parsed.matches(row[0]):
        return None
    return badges.workspace_badge(name=row[1], running=row[2], failed=row[3])
