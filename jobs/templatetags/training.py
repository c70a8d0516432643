"""The job page's Checkpoints and Training curves panels and the dashboard card's loss
sparkline, shaped by jobs.charts from the checkpoints the view hands over (read by
jobs.selectors.training_log): these tags run no queries."""

from __future__ import annotations

from django import template

from jobs import charts
from jobs.charts import SeriesSpec
from jobs.finetuning import finite_number
from jobs.metrics import LABELS, METRICS
from jobs.training_health import RULE_LABELS

register = template.Library()

LOSS_SERIES = tuple(SeriesSpec(m.key, m.label, m.style) for m in METRICS if m.panel == "loss")
ACCURACY_SERIES = tuple(SeriesSpec(m.key, m.label, m.style) for m in METRICS if m.panel == "accuracy")
TABLE_COLUMNS = LOSS_SERIES + ACCURACY_SERIES


def alert_text(alert) -> str:
    """An alert as the curves name it: "Diverged: The train loss of epoch 2 is not a number…"."""
    text = f"{RULE_LABELS.get(alert.rule, alert.rule)}: {alert.message}"
    return f"{text} (cleared)" if alert.cleared_at is not None else text


def best_text(best) -> str:
    """The best checkpoint's mark on the curves: "Best: epoch 3, valid loss 0.81"."""
    return f"Best: {best.summary}"


@register.simple_tag
def training_checkpoints(checkpoints, best=None, alerts=()):
    """Rows for the Checkpoints table and the charts' data tables: step, time, each metric
    formatted (— when missing), the checkpoint's name; the best one (a `Best` of
    jobs.training_health) flagged with its reason, and each alert noted at the checkpoint of its
    step (the first one with that step)."""
    best, alerts = best or None, alerts or ()
    best_id = best.point.upstream_id if best is not None else None
    by_step: dict[int, list[str]] = {}
    for alert in alerts:
        if alert.step is not None:
            by_step.setdefault(alert.step, []).append(alert_text(alert))
    rows = []
    for checkpoint in checkpoints:
        metrics = checkpoint.metrics if isinstance(checkpoint.metrics, dict) else {}
        is_best = best_id is not None and checkpoint.upstream_id == best_id
        notes = [f"Best: {best.reason}"] if is_best else []
        notes += by_step.pop(checkpoint.step, []) if checkpoint.step is not None else []
        rows.append(
            {
                "checkpoint": checkpoint,
                "values": [charts.format_number(metrics.get(spec.key)) for spec in TABLE_COLUMNS],
                "best": is_best,
                "reason": best.reason if is_best else "",
                "notes": notes,
            }
        )
    return {"rows": rows, "columns": TABLE_COLUMNS, "has_notes": any(row["notes"] for row in rows)}


@register.simple_tag
def training_curves(checkpoints, best=None, alerts=()):
    """The loss and token-accuracy charts of a job's checkpoints (None without any); the loss
    chart marks the best checkpoint and the alerts that point at a checkpoint's step."""
    if not checkpoints:
        return None
    best, alerts = best or None, alerts or ()
    data = [{"step": c.step, **(c.metrics if isinstance(c.metrics, dict) else {})} for c in checkpoints]
    marks = [charts.MarkSpec("alert", alert.step, alert_text(alert)) for alert in alerts if alert.step is not None]
    if best is not None:
        marks.append(charts.MarkSpec("best", best.point.step, best_text(best), key=best.metric))
    return {
        "loss": charts.line_chart("Loss", LOSS_SERIES, data, marks=marks),
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
