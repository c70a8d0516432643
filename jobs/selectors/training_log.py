"""A job's stored training log, as the pages show it: the Events panel, checkpoints, sparklines.

The rows are written by jobs.sync.training_log; this module only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from jobs.models import TrackedJob, TrainingCheckpoint, TrainingEvent

EVENTS_SHOWN = 50  # the newest events a job page shows; "Show older" adds as many again
MAX_EVENTS_SHOWN = 2000
EVENT_LEVELS = tuple(TrainingEvent.Level.values)  # info, warning, error
#: Checkpoints a dashboard card's sparkline draws (the latest ones).
SPARKLINE_CHECKPOINTS = 20


@dataclass(frozen=True)
class EventsQuery:
    """What the Events panel shows: a level (or all) and how many of the newest events.

    Part of the job page's URL (`?level=warning&events=100`) so it works without JavaScript,
    and sent along by the page's live poll, so an update keeps what the reader chose.
    """

    level: str = ""
    count: int = EVENTS_SHOWN

    @classmethod
    def from_params(cls, params) -> EventsQuery:
        level = params.get("level", "")
        raw = params.get("events", "")
        count = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 6 else EVENTS_SHOWN
        return cls(
            level=level if level in EVENT_LEVELS else "",
            count=min(MAX_EVENTS_SHOWN, max(EVENTS_SHOWN, count)),
        )

    def query(self, **changes: Any) -> str:
        """This query as URL parameters (defaults left out), with `changes` applied."""
        values = {"level": self.level, "events": self.count, **changes}
        params = {}
        if values["level"]:
            params["level"] = values["level"]
        if values["events"] != EVENTS_SHOWN:
            params["events"] = values["events"]
        return urlencode(params)

    @property
    def variant(self) -> str:
        """How live renders of the job page differ by this query (see jobs.live.rendered)."""
        return f"{self.level or 'all'}-{self.count}"


@dataclass
class EventsView:
    events: list[TrainingEvent]  # newest first
    counts: dict[str, int]  # per level, and "all"
    has_older: bool
    query: EventsQuery

    @property
    def filters(self) -> list[dict[str, Any]]:
        """The level filter's links: all, then each level, with counts and the current one."""
        return [
            {
                "label": (level or "all").capitalize(),
                "count": self.counts.get(level or "all", 0),
                "query": self.query.query(level=level, events=EVENTS_SHOWN),
                "current": level == self.query.level,
            }
            for level in ("", *EVENT_LEVELS)
        ]

    @property
    def older_query(self) -> str:
        return self.query.query(events=min(MAX_EVENTS_SHOWN, self.query.count + EVENTS_SHOWN))


def events_view(job: TrackedJob, query: EventsQuery) -> EventsView:
    """The newest events of the chosen level, and how many there are of each: two queries."""
    events = TrainingEvent.objects.filter(job=job)
    counts = dict.fromkeys(EVENT_LEVELS, 0)
    for row in events.values("level").annotate(n=Count("pk")).order_by():
        counts[row["level"]] = counts.get(row["level"], 0) + row["n"]
    counts["all"] = sum(counts.values())
    if query.level:
        events = events.filter(level=query.level)
    shown = list(events.order_by("-created_at", "-pk")[: query.count + 1])
    return EventsView(events=shown[: query.count], counts=counts, has_older=len(shown) > query.count, query=query)


def checkpoints_of(job: TrackedJob) -> list[TrainingCheckpoint]:
    """The job's checkpoints by step, in one query."""
    return list(TrainingCheckpoint.objects.filter(job=job).order_by(F("step").asc(nulls_last=True), "created_at", "pk"))


def recent_checkpoints_of(jobs: list[TrackedJob]) -> dict[int, list[TrainingCheckpoint]]:
    """{job pk: its latest checkpoints by step} for every job shown (the cards' sparklines), in
    one query, and none at all when no job on the page has any."""
    by_job: dict[int, list[TrainingCheckpoint]] = {job.pk: [] for job in jobs}
    with_checkpoints = [job for job in jobs if job.checkpoints_synced_at is not None]
    if not with_checkpoints:
        return by_job
    ranked = (
        TrainingCheckpoint.objects.filter(job__in=with_checkpoints)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("job_id")], order_by=[F("step").desc(nulls_last=True), F("pk").desc()]
            )
        )
        .filter(rank__lte=SPARKLINE_CHECKPOINTS)
        .only("job_id", "step", "metrics")
    )
    for checkpoint in ranked:
        by_job[checkpoint.job_id].append(checkpoint)
    for checkpoints in by_job.values():
        checkpoints.sort(key=lambda c: (c.step is None, c.step or 0, c.pk))
    return by_job
