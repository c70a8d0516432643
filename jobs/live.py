"""Live updates: what a page's one poll per interval costs, and what it gets back.

A page marks each live part with the job's *version* (see `job_version`) and asks once per
interval for all of them. The answer holds only the parts whose job changed since, each
rendered once per job version and variant and then shared through the cache by every viewer;
when nothing changed nothing is rendered at all. Finding out costs one query for the
versions of every job the page shows, whatever their number.

A check that finds the same answer as last time changes no version: a tab of quiet running jobs
gets 204s. How fresh the page is ("checked 3 s ago", `checked_at`) therefore travels beside the
parts, in every answer, and the parts show only when their job last changed (`changed_at`).

A poll still refreshes a due job itself (through the single-flight refresh, so viewers never
multiply API calls), a few per poll so that it never waits on many; a running worker claims
due jobs first, and then a poll finds nothing due.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import operator
from collections.abc import Callable, Iterable

from django.core.cache import caches
from django.db import connections, router
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape

from jobs import costs
from jobs.access import jobs_visible_to
from jobs.models import Membership, ShareLink, TrackedJob
from jobs.selectors.alerts import attach_open_alerts, open_alerts_of
from jobs.selectors.job_page import job_live_context
from jobs.selectors.training_log import EventsQuery, recent_checkpoints_of
from jobs.sync import deployments, refresh, training_log

# What a rendered card or live panel shows besides the snapshot (changed_at moves with every
# snapshot that differs from the one stored): any change to these is a new version. Not
# fetched_at or checked_at: they move with every check, and the page shows them apart.
VERSION_FIELDS = (
    "changed_at",
    "refresh_error",
    "consecutive_failures",
    "label",
    "status",
    "stalled_at",
    "workspace_id",
    "token_id",
    "events_synced_at",
    "checkpoints_synced_at",
    "budget_wait_since",
    "cost_frozen_at",  # a finished job's cost frozen, or frozen again ("Recalculate with today's prices")
    "alerts_changed_at",  # a training-health alert raised or cleared (jobs.sync.health)
    "alerts_muted_at",  # "Mute alerts" / "Unmute"
)
MAX_KEYS_PER_POLL = 500
REFRESHES_PER_POLL = 4
RENDERED_SECONDS = 3600
CARD_TEMPLATE = "jobs/dashboard.html#job-card"
JOB_PARTS_TEMPLATE = "jobs/job_detail.html#job-live"
GONE_TEMPLATE = "jobs/dashboard.html#job-card-gone"


# The VERSION_FIELDS of a job as one tuple, read in C: every poll asks this of each job it shows.
_version_values = operator.attrgetter(*VERSION_FIELDS)


def job_version(job: TrackedJob) -> str:
    """A short tag that changes whenever anything a live part shows of `job` changes."""
    values = _version_values(job)
    if job.refresh_error:
        # The failure notice says how old the snapshot is; fetched_at stands still meanwhile.
        values += (job.fetched_at,)
    return _version_of(values)


# Remembered per process: a quiet job's values stay the same from poll to poll, and writing them
# out (an aware datetime's str() above all) cost more than the rest of comparing its version.
# Equal values show the same (an instant is one instant in any time zone), so share one tag.
@functools.lru_cache(maxsize=2048)
def _version_of(values: tuple) -> str:
    return hashlib.blake2s("|".join(map(str, values)).encode(), digest_size=6).hexdigest()


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


@dataclasses.dataclass
class PolledJob:
    """What a poll reads of each job its page shows: enough to tell whether the page's copy is
    current (`job_version`) and whether the job is due a refresh or a read of its training log
    (`refresh.is_due`, `training_log.wanted_by_viewer`), and which variant of its parts the
    viewer gets. Lighter than a model instance: every open page asks for all its jobs every few
    seconds."""

    pk: int
    workspace_id: int
    token_id: int | None
    job_id: str
    label: str
    status: str
    fetched_at: dt.datetime
    checked_at: dt.datetime
    changed_at: dt.datetime
    refresh_error: str
    consecutive_failures: int
    claimed_until: dt.datetime | None
    progress_changed_at: dt.datetime | None
    stalled_at: dt.datetime | None
    events_synced_at: dt.datetime | None
    checkpoints_synced_at: dt.datetime | None
    budget_wait_since: dt.datetime | None
    cost_frozen_at: dt.datetime | None
    alerts_changed_at: dt.datetime | None
    alerts_muted_at: dt.datetime | None
    my_role: str

    # The same rules as the model's.
    is_terminal = TrackedJob.is_terminal
    can_edit = TrackedJob.can_edit
    can_manage = TrackedJob.can_manage


def _versions_of(user, pks: Iterable[int]) -> list[PolledJob]:
    """Those of `pks` the user may see, as `PolledJob`s, in one plain SQL statement: built by
    the ORM, this query and its model instances were most of what an unchanged poll cost
    (bench/polls.py)."""
    pks = list(pks)
    database = router.db_for_read(TrackedJob)
    connection = connections[database]
    sql, datetimes = _versions_sql(database)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(pks=", ".join(["%s"] * len(pks))), [user.pk, *pks])
        rows = cursor.fetchall()
    zone = connection.timezone
    combine = dt.datetime.combine
    jobs = []
    for row in rows:
        values = list(row)
        for at in datetimes:  # aware, as the ORM hands them over
            value = values[at]
            if value is None:
                continue
            if value.__class__ is str:  # SQLite's, as it stores them (see _versions_sql)
                value = parse_datetime(value)
            if value.utcoffset() is None:
                # timezone.make_aware, inline: value.replace(tzinfo=zone), in a quarter of its time
                value = combine(value, value.time(), zone)
            values[at] = value
        jobs.append(PolledJob(*values))
    return jobs


@functools.cache
def _versions_sql(database: str) -> tuple[str, list[int]]:
    """The query of `_versions_of`, with a `{pks}` slot for the placeholders, and which of the
    columns it selects are datetimes."""
    quote = connections[database].ops.quote_name
    job, membership = quote(TrackedJob._meta.db_table), quote(Membership._meta.db_table)

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    by_attname = {field.attname: field for field in TrackedJob._meta.concrete_fields}
    # Every field of PolledJob but the last (the role) is a column of the job's, in that order.
    fields = [by_attname["id" if f.name == "pk" else f.name] for f in dataclasses.fields(PolledJob)[:-1]]
    datetimes = [n for n, field in enumerate(fields) if field.get_internal_type() == "DateTimeField"]
    # SQLite's datetimes as the text it stores (a unary plus has no declared type for Python's
    # sqlite3 to convert by): _versions_of parses them with the parser the ORM's converter calls,
    # without the converter's two calls around it for each value.
    as_text = "+" if connections[database].vendor == "sqlite" else ""
    columns = ", ".join(
        f"{as_text if n in datetimes else ''}{job}.{quote(field.column)}" for n, field in enumerate(fields)
    )
    sql = (
        f"SELECT {columns}, {membership}.{column(Membership, 'role')}"
        f" FROM {job} INNER JOIN {membership}"
        f" ON {membership}.{column(Membership, 'workspace')} = {job}.{column(TrackedJob, 'workspace')}"
        f" WHERE {membership}.{column(Membership, 'user')} = %s AND {job}.{column(TrackedJob, 'id')} IN ({{pks}})"
    )
    return sql, datetimes


def checked_at(jobs: Iterable[TrackedJob | PolledJob]) -> dt.datetime | None:
    """How fresh a page of `jobs` is: the oldest check among those still refreshed whose last
    check worked (a failing one says how old its snapshot is on its own part). None if none."""
    checks = [job.checked_at for job in jobs if not job.is_terminal and not job.refresh_error]
    return min(checks, default=None)


def changed_jobs(
    user, shown: dict[int, str], *, with_training_log: bool = False
) -> tuple[list[TrackedJob | PolledJob], list[int], dt.datetime | None]:
    """The jobs among `shown` whose version moved on, the pks the user may no longer see
    (removed, or their membership ended), and how fresh the jobs shown are (`checked_at`).
    `with_training_log`: the page shows the jobs' events and checkpoints, so keep those coming
    too.

    A changed job is loaded as a model only if this poll refreshed it or read its log; the others
    stay `PolledJob`s, which `rendered` loads only if their part is not cached."""
    if not shown:
        return [], [], None
    current = {job.pk: job for job in _versions_of(user, shown)}
    gone = [pk for pk in shown if pk not in current]
    due = [job.pk for job in _most_overdue(current.values())]
    refreshed = {job.pk: job for job in refresh_due(jobs_visible_to(user).filter(pk__in=due))} if due else {}
    current.update(refreshed)
    if with_training_log:
        wanted = [
            job.pk
            for job in current.values()
            if job.pk not in refreshed
            and training_log.wanted_by_viewer(job, interval=refresh.base_interval(job.status))
        ]
        for job in jobs_visible_to(user).filter(pk__in=wanted):
            current[job.pk] = refresh.sync_training_log(job)
    changed = [job for pk, job in current.items() if job_version(job) != shown[pk]]
    return changed, gone, checked_at(current.values())


def changed_shared_job(
    key: str, shown: dict[int, str]
) -> tuple[list[TrackedJob | PolledJob], dt.datetime | None] | None:
    """`changed_jobs` for a read-only share link's page (anyone who holds the key, signed in or
    not): the link's job if its version moved on from the one `shown`, and how fresh it is; None
    when the key opens nothing (unknown, revoked, expired). One query when nothing is due; a due
    job is refreshed (single-flight, as for signed-in viewers) and its log kept coming."""
    if not ShareLink.looks_like_key(key):
        return None
    links = ShareLink.objects.usable().filter(key_hash=ShareLink.hash_key(key)).values("job_id")
    row = TrackedJob.objects.filter(pk__in=links).values_list(*_polled_attnames()).first()
    if row is None:
        return None
    job: TrackedJob | PolledJob = PolledJob(*row, my_role="")
    if refresh.is_due(job):
        job = refresh.refresh_if_due(_shared_model(job.pk))
    elif training_log.wanted_by_viewer(job, interval=refresh.base_interval(job.status)):
        job = refresh.sync_training_log(_shared_model(job.pk))
    changed = [job] if job_version(job) != shown.get(job.pk, "") else []
    return changed, checked_at([job])


@functools.cache
def _polled_attnames() -> list[str]:
    """The job's columns a `PolledJob` holds, in its order (all of its fields but the role)."""
    return ["id" if f.name == "pk" else f.name for f in dataclasses.fields(PolledJob)[:-1]]


def _shared_model(pk: int) -> TrackedJob:
    # No role: a shared page's job has no edit or owner controls (can_edit, can_manage).
    return TrackedJob.objects.select_related("workspace", "token").get(pk=pk)


def refresh_due(jobs: Iterable[TrackedJob]) -> list[TrackedJob]:
    """Refresh the few of `jobs` that are most overdue, in place, and return those.

    What a viewer's page load or poll does when no worker got there first; single-flight,
    so many viewers still cause one API call per job and interval.
    """
    due = _most_overdue(jobs)
    for job in due:
        refresh.refresh_if_due(job)
    return due


def _most_overdue(jobs: Iterable[TrackedJob | PolledJob]) -> list:
    """The few due jobs a request refreshes, least recently checked first, so that with more due
    jobs than that (a page of many running jobs and no worker) every one gets its turn."""
    now = timezone.now()  # one clock reading for the lot: every poll asks this of each job it shows
    due = sorted((job for job in jobs if refresh.is_due(job, now=now)), key=lambda job: job.checked_at)
    return due[:REFRESHES_PER_POLL]


def render_cards(jobs: list[TrackedJob], *, viewer=None) -> list[str]:
    """The dashboard cards of `jobs`, each rendered once per version and variant: the same
    HTML for the page and for its polls."""
    return rendered(jobs, part="card", render=_cards, viewer=viewer)


def _cards(jobs: list[TrackedJob]) -> list[str]:
    recent = recent_checkpoints_of(jobs)  # the cards' loss sparklines, in one query
    costs.attach(jobs)  # the cards' cost lines: one query and one cache call, only for cards rendered
    attach_open_alerts(jobs)  # the cards' alert badges: one query, only for cards rendered
    return [
        render_to_string(
            CARD_TEMPLATE,
            {
                "job": job,
                "recent_checkpoints": recent[job.pk],
                "deployments": deployments.deployments_of(job),
                "cost": costs.cost_of(job),
                "alerts": open_alerts_of(job),
            },
        )
        for job in jobs
    ]


def render_job_parts(jobs: list[TrackedJob | PolledJob], *, events_query: EventsQuery, viewer) -> list[str]:
    """The live part of each job's page (`job-live`), as the page renders it inline, for the
    variant of the Events panel the page shows; each rendered once per version and variant."""
    return rendered(
        jobs,
        part=f"job{events_query.variant}",
        viewer=viewer,
        owners_apart=True,  # the Cost panel's "Add a training price"
        render=lambda jobs: _job_parts(jobs, events_query),
    )


def _job_parts(jobs: list[TrackedJob], events_query: EventsQuery, *, shared: bool = False) -> list[str]:
    costs.attach(jobs)  # the Cost panel's, for every job rendered at once (job_live_context reads it)
    attach_open_alerts(jobs)  # the alerts panel's, likewise
    extra = {"shared": True, "share_live_url": SHARE_LIVE_URL_SLOT} if shared else {}
    return [
        render_to_string(
            JOB_PARTS_TEMPLATE, {"job": job, **extra, **job_live_context(job, events_query, shared=shared)}
        )
        for job in jobs
    ]


# Where a shared page's poll URL goes in its cached live part. The URL holds the link's key, a
# secret that is neither stored nor cached: the part is rendered once per job version for every
# link's viewers, and each answer puts its own poll URL in this slot (`render_shared_job_parts`).
SHARE_LIVE_URL_SLOT = "ftdash-share-live-url-slot"


def render_shared_job_parts(
    jobs: list[TrackedJob | PolledJob], *, events_query: EventsQuery, live_url: str
) -> list[str]:
    """The live part of a read-only share link's page (`job-live` without the raw JSON, edit
    controls or names of the workspace's people): a variant of its own in the render cache, apart
    from every signed-in one, polling `live_url`."""
    html = rendered(
        jobs,
        part=f"job{events_query.variant}",
        variant="shared",
        load=lambda pks: TrackedJob.objects.filter(pk__in=pks).select_related("workspace", "token"),
        render=lambda jobs: _job_parts(jobs, events_query, shared=True),
    )
    return [part.replace(SHARE_LIVE_URL_SLOT, escape(live_url)) for part in html]


def rendered(
    jobs: list[TrackedJob | PolledJob],
    *,
    part: str,
    render: Callable[[list[TrackedJob]], list[str]],
    viewer=None,
    owners_apart: bool = False,
    variant: str | None = None,
    load: Callable[[list[int]], Iterable[TrackedJob]] | None = None,
) -> list[str]:
    """Each job's `part` rendered once per version and variant, shared by every viewer
    (`owners_apart`: the part shows owners more than members, so they get a variant of their own;
    `variant`: one variant for every viewer, such as a share link's).

    A poll's `PolledJob`s are loaded in full, as `viewer` sees them (or by `load`), only when
    their part is not in the cache."""
    deployments.attach(jobs)  # the "deployed" variant, for every job in one cache read
    keys = {job.pk: _render_key(job, part, owners_apart, variant) for job in jobs}
    try:
        cached = caches["rendered"].get_many(list(keys.values()))
    except Exception:
        cached = {}  # a cache outage costs renders, never the page
    missing = [job for job in jobs if keys[job.pk] not in cached]
    partial = {job.pk: job for job in missing if isinstance(job, PolledJob)}
    if partial:
        loaded = load(list(partial)) if load else jobs_visible_to(viewer).filter(pk__in=partial)
        full = {job.pk: job for job in loaded}
        for job in full.values():
            job._deployments = partial[job.pk]._deployments
            keys[job.pk] = _render_key(job, part, owners_apart, variant)  # it may have moved on again meanwhile
        # (One removed meanwhile is left out: the next poll finds it gone.)
        missing = [full.get(job.pk, job) for job in missing if job.pk in full or job.pk not in partial]
    fresh = {keys[job.pk]: html for job, html in zip(missing, render(missing), strict=True)}
    if fresh:
        try:
            caches["rendered"].set_many(fresh, RENDERED_SECONDS)
        except Exception:
            pass
    cached.update(fresh)
    return [cached[keys[job.pk]] for job in jobs if keys[job.pk] in cached]


def _render_key(job: TrackedJob, part: str, owners_apart: bool = False, variant: str | None = None) -> str:
    # The ways a part differs between viewers: edit links for owners and members only, and on
    # the job page the Cost panel's "Add a training price" for owners only; a share link's page
    # has a variant of its own.
    if variant is None:
        variant = "manage" if owners_apart and job.can_manage else "edit" if job.can_edit else "view"
    # Deployments are not in the version (they are read from the cache the refresh fills).
    deployed = "deployed" if getattr(job, "_deployments", None) else ""
    return f"ftdash:live:{part}:{job.pk}:{job_version(job)}:{variant}{deployed}"
