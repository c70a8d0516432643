"""A workspace's training alerts as people read them: its settings (the defaults until its owners
save them) and each rule in words, for the "Training alerts" page, the team page, personal
settings and the notes beside the alert choices of a notification channel."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings as django_settings

from jobs.models import TrainingAlertSettings, Workspace
from jobs.training_health import RULE_LABELS


def training_alert_settings(*, workspace: Workspace) -> TrainingAlertSettings:
    """The workspace's saved settings, or an unsaved row of defaults (one query; never writes)."""
    return TrainingAlertSettings.for_workspace(workspace.pk)


def training_alert_settings_for(*, workspaces: list[Workspace]) -> dict[int, TrainingAlertSettings]:
    """Each workspace's settings by its pk, defaults where none are saved: one query for all."""
    saved = {row.workspace_id: row for row in TrainingAlertSettings.objects.filter(workspace__in=workspaces)}
    return {w.pk: saved.get(w.pk) or TrainingAlertSettings(workspace_id=w.pk) for w in workspaces}


@dataclass(frozen=True)
class AlertRule:
    """One rule as a sentence: `name` is its event (the webhook's `event`), `on` whether it is
    evaluated in this workspace, `text` what makes it fire with the workspace's thresholds."""

    name: str
    label: str
    on: bool
    text: str


def _number(value: float) -> str:
    """2 → "2", 2.5 → "2.5", 10080 → "10,080"."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _minutes(value: float) -> str:
    return f"{_number(value)} min"


def training_alert_rules(alerts: TrainingAlertSettings, *, workspace: Workspace) -> list[AlertRule]:
    """The four training-health rules, then the stall rule, with the thresholds in effect."""
    rises = alerts.overfitting_rises
    return [
        AlertRule(
            "overfitting",
            RULE_LABELS["overfitting"],
            alerts.overfitting_on,
            f"the validation loss rises on {rises} checkpoint{'s' if rises != 1 else ''} in a row "
            "while the training loss does not",
        ),
        AlertRule(
            "diverged",
            RULE_LABELS["diverged"],
            alerts.diverged_on,
            f"a loss is NaN or infinite, or at least {_number(alerts.diverged_factor)} times the checkpoint before",
        ),
        AlertRule(
            "eta_slipped",
            RULE_LABELS["eta_slipped"],
            alerts.eta_slipped_on,
            f"the finish estimate moves later by more than {_number(alerts.eta_slip_percent)}% of the time it had "
            f"left and by at least {_minutes(alerts.eta_slip_minutes)}",
        ),
        AlertRule(
            "slow",
            RULE_LABELS["slow"],
            alerts.slow_on,
            f"steps per minute over the last {_minutes(alerts.slow_window_minutes)} fall below "
            f"{_number(alerts.slow_percent)}% of the job's own median",
        ),
        AlertRule(
            "stalled",
            "Stalled",
            True,
            f"queued or validating for more than {_minutes(workspace.queue_stall_minutes)}, or running without "
            f"progress for {_minutes(django_settings.FTDASH_STALL_MINUTES)}",
        ),
    ]
