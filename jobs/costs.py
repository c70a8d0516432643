"""What a job costs: its training price, where that price came from, cost so far, projected and final.

The price of a job's base model is looked up in this order, and the page says which one it used:
1. the workspace's own price table (`TrainingPrice`, kept by its owners);
2. the instance's defaults (`FTDASH_TRAINING_PRICES` / `FTDASH_TRAINING_PRICES_FILE`);
3. Token Factory's model information (`fine_tune.training_price_per_million_tokens` in
   `/v0/models`, read per token beside the deployments: `jobs.sync.deployments`).
Within a table the most specific pattern wins (`jobs.pricing`). No price, no number: a cost is
never made up.

Cost so far = trained_tokens × price ÷ 1,000,000, from the stored snapshot. Projected (while
running, once a step is done and the total is known) = cost so far × total_steps ÷ trained_steps.
A finished job's cost is frozen by `jobs.sync.costs` with the price of that moment; this module
only reads what was frozen.

Pages ask for many jobs at once: `attach(jobs)` reads the price tables of their workspaces in one
query and Token Factory's prices in one cache call, then `cost_of(job)` is arithmetic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from jobs.finetuning import TERMINAL_STATUSES, FineTuningJob
from jobs.humanize import usd
from jobs.models import TrackedJob, TrainingPrice
from jobs.pricing import PriceEntry, best_entry
from jobs.sync import deployments

MILLION = Decimal(1_000_000)
# A count of trained tokens over this is garbage, not a run: treated as unknown, never as money.
MAX_TRAINED_TOKENS = 10**13


class Source:
    WORKSPACE = "workspace"
    INSTANCE = "instance"
    TOKEN_FACTORY = "token_factory"

    LABELS = {
        WORKSPACE: "this workspace's price table",
        INSTANCE: "this instance's default prices",
        TOKEN_FACTORY: "Token Factory's model information",
    }


@dataclass(frozen=True)
class Price:
    usd_per_million: Decimal
    source: str
    pattern: str = ""

    @property
    def source_label(self) -> str:
        label = Source.LABELS.get(self.source, "a price table")
        return f"{label} ({self.pattern})" if self.pattern and self.source != Source.TOKEN_FACTORY else label


@dataclass(frozen=True)
class PriceBook:
    """Every price a job's lookup may use, read once for a page's jobs."""

    workspace_entries: dict[int, list[PriceEntry]]
    token_factory: dict[int, dict[str, str]]

    def price_for(self, *, model: str, workspace_id: int, token_id: int | None) -> Price | None:
        for source, entries in (
            (Source.WORKSPACE, self.workspace_entries.get(workspace_id, ())),
            (Source.INSTANCE, settings.FTDASH_TRAINING_PRICES),
        ):
            entry = best_entry(model, entries)
            if entry is not None:
                return Price(entry.usd_per_million, source, entry.pattern)
        listed = self.token_factory.get(token_id or 0, {}).get(model.casefold()) if model else None
        return Price(Decimal(listed), Source.TOKEN_FACTORY, model) if listed is not None else None


class CostedJob(Protocol):
    """What a job's cost is worked out from: a TrackedJob, or a metrics scrape's lighter row of
    one (jobs.selectors.prometheus.ScrapedJob)."""

    workspace_id: int
    token_id: int | None
    details: FineTuningJob
    cost_frozen_at: dt.datetime | None
    final_cost_usd: Decimal | None
    final_tokens: int | None
    final_price_usd_per_million: Decimal | None
    final_price_source: str
    final_price_pattern: str


def price_book(jobs: Iterable[CostedJob]) -> PriceBook:
    jobs = list(jobs)
    workspace_ids = {job.workspace_id for job in jobs}
    entries: dict[int, list[PriceEntry]] = {workspace_id: [] for workspace_id in workspace_ids}
    if workspace_ids:
        for row in TrainingPrice.objects.filter(workspace_id__in=workspace_ids).order_by("pk"):
            entries[row.workspace_id].append(PriceEntry(row.pattern, row.usd_per_million))
    return PriceBook(entries, deployments.training_prices(job.token_id for job in jobs))


def trained_tokens(details: FineTuningJob) -> int | None:
    tokens = details.trained_tokens
    if tokens is None or tokens < 0 or tokens > MAX_TRAINED_TOKENS:
        return None
    return tokens


@dataclass(frozen=True)
class JobCost:
    model: str
    price: Price | None
    tokens: int | None
    so_far: Decimal | None
    projected: Decimal | None
    is_final: bool
    frozen: bool

    @property
    def summary(self) -> str:
        """The card's line: "$0.51 so far · ≈ $1.20 at finish", "$3.10", or why there is none."""
        if self.price is None:
            return f"No training price for {self.model}" if self.model else "No training price (no model named)"
        if self.so_far is None:
            return "No token count yet"
        if self.is_final:
            return usd(self.so_far)
        if self.projected is not None:
            return f"{usd(self.so_far)} so far · ≈ {usd(self.projected)} at finish"
        return f"{usd(self.so_far)} so far"

    @property
    def known(self) -> bool:
        return self.so_far is not None


def compute(details: FineTuningJob, price: Price | None) -> JobCost:
    """The cost of a job whose snapshot reads `details`, with `price`, ignoring any frozen cost."""
    tokens = trained_tokens(details)
    so_far = (Decimal(tokens) * price.usd_per_million / MILLION) if price is not None and tokens is not None else None
    projected = None
    if so_far is not None and details.status == "running":
        trained, total = details.trained_steps, details.total_steps
        if trained and total and 0 < trained <= total:
            projected = so_far * total / trained
    return JobCost(
        model=details.model,
        price=price,
        tokens=tokens,
        so_far=so_far,
        projected=projected,
        is_final=details.is_terminal,
        frozen=False,
    )


def _frozen(job: CostedJob) -> JobCost:
    return JobCost(
        model=job.details.model,
        price=Price(job.final_price_usd_per_million, job.final_price_source, job.final_price_pattern),
        tokens=job.final_tokens,
        so_far=job.final_cost_usd,
        projected=None,
        is_final=True,
        frozen=True,
    )


def cost_with(job: CostedJob, book: PriceBook) -> JobCost:
    if job.cost_frozen_at is not None and job.final_price_usd_per_million is not None:
        return _frozen(job)
    return compute(job.details, price_of(job, book))


def price_of(job: CostedJob, book: PriceBook, details: FineTuningJob | None = None) -> Price | None:
    """Today's price for `job`'s model (as `details` name it, else its stored snapshot)."""
    model = (details or job.details).model
    return book.price_for(model=model, workspace_id=job.workspace_id, token_id=job.token_id)


def attach(jobs: Iterable[CostedJob]) -> None:
    """Work out the cost of every one of `jobs` with one query and one cache call, for `cost_of`."""
    jobs = list(jobs)
    book = price_book(jobs)
    for job in jobs:
        job._cost = cost_with(job, book)


def cost_of(job: CostedJob) -> JobCost:
    """`job`'s cost: attached by `attach`, or worked out now (one query, one cache call)."""
    if not hasattr(job, "_cost"):
        attach([job])
    return job._cost


# --- A workspace's month ---------------------------------------------------------------------


def month_start(moment: dt.datetime) -> dt.datetime:
    """The start of `moment`'s month in FTDASH_TIME_ZONE (the months the Spend page counts)."""
    local = timezone.localtime(moment)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: dt.datetime) -> dt.datetime:
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


@dataclass(frozen=True)
class MonthSpend:
    """A workspace's month: finished jobs' cost, and running jobs' projected cost ("in flight")."""

    finished: Decimal
    in_flight: Decimal
    budget: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.finished + self.in_flight

    @property
    def budget_percent(self) -> int | None:
        if not self.budget:
            return None
        return int(self.total * 100 / self.budget)


def in_flight_cost(cost: JobCost) -> Decimal:
    """What a job still running is expected to cost: its projection, else what it cost so far."""
    if cost.projected is not None:
        return cost.projected
    return cost.so_far or Decimal(0)


def month_spend(workspace, *, now: dt.datetime | None = None) -> MonthSpend:
    """This month's spend of `workspace`: two queries and one cache call, however many jobs."""
    start = month_start(now or timezone.now())
    finished = TrackedJob.objects.filter(
        workspace=workspace, finished_at__gte=start, finished_at__lt=next_month(start)
    ).aggregate(total=Sum("final_cost_usd"))["total"] or Decimal(0)
    running = list(TrackedJob.objects.filter(workspace=workspace).exclude(status__in=TERMINAL_STATUSES))
    attach(running)
    in_flight = sum((in_flight_cost(cost_of(job)) for job in running), Decimal(0))
    return MonthSpend(finished=finished, in_flight=in_flight, budget=workspace.monthly_budget_usd)
