"""The six training metrics a checkpoint reports: the one table of their keys and labels.

The sync keeps these keys of a checkpoint's `metrics` (jobs.sync.training_log); the job page's
curves and data table (jobs.templatetags.training), the compare page (jobs.compare) and the
metrics CSV (jobs.export) show them in this order, each under its one label. Free of Django
and of every other ftdash module, so any layer may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # its name in a checkpoint's `metrics`, and the metrics CSV's column
    label: str  # what every page calls it
    panel: str  # the job page's chart it is drawn on: "loss" or "accuracy"
    style: str  # its line on that chart (a CSS class suffix): solid, dashed or dotted


METRICS = (
    Metric("train_loss", "Train loss", "loss", "solid"),
    Metric("valid_loss", "Valid loss", "loss", "dashed"),
    Metric("full_valid_loss", "Full-valid loss", "loss", "dotted"),
    Metric("train_mean_token_accuracy", "Train token accuracy", "accuracy", "solid"),
    Metric("valid_mean_token_accuracy", "Valid token accuracy", "accuracy", "dashed"),
    Metric("full_valid_mean_token_accuracy", "Full-valid token accuracy", "accuracy", "dotted"),
)
METRIC_KEYS = tuple(metric.key for metric in METRICS)
LABELS = {metric.key: metric.label for metric in METRICS}
