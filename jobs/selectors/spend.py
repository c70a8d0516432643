"""A workspace's spend, month by month, for the Spend page and its CSV: a fixed number of queries
(two for the jobs, and what `jobs.costs.attach` and `jobs.costs.month_spend` read), however many
jobs and months.

A job counts in the month it finished (`TrackedJob.finished_at`, months in FTDASH_TIME_ZONE: see
`jobs.costs.month_start`), with its frozen final cost (`jobs.sync.costs`); a finished job with no
frozen cost (no price, or no token count) counts as a job but never as money. Jobs still running
are "in flight", apart, with their projected cost (`jobs.costs.in_flight_cost`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models.fields.json import KT
from django.utils import timezone

from jobs import charts, costs
from jobs.export import safe_cell
from jobs.finetuning import TERMINAL_STATUSES
from jobs.humanize import usd
from jobs.models import TrackedJob, Workspace

NO_LABEL = "no label"
NO_MODEL = "no model named"
SOMEONE_WHO_LEFT = "someone who left"
CHART_MONTHS = 12
FROZEN_PRECISION = Decimal("0.000001")  # the precision final costs are frozen with


@dataclass
class Share:
    """One line of a breakdown: a model, a person or a label, what its jobs cost and how many."""

    name: str
    cost: Decimal = Decimal(0)
    jobs: int = 0


@dataclass
class FinishedJob:
    pk: int
    job_id: str
    label: str
    model: str
    tracked_by: str
    finished_at: dt.datetime
    cost_usd: Decimal | None
    tokens: int | None
    price_usd_per_million: Decimal | None
    price_source: str


@dataclass
class InFlightJob:
    job: TrackedJob
    cost: costs.JobCost
    projected: Decimal

    @property
    def tracked_by(self) -> str:
        return self.job.added_by.get_username() if self.job.added_by else SOMEONE_WHO_LEFT


@dataclass
class Month:
    start: dt.datetime  # local midnight of the 1st, FTDASH_TIME_ZONE
    finished: Decimal = Decimal(0)
    jobs: list[FinishedJob] = field(default_factory=list)
    by_model: list[Share] = field(default_factory=list)
    by_person: list[Share] = field(default_factory=list)
    by_label: list[Share] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.start.strftime("%Y-%m")

    @property
    def unpriced(self) -> int:
        return sum(1 for job in self.jobs if job.cost_usd is None)


@dataclass
class SpendReport:
    workspace: Workspace
    months: list[Month]  # this month first, then each earlier month with a finished job
    in_flight: list[InFlightJob]
    this_month: costs.MonthSpend
    chart: charts.BarChart

    @property
    def in_flight_total(self) -> Decimal:
        return sum((row.projected for row in self.in_flight), Decimal(0))

    @property
    def empty(self) -> bool:
        return not self.in_flight and not any(month.jobs for month in self.months)


def _finished_jobs(workspace: Workspace) -> list[FinishedJob]:
    rows = (
        TrackedJob.objects.filter(workspace=workspace, finished_at__isnull=False, status__in=TERMINAL_STATUSES)
        .order_by("-finished_at", "-pk")
        .values(
            "pk",
            "job_id",
            "label",
            "finished_at",
            "final_cost_usd",
            "final_tokens",
            "final_price_usd_per_million",
            "final_price_source",
            "added_by__username",
            model=KT("snapshot__model"),
        )
    )
    return [
        FinishedJob(
            pk=row["pk"],
            job_id=row["job_id"],
            label=row["label"],
            model=row["model"] or "",
            tracked_by=row["added_by__username"] or SOMEONE_WHO_LEFT,
            finished_at=row["finished_at"],
            cost_usd=row["final_cost_usd"],
            tokens=row["final_tokens"],
            price_usd_per_million=row["final_price_usd_per_million"],
            price_source=row["final_price_source"],
        )
        for row in rows
    ]


def _in_flight(workspace: Workspace) -> list[InFlightJob]:
    running = list(
        TrackedJob.objects.filter(workspace=workspace)
        .exclude(status__in=TERMINAL_STATUSES)
        .select_related("added_by")
        .order_by("-created_at", "-pk")
    )
    costs.attach(running)
    rows = [InFlightJob(job, costs.cost_of(job), costs.in_flight_cost(costs.cost_of(job))) for job in running]
    return sorted(rows, key=lambda row: row.projected, reverse=True)


def _breakdown(jobs: list[FinishedJob], name) -> list[Share]:
    shares: dict[str, Share] = {}
    for job in jobs:
        key = name(job)
        share = shares.setdefault(key, Share(key))
        share.jobs += 1
        share.cost += job.cost_usd or 0
    return sorted(shares.values(), key=lambda share: (-share.cost, share.name.casefold()))


def _months(jobs: list[FinishedJob], this_month: dt.datetime) -> list[Month]:
    grouped: dict[dt.datetime, list[FinishedJob]] = defaultdict(list)
    for job in jobs:
        grouped[costs.month_start(job.finished_at)].append(job)
    grouped.setdefault(this_month, [])
    months = []
    for start in sorted(grouped, reverse=True):
        in_month = grouped[start]
        months.append(
            Month(
                start=start,
                finished=sum((job.cost_usd or Decimal(0) for job in in_month), Decimal(0)),
                jobs=in_month,
                by_model=_breakdown(in_month, lambda job: job.model or NO_MODEL),
                by_person=_breakdown(in_month, lambda job: job.tracked_by),
                by_label=_breakdown(in_month, lambda job: job.label or NO_LABEL),
            )
        )
    return months


def last_months(this_month: dt.datetime, count: int = CHART_MONTHS) -> list[dt.datetime]:
    """The starts of the `count` months up to and including `this_month`, oldest first."""
    starts = [this_month]
    for _ in range(count - 1):
        previous = starts[-1] - dt.timedelta(days=1)
        starts.append(costs.month_start(previous.replace(day=1)))
    return starts[::-1]


def _chart(months: list[Month], this_month: dt.datetime, in_flight: Decimal) -> charts.BarChart:
    by_start = {month.start: month for month in months}
    bars = []
    for start in last_months(this_month):
        finished = by_start[start].finished if start in by_start else Decimal(0)
        flying = in_flight if start == this_month else Decimal(0)
        text = f"{start:%B %Y}: {usd(finished) or '$0.00'} finished"
        if flying:
            text += f", {usd(flying)} in flight (projected)"
        bars.append((f"{start:%b}", text, [float(finished), float(flying)]))
    return charts.bar_chart("Spend by month", bars, ["finished", "in-flight"])


def chart_rows(report: SpendReport) -> list[dict]:
    """The chart's numbers, month by month (oldest first), for its data table."""
    by_start = {month.start: month for month in report.months}
    this_month = report.months[0].start
    rows = []
    for start in last_months(this_month):
        finished = by_start[start].finished if start in by_start else Decimal(0)
        flying = report.in_flight_total if start == this_month else Decimal(0)
        rows.append({"start": start, "finished": finished, "in_flight": flying, "total": finished + flying})
    return rows


def workspace_spend(workspace: Workspace, *, now: dt.datetime | None = None) -> SpendReport:
    """Everything the Spend page shows of `workspace`."""
    now = now or timezone.now()
    this_month = costs.month_start(now)
    months = _months(_finished_jobs(workspace), this_month)
    in_flight = _in_flight(workspace)
    return SpendReport(
        workspace=workspace,
        months=months,
        in_flight=in_flight,
        this_month=costs.month_spend(workspace, now=now),  # the budget's rule, in its one place
        chart=_chart(months, this_month, sum((row.projected for row in in_flight), Decimal(0))),
    )


SPEND_CSV_COLUMNS = [
    "month",
    "finished_at",
    "job_id",
    "label",
    "model",
    "tracked_by",
    "trained_tokens",
    "price_usd_per_million",
    "price_source",
    "cost_usd",
]


def spend_csv_rows(report: SpendReport):
    """The Spend page's CSV: one row per finished job (newest month first), then one per job in
    flight (month "in flight", its projected cost). Cells as jobs.export makes them safe."""
    yield SPEND_CSV_COLUMNS
    for month in report.months:
        for job in month.jobs:
            yield [
                safe_cell(value)
                for value in (
                    month.key,
                    job.finished_at,
                    job.job_id,
                    job.label,
                    job.model,
                    job.tracked_by,
                    job.tokens,
                    job.price_usd_per_million,
                    job.price_source,
                    job.cost_usd,
                )
            ]
    for row in report.in_flight:
        price = row.cost.price
        yield [
            safe_cell(value)
            for value in (
                "in flight",
                None,
                row.job.job_id,
                row.job.label,
                row.cost.model,
                row.tracked_by,
                row.cost.tokens,
                price.usd_per_million if price else None,
                price.source if price else "",
                row.projected.quantize(FROZEN_PRECISION) if row.cost.known else None,
            )
        ]
