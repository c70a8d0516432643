"""Prometheus metrics: a workspace's jobs (`/metrics/<key>`), and the instance's health for its
operators (`/metrics/instance`), in the text exposition format, built with prometheus_client.

A workspace's scrape is a few queries however many jobs it has: its jobs; the latest checkpoint
of each (one windowed query); its open training-health alerts; the price tables for the costs
(`jobs.costs.attach`: one query and one cache call). Each scrape builds a registry of its own with
a collector that yields the metric families; prometheus_client writes the exposition, label
values escaped as the format requires (a job label with quotes, newlines or braces is data).

The instance's metrics are what every process counted (jobs.instrumentation: upstream calls and
latency, refresh errors, worker rounds; added up over processes by prometheus_client's
multiprocess mode, see ftdash/metrics_dir.py) and what is read at scrape time from the database
and the cache (the oldest snapshot, deliveries pending and failed, the cache degraded).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
from collections import Counter as Tally
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from django.core.cache import caches
from django.db.models import Count, F, Min, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from jobs import costs, instrumentation
from jobs.finetuning import TERMINAL_STATUSES, FineTuningJob, finite_number
from jobs.models import Delivery, JobAlert, MetricsKey, TrackedJob, TrainingCheckpoint, WorkerHeartbeat, Workspace
from jobs.redis_cache import redis_answers

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A checkpoint's losses, as the API names them, and the `split` label each is shown under.
LOSS_SPLITS = (("train_loss", "train"), ("valid_loss", "valid"), ("full_valid_loss", "full_valid"))
# Non-finite values are stored as these strings (jobs.tokenfactory.storable_json).
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def key_hash(secret: str) -> str:
    """The stored form of a metrics key (sha256 of the secret)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def metrics_key_for_secret(secret: str) -> MetricsKey | None:
    """The usable (not revoked) key whose secret this is, with its workspace; None otherwise."""
    if not secret or len(secret) > 200:
        return None
    wanted = key_hash(secret)
    key = MetricsKey.objects.select_related("workspace").filter(key_hash=wanted, revoked_at__isnull=True).first()
    # Found by its hash's index; compared again in constant time all the same.
    if key is None or not hmac.compare_digest(key.key_hash, wanted):
        return None
    return key


def metrics_keys(*, workspace: Workspace) -> list[MetricsKey]:
    """A workspace's usable metrics keys, newest first, with who made them."""
    return list(MetricsKey.objects.filter(workspace=workspace, revoked_at__isnull=True).select_related("created_by"))


def metrics_key_of_workspace(*, workspace: Workspace, pk: int) -> MetricsKey | None:
    return MetricsKey.objects.select_related("workspace").filter(workspace=workspace, pk=pk).first()


# --- A workspace's jobs ------------------------------------------------------------------------


def _metric_value(value: Any) -> float | None:
    if isinstance(value, str):
        return _NON_FINITE.get(value)
    return finite_number(value)


def latest_losses(workspace: Workspace) -> dict[int, dict[str, float]]:
    """{job pk: {split: loss}} from each job's latest checkpoint (by step), in one query."""
    latest = (
        TrainingCheckpoint.objects.filter(job__workspace=workspace)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("job_id")], order_by=[F("step").desc(nulls_last=True), F("pk").desc()]
            )
        )
        .filter(rank=1)
        .values_list("job_id", "metrics")
    )
    losses: dict[int, dict[str, float]] = {}
    for job_pk, metrics in latest:
        metrics = metrics if isinstance(metrics, dict) else {}
        found = {split: _metric_value(metrics.get(key)) for key, split in LOSS_SPLITS}
        losses[job_pk] = {split: value for split, value in found.items() if value is not None}
    return losses


def open_alerts(workspace: Workspace) -> dict[int, list[str]]:
    """{job pk: the rules of its open alerts}, in one query."""
    alerts: dict[int, list[str]] = {}
    rows = JobAlert.objects.filter(job__workspace=workspace, cleared_at__isnull=True).order_by("job_id", "rule")
    for job_pk, rule in rows.values_list("job_id", "rule"):
        alerts.setdefault(job_pk, []).append(rule)
    return alerts


def _progress_ratio(details) -> float | None:
    if details.status == "succeeded":
        return 1.0
    total, trained = details.total_steps, details.trained_steps or 0
    if not total or total <= 0:
        return None
    return max(0.0, min(1.0, trained / total))


class WorkspaceCollector(Collector):
    """The metric families of one workspace's jobs, from rows read beforehand."""

    def __init__(self, workspace: Workspace, jobs: list[ScrapedJob], losses, alerts, now: dt.datetime) -> None:
        self.workspace, self.jobs, self.losses, self.alerts, self.now = workspace, jobs, losses, alerts, now

    def collect(self):
        ids = ["workspace", "job_id"]
        info = GaugeMetricFamily(
            "ftdash_job_info",
            "A tracked job (always 1), with its label, model and status.",
            labels=[*ids, "label", "model", "status"],
        )
        progress = GaugeMetricFamily("ftdash_job_progress_ratio", "Trained steps over total steps, 0 to 1.", labels=ids)
        trained = GaugeMetricFamily("ftdash_job_trained_steps", "Steps trained so far.", labels=ids)
        total = GaugeMetricFamily("ftdash_job_total_steps", "Steps the job will train.", labels=ids)
        tokens = GaugeMetricFamily("ftdash_job_trained_tokens", "Tokens trained so far.", labels=ids)
        eta = GaugeMetricFamily(
            "ftdash_job_eta_seconds", "Seconds until Token Factory's estimated finish (unfinished jobs).", labels=ids
        )
        loss = GaugeMetricFamily(
            "ftdash_job_loss", "Loss of the job's latest checkpoint, by split.", labels=[*ids, "split"]
        )
        cost = GaugeMetricFamily(
            "ftdash_job_cost_dollars", "What the job cost so far (its final cost once ended), in USD.", labels=ids
        )
        alert = GaugeMetricFamily(
            "ftdash_job_alert", "An open training-health alert of the job (1), by rule.", labels=[*ids, "rule"]
        )
        age = GaugeMetricFamily(
            "ftdash_snapshot_age_seconds",
            "Seconds since ftdash last read the job from Token Factory (unfinished jobs).",
            labels=ids,
        )
        statuses: Tally[str] = Tally()
        workspace = self.workspace.name
        for job in self.jobs:
            details = job.details
            statuses[job.status] += 1
            labels = [workspace, job.job_id]
            info.add_metric([*labels, job.label or details.suffix, details.model, job.status], 1)
            ratio = _progress_ratio(details)
            if ratio is not None:
                progress.add_metric(labels, ratio)
            if details.trained_steps is not None:
                trained.add_metric(labels, details.trained_steps)
            if details.total_steps is not None:
                total.add_metric(labels, details.total_steps)
            if details.trained_tokens is not None:
                tokens.add_metric(labels, details.trained_tokens)
            if details.estimated_finish is not None and not job.is_terminal:
                eta.add_metric(labels, max(0.0, (details.estimated_finish - self.now).total_seconds()))
            for split, value in self.losses.get(job.pk, {}).items():
                loss.add_metric([*labels, split], value)
            so_far = costs.cost_of(job).so_far
            if so_far is not None:
                cost.add_metric(labels, float(so_far))
            for rule in self.alerts.get(job.pk, ()):
                alert.add_metric([*labels, rule], 1)
            if not job.is_terminal:  # an ended job is not read again: its age says nothing
                age.add_metric(labels, max(0.0, (self.now - job.fetched_at).total_seconds()))
        jobs = GaugeMetricFamily("ftdash_jobs", "Tracked jobs, by status.", labels=["workspace", "status"])
        for status, count in sorted(statuses.items()):
            jobs.add_metric([workspace, status], count)
        yield from (info, progress, trained, total, tokens, eta, loss, cost, alert, jobs, age)


@dataclass(slots=True)
class ScrapedJob:
    """What a scrape reads of a job: a row of these columns rather than a TrackedJob (a thousand
    model instances take 14 ms to build), with its snapshot parsed as `details`. jobs.costs reads
    it as it reads a TrackedJob (`costs.CostedJob`)."""

    pk: int
    workspace_id: int
    token_id: int | None
    job_id: str
    label: str
    status: str
    fetched_at: dt.datetime
    changed_at: dt.datetime
    cost_frozen_at: dt.datetime | None
    final_cost_usd: Decimal | None
    final_tokens: int | None
    final_price_usd_per_million: Decimal | None
    final_price_source: str
    final_price_pattern: str
    details: FineTuningJob = field(init=False)
    _cost: costs.JobCost = field(init=False)  # costs.attach's

    is_terminal = TrackedJob.is_terminal  # the model's rule


SCRAPED_FIELDS = [item.name for item in fields(ScrapedJob) if item.init]

# Each process keeps the parsed snapshot of the jobs it has scraped, with the `changed_at` it was
# parsed at: every write of a different snapshot moves `changed_at` (jobs.sync.refresh
# .store_snapshot; jobs are created with it), so an equal one means the same snapshot. A scrape of
# a thousand finished jobs then decodes and parses none of them (20 of its 100 ms). Forgotten all
# at once past MAX_PARSED_SNAPSHOTS jobs (a few KB each).
MAX_PARSED_SNAPSHOTS = 5_000
_parsed_snapshots: dict[int, tuple[dt.datetime, FineTuningJob]] = {}


def _with_details(workspace: Workspace, jobs: list[ScrapedJob]) -> list[ScrapedJob]:
    """`jobs` with their `details` set from this process's parsed snapshots, reading those it does
    not have (or has from an older snapshot) in one query. A snapshot written between the two
    queries is the one shown; a job removed between them is left out."""
    stale = {job.pk for job in jobs if _parsed_snapshots.get(job.pk, (None,))[0] != job.changed_at}
    if stale:
        if len(_parsed_snapshots) + len(stale) > MAX_PARSED_SNAPSHOTS:
            _parsed_snapshots.clear()
            stale = {job.pk for job in jobs}  # this workspace's current ones went with the rest
        rows = TrackedJob.objects.filter(workspace=workspace)
        if len(stale) < len(jobs) // 2:  # else all of them: fewer bound parameters than pk__in
            rows = rows.filter(pk__in=stale)
        for pk, changed_at, snapshot in rows.values_list("pk", "changed_at", "snapshot"):
            _parsed_snapshots[pk] = (changed_at, FineTuningJob.from_payload(snapshot))
    found = [job for job in jobs if job.pk in _parsed_snapshots]
    for job in found:
        job.details = _parsed_snapshots[job.pk][1]
    return found


def workspace_metrics(workspace: Workspace) -> bytes:
    """The exposition of `workspace`'s jobs: a fixed number of queries, however many there are."""
    rows = TrackedJob.objects.filter(workspace=workspace).order_by("pk").values_list(*SCRAPED_FIELDS)
    jobs = _with_details(workspace, [ScrapedJob(*row) for row in rows])
    costs.attach(jobs)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        WorkspaceCollector(workspace, jobs, latest_losses(workspace), open_alerts(workspace), timezone.now())
    )
    return generate_latest(registry)


# --- The instance, for its operators -----------------------------------------------------------


class InstanceStateCollector(Collector):
    """What is a state rather than a count, read from the database and the cache at scrape time."""

    def collect(self):
        now = timezone.now()
        unfinished = TrackedJob.objects.exclude(status__in=TERMINAL_STATUSES).aggregate(
            oldest=Min("fetched_at"), failing=Count("pk", filter=~Q(refresh_error=""))
        )
        oldest = unfinished["oldest"]
        yield GaugeMetricFamily(
            "ftdash_oldest_snapshot_age_seconds",
            "Seconds since the least recently read unfinished job was read from Token Factory (0: none).",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )
        yield GaugeMetricFamily(
            "ftdash_jobs_with_refresh_error",
            "Unfinished jobs whose last refresh failed.",
            value=unfinished["failing"],
        )
        states = dict(
            Delivery.objects.filter(state__in=[Delivery.State.PENDING, Delivery.State.SENDING, Delivery.State.FAILED])
            .values_list("state")
            .annotate(n=Count("pk"))
            .values_list("state", "n")
        )
        deliveries = GaugeMetricFamily(
            "ftdash_deliveries", "Notification deliveries waiting to be sent, and failed for good.", labels=["state"]
        )
        deliveries.add_metric(["pending"], states.get("pending", 0) + states.get("sending", 0))
        deliveries.add_metric(["failed"], states.get("failed", 0))
        yield deliveries
        degraded = redis_answers(caches["default"]) is False
        yield GaugeMetricFamily(
            "ftdash_cache_degraded", "1 while Redis cannot be reached (pages carry on without it).", value=int(degraded)
        )
        seen = WorkerHeartbeat.objects.order_by("-last_seen").values_list("last_seen", flat=True).first()
        if seen is not None:
            yield GaugeMetricFamily(
                "ftdash_worker_last_seen_seconds",
                "Seconds since a background worker last checked in.",
                value=max(0.0, (now - seen).total_seconds()),
            )


class _ThisProcess(Collector):
    """Without multiprocess mode: this process's own counts."""

    def collect(self):
        yield from instrumentation.REGISTRY.collect()


def instance_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    path = instrumentation.multiprocess_dir()
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ThisProcess())
    registry.register(InstanceStateCollector())
    return generate_latest(registry)
