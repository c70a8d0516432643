"""A workspace's training alerts: which training-health rules its owners turned on, their
thresholds, and the queued-too-long stall limit (jobs.sync.health and jobs.sync.history read them)."""

from __future__ import annotations

from django.db import transaction

from jobs.audit import audit_record
from jobs.models import TrainingAlertSettings, Workspace
from jobs.training_health import RULE_LABELS

#: The settings of a TrainingAlertSettings row a person changes, in the page's order, each with
#: how the audit trail names it and how it shows a value.
ALERT_FIELDS: dict[str, tuple[str, str]] = {
    "overfitting_on": (RULE_LABELS["overfitting"], "on"),
    "overfitting_rises": ("overfitting checkpoints in a row", "count"),
    "diverged_on": (RULE_LABELS["diverged"], "on"),
    "diverged_factor": ("divergence factor", "times"),
    "eta_slipped_on": (RULE_LABELS["eta_slipped"], "on"),
    "eta_slip_percent": ("ETA slip share of the time left", "percent"),
    "eta_slip_minutes": ("ETA slip minimum", "minutes"),
    "slow_on": (RULE_LABELS["slow"], "on"),
    "slow_percent": ("slow pace share of the median", "percent"),
    "slow_window_minutes": ("slow pace window", "minutes"),
}
#: The Workspace's own field on the same page.
STALL_FIELD = "queue_stall_minutes"


def _shown(value, how: str) -> str:
    if how == "percent":
        return f"{value:g}%"
    if how == "minutes":
        return f"{value:g} min"
    if how == "times":
        return f"×{value:g}"
    return f"{value:g}"


def _change(field: str, before, after) -> str:
    if field == STALL_FIELD:
        return f"the queue stall limit from {_shown(before, 'minutes')} to {_shown(after, 'minutes')}"
    name, how = ALERT_FIELDS[field]
    if how == "on":
        return f"turned {name} {'on' if after else 'off'}"
    return f"{name} from {_shown(before, how)} to {_shown(after, how)}"


def training_alert_settings_update(workspace: Workspace, values: dict, actor) -> list[str]:
    """Save the rules' on/off and thresholds (and `queue_stall_minutes`) given in `values`;
    the workspace's row is made on its first save. Audited with what changed, which is
    returned (an empty list when nothing did: nothing is written then)."""
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        alerts = TrainingAlertSettings.objects.select_for_update().filter(workspace=workspace).first()
        alerts = alerts or TrainingAlertSettings(workspace=workspace)
        changes = []
        for field in ALERT_FIELDS:
            if field in values and getattr(alerts, field) != values[field]:
                changes.append(_change(field, getattr(alerts, field), values[field]))
                setattr(alerts, field, values[field])
        if changes:
            alerts.save()  # (the first save makes the row)
        stall_changed = STALL_FIELD in values and workspace.queue_stall_minutes != values[STALL_FIELD]
        if stall_changed:
            changes.append(_change(STALL_FIELD, workspace.queue_stall_minutes, values[STALL_FIELD]))
            workspace.queue_stall_minutes = values[STALL_FIELD]
            workspace.save(update_fields=[STALL_FIELD])
        if not changes:
            return []
        audit_record(
            workspace=workspace,
            actor=actor,
            action="workspace.training_alerts",
            description="training alerts: " + "; ".join(changes),
        )
    return changes
