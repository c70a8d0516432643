"""What a job page's live part shows beside the snapshot, read once for the page and for each of
its live polls: the state timeline, the Events panel, the checkpoints (table and curves), the
files' names and the deployments. The template tags only shape what these hand them."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from jobs.models import TrackedJob
from jobs.selectors.training_log import EventsQuery, checkpoints_of, events_view
from jobs.sync import deployments, files
from jobs.sync.history import timeline


def job_timeline(job: TrackedJob) -> list[dict]:
    """The job's state changes, each with how long it lasted: one query."""
    return timeline(list(job.events.all()), now=timezone.now(), is_terminal=job.is_terminal)


def job_live_context(job: TrackedJob, events_query: EventsQuery) -> dict[str, Any]:
    """The context of the job page's `job-live` partial besides `job`: four queries (the timeline,
    the events and their counts, the checkpoints) and two cache reads (file names, deployments)."""
    return {
        "events_query": events_query,
        "timeline": job_timeline(job),
        "events_log": events_view(job, events_query),
        "checkpoints": checkpoints_of(job),
        "files": files.files_known(files.file_ids(job.details)),
        "deployments": deployments.deployments_of(job),
    }
