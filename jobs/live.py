"""Live updates: what a page's one poll per interval costs, and what it gets back.

A page marks each live part with the job's *version* (see `job_version`) and asks once per
interval for all of them. The answer holds only the parts whose job changed since, each
rendered once per job version and variant and then shared through the cache by every viewer;
when nothing changed nothing is rendered at all. Finding out costs one query for the
versions of every job the page shows, whatever their number.

A poll still refreshes a due job itself (through the single-flight refresh, so viewers never
multiply API calls), a few per poll so that it never waits on many; a running worker claims
due jobs first, and then a poll finds nothing due.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from django.core.cache import caches
from django.db.models import QuerySet
from django.template.loader import render_to_string

from jobs import deployments, refresh, training_log
from jobs.access import jobs_visible_to
from jobs.models import TrackedJob

# What a rendered card or live panel shows besides the snapshot (fetched_at moves with every
# stored snapshot): any change to these is a new version.
VERSION_FIELDS = (
    "fetched_at",
    "checked_at",
    "refresh_error",
    "consecutive_failures",
    "label",
    "status",
    "stalled_at",
    "workspace_id",
    "token_id",
    "events_synced_at",
    "checkpoints_synced_at",
)
# What `refresh.is_due` and `training_log.wanted_by_viewer` need, on top of the version fields.
DUE_FIELDS = ("claimed_until", "progress_changed_at")
MAX_KEYS_PER_POLL = 500
REFRESHES_PER_POLL = 4
RENDERED_SECONDS = 3600
CARD_TEMPLATE = "jobs/dashboard.html#job-card"


def job_version(job: TrackedJob) -> str:
    """A short tag that changes whenever anything a live part shows of `job` changes."""
    text = "|".join(str(getattr(job, name)) for name in VERSION_FIELDS)
    return hashlib.blake2s(text.encode(), digest_size=6).hexdigest()


def parse_shown(values: Iterable[str]) -> dict[int, str]:
    """`["12.ab34", …]` from the query string as {job pk: version shown}; junk is skipped."""
    shown: dict[int, str] = {}
    for value in values:
        pk, _, version = value.partition(".")
        if pk.isascii() and pk.isdigit() and len(pk) <= 18 and len(version) <= 32:
            shown[int(pk)] = version
        if len(shown) >= MAX_KEYS_PER_POLL:
            break
    return shown


def _versions_of(user, pks: Iterable[int]) -> QuerySet[TrackedJob]:
    return TrackedJob.objects.filter(workspace__memberships__user=user, pk__in=list(pks)).only(
        "pk", "job_id", "workspace", "token", *(name for name in VERSION_FIELDS + DUE_FIELDS if not name.endswith("_id"))
    )


def changed_jobs(
    user, shown: dict[int, str], *, with_training_log: bool = False
) -> tuple[list[TrackedJob], list[int]]:
    """The jobs among `shown` whose version moved on (fully loaded), and the pks the user may
    no longer see (removed, or their membership ended). `with_training_log`: the page shows
    the jobs' events and checkpoints, so keep those coming too."""
    if not shown:
        return [], []
    current = {job.pk: job for job in _versions_of(user, shown)}
    gone = [pk for pk in shown if pk not in current]
    # Fully loaded (and current) once refreshed or their log read: not loaded a second time.
    loaded: dict[int, TrackedJob] = {}
    due = [job.pk for job in current.values() if refresh.is_due(job)][:REFRESHES_PER_POLL]
    if due:
        loaded.update({job.pk: job for job in refresh_due(jobs_visible_to(user).filter(pk__in=due))})
    if with_training_log:
        wanted = [
            job.pk for job in current.values()
            if job.pk not in loaded and training_log.wanted_by_viewer(job, interval=refresh.base_interval(job.status))
        ]
        for job in jobs_visible_to(user).filter(pk__in=wanted):
            loaded[job.pk] = refresh.sync_training_log(job)
    current.update(loaded)
    changed = [pk for pk, job in current.items() if job_version(job) != shown[pk]]
    missing = [pk for pk in changed if pk not in loaded]
    if missing:
        loaded.update({job.pk: job for job in jobs_visible_to(user).filter(pk__in=missing)})
    return [loaded[pk] for pk in changed if pk in loaded], gone


def refresh_due(jobs: Iterable[TrackedJob]) -> list[TrackedJob]:
    """Refresh the first few of `jobs` that are due, in place, and return those.

    What a viewer's page load or poll does when no worker got there first; single-flight,
    so many viewers still cause one API call per job and interval.
    """
    due = [job for job in jobs if refresh.is_due(job)][:REFRESHES_PER_POLL]
    for job in due:
        refresh.refresh_if_due(job)
    return due


def render_cards(jobs: list[TrackedJob]) -> list[str]:
    """The dashboard cards of `jobs`, each rendered once per version and variant: the same
    HTML for the page and for its polls."""
    deployments.attach(jobs)  # the cards' "deployed" marks, in one cache read
    training_log.attach_recent_checkpoints(jobs)  # the cards' loss sparklines, in one query
    return rendered(jobs, part="card", render=lambda job: render_to_string(CARD_TEMPLATE, {"job": job}))


def rendered(jobs: list[TrackedJob], *, part: str, render: Callable[[TrackedJob], str]) -> list[str]:
    """Each job's `part` rendered once per version and variant, shared by every viewer."""
    keys = {job.pk: _render_key(job, part) for job in jobs}
    try:
        cached = caches["rendered"].get_many(list(keys.values()))
    except Exception:
        cached = {}  # a cache outage costs renders, never the page
    fresh = {}
    html = []
    for job in jobs:
        key = keys[job.pk]
        if key not in cached:
            fresh[key] = cached[key] = render(job)
        html.append(cached[key])
    if fresh:
        try:
            caches["rendered"].set_many(fresh, RENDERED_SECONDS)
        except Exception:
            pass
    return html


def _render_key(job: TrackedJob, part: str) -> str:
    # The one way a part differs between viewers: edit links for owners and members only.
    variant = "edit" if job.can_edit else "view"
    # Deployments are not in the version (they are read from the cache the refresh fills).
    deployed = "deployed" if getattr(job, "_deployments", None) else ""
    return f"ftdash:live:{part}:{job.pk}:{job_version(job)}:{variant}{deployed}"
