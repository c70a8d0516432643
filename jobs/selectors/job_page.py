"""What a job page's live part shows beside the snapshot, read once for the page and for each of
its live polls: the state timeline, the Events panel, the checkpoints (table and curves), the
files' names, the deployments, what the job costs, and its best checkpoint (with the alerts
marked on its curves and whether the best one is deployed). The template tags only shape what these
hand them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from jobs import costs, training_health
from jobs.humanize import usd
from jobs.models import JobAlert, JobEvent, TrackedJob
from jobs.pricing import price_text
from jobs.selectors.alerts import open_alerts_of
from jobs.selectors.training_log import EventsQuery, checkpoints_of, events_view
from jobs.sync import deployments, files
from jobs.sync.history import timeline


def job_timeline(job: TrackedJob, *, shared: bool = False) -> list[dict]:
    """The job's state changes, each with how long it lasted: one query. `shared`: as a read-only
    share link shows them, without what belongs to the workspace rather than the job (its budget)
    and with the kind of event in place of a message that names a token."""
    events = list(job.events.exclude(kind__in=WORKSPACE_EVENTS) if shared else job.events.all())
    if shared:
        for event in events:
            if event.kind in TOKEN_EVENTS:
                event.message = event.get_kind_display()
    return timeline(events, now=timezone.now(), is_terminal=job.is_terminal)


# Timeline events a share link's page leaves out (the workspace's month's spend and budget, its
# expensive-job warning), or shows by their kind alone.
WORKSPACE_EVENTS = (JobEvent.Kind.BUDGET_80, JobEvent.Kind.BUDGET_100, JobEvent.Kind.COST_PROJECTION)
TOKEN_EVENTS = (JobEvent.Kind.STARTED,)  # "found by watching token “research”"


# A cost frozen within this long of the job's end was frozen "when the job finished"; later, it
# was frozen by the worker's sweep or by "Recalculate with today's prices".
FROZEN_AT_FINISH = dt.timedelta(hours=1)


@dataclass(frozen=True)
class CostPanel:
    """The job page's Cost panel: the cost (`jobs.costs`) and its working, written out."""

    cost: costs.JobCost
    # "2,048,000 trained tokens × $0.40 per 1M tokens = $0.82", when both are known.
    formula: str
    # "$0.82 × 100 total steps ÷ 25 trained steps ≈ $3.28", while a projection is shown.
    projection: str
    # When a finished job's price was frozen, and whether that was when it finished.
    frozen_at: dt.datetime | None
    frozen_at_finish: bool

    @property
    def so_far_text(self) -> str:
        return usd(self.cost.so_far)

    @property
    def projected_text(self) -> str:
        return usd(self.cost.projected)

    @property
    def price_per_million_text(self) -> str:
        price = self.cost.price
        return f"${price_text(price.usd_per_million)} per 1M training tokens" if price is not None else ""


def cost_panel(job: TrackedJob) -> CostPanel:
    """What the Cost panel shows: no query when `jobs.costs.attach` ran on the page's jobs."""
    cost = costs.cost_of(job)
    formula = projection = ""
    if cost.price is not None and cost.tokens is not None and cost.so_far is not None:
        formula = f"{cost.tokens:,} trained tokens × ${price_text(cost.price.usd_per_million)} per 1M tokens = {usd(cost.so_far)}"
    if cost.projected is not None:
        details = job.details
        projection = (
            f"{usd(cost.so_far)} × {details.total_steps:,} total steps ÷ {details.trained_steps:,} trained steps"
            f" ≈ {usd(cost.projected)}"
        )
    frozen_at = job.cost_frozen_at if cost.frozen else None
    at_finish = bool(frozen_at and job.finished_at and abs(frozen_at - job.finished_at) <= FROZEN_AT_FINISH)
    return CostPanel(cost=cost, formula=formula, projection=projection, frozen_at=frozen_at, frozen_at_finish=at_finish)


def cost_with_todays_prices(job: TrackedJob) -> costs.JobCost:
    """What `job` would cost with today's prices, whatever was frozen (for "Recalculate with
    today's prices"' confirmation): one query and one cache read."""
    return costs.compute(job.details, costs.price_of(job, costs.price_book([job])))


def checkpoint_alerts(job: TrackedJob) -> list[JobAlert]:
    """The job's alerts that point at a checkpoint (open or cleared), for the curves' marks:
    one query, none for a job whose alerts never changed."""
    if job.alerts_changed_at is None:
        return []
    return list(JobAlert.objects.filter(job=job, step__isnull=False).order_by("raised_at", "pk"))


def best_deployment(
    best: training_health.Best | None,
    points: list[training_health.Point],
    deployed: list[deployments.Deployment],
) -> str:
    """Whether the best checkpoint is the deployed one, matched on the checkpoint ID: "The best
    checkpoint (epoch 3) is deployed as support-bot" or "Deployed: support-bot from epoch 5; the
    best checkpoint is epoch 3". Empty without a best checkpoint or a deployment naming one."""
    from_checkpoint = [d for d in deployed if d.checkpoint]
    if best is None or not from_checkpoint:
        return ""
    epochs = {point.upstream_id: point.epoch for point in points}
    best_ones = [d.name for d in from_checkpoint if d.checkpoint == best.point.upstream_id]
    if best_ones:
        return f"The best checkpoint (epoch {best.point.epoch}) is deployed as {', '.join(best_ones)}"
    others = ", ".join(
        f"{d.name} from epoch {epochs[d.checkpoint]}" if d.checkpoint in epochs else f"{d.name} from {d.checkpoint}"
        for d in from_checkpoint
    )
    return f"Deployed: {others}; the best checkpoint is epoch {best.point.epoch}"


def job_live_context(job: TrackedJob, events_query: EventsQuery, *, shared: bool = False) -> dict[str, Any]:
    """The context of the job page's `job-live` partial besides `job`: five queries (the timeline,
    the events and their counts, the checkpoints, the alerts marked on the curves: none when no
    alert ever changed), two cache reads (file names, deployments), the cost (one query and one
    cache read, none when `jobs.costs.attach` ran) and the open alerts (a query if the job ever
    had one, none when `attach_open_alerts` ran). The best checkpoint is worked out from the
    checkpoints read here (`jobs.training_health.best_of`), only when the part is rendered.
    `shared`: for a read-only share link's page (see `job_timeline`)."""
    checkpoints = checkpoints_of(job)
    points, best = training_health.best_of(checkpoints, validation_file=job.details.validation_file)
    deployed = deployments.deployments_of(job)
    return {
        "alerts": open_alerts_of(job),
        "cost": cost_panel(job),
        "events_query": events_query,
        "timeline": job_timeline(job, shared=shared),
        "events_log": events_view(job, events_query),
        "checkpoints": checkpoints,
        "best": best,
        "best_deployment": best_deployment(best, points, deployed),
        "checkpoint_alerts": checkpoint_alerts(job),
        "files": files.files_known(files.file_ids(job.details)),
        "deployments": deployed,
    }
