"""The job page's Checkpoints and Training curves panels and the dashboard card's loss
sparkline, shaped by jobs.charts from the checkpoints the view hands over (read by
jobs.selectors.training_log): these tags run no queries."""

from __future__ import annotations

from django import template

from jobs import charts
from jobs.charts import SeriesSpec
from jobs.finetuning import finite_number
from jobs.metrics import LABELS, METRICS

register = template.Library()

LOSS_SERIES = tuple(SeriesSpec(m.key, m.label, m.style) for m in METRICS if m.panel == "loss")
ACCURACY_SERIES = tuple(SeriesSpec(m.key, m.label, m.style) for m in METRICS if m.panel == "accuracy")
TABLE_COLUMNS = LOSS_SERIES + ACCURACY_SERIES


@register.simple_tag
def training_checkpoints(checkpoints):
    """Rows for the Checkpoints table and the charts' data tables: step, time, each metric
    formatted (— when missing), the checkpoint's name."""
    rows = []
    for checkpoint in checkpoints:
        metrics = checkpoint.metrics if isinstance(checkpoint.metrics, dict) else {}
        rows.append(
            {
                "checkpoint": checkpoint,
                "values": [charts.format_number(metrics.get(spec.key)) for spec in TABLE_COLUMNS],
            }
        )
    return {"rows": rows, "columns": TABLE_COLUMNS}


@register.simple_tag
def training_curves(checkpoints):
    """The loss and token-accuracy charts of a job's checkpoints (None without any)."""
    if not checkpoints:
        return None
    data = [{"step": c.step, **(c.metrics if isinstance(c.metrics, dict) else {})} for c in checkpoints]
    return {
        "loss": charts.line_chart("Loss", LOSS_SERIES, data),
        "accuracy": charts.line_chart("Token accuracy", ACCURACY_SERIES, data),
    }


@register.filter
def latest_loss(checkpoints):
    """For a dashboard card, from its job's latest checkpoints: the latest valid loss (else train
    loss) and a sparkline of it, or None for a job without checkpoints."""
    if not checkpoints:
        return None
    for key in ("valid_loss", "train_loss"):
        values = [c.metrics.get(key) if isinstance(c.metrics, dict) else None for c in checkpoints]
        finite = [value for value in values if finite_number(value) is not None]
        if finite:
            return {
                "label": LABELS[key],
                "value": charts.format_number(finite[-1]),
                "path": charts.sparkline(values),
                "count": len(finite),
            }
    return None
