"""The "Training alerts" page of a workspace: which training-health rules fire, their
thresholds and the stall limits. Everyone in the workspace reads it; its owners change it."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from jobs import selectors, services
from jobs.access import Need, membership_for
from jobs.forms import TrainingAlertsForm
from jobs.views.workspace_settings import settings_page


@login_required
@require_http_methods(["GET", "POST"])
def workspace_training_alerts(request, pk: int):
    membership = membership_for(request.user, pk, Need.MANAGE if request.method == "POST" else Need.VIEW)
    workspace = membership.workspace
    alerts = selectors.training_alert_settings(workspace=workspace)
    if request.method == "POST":
        form = TrainingAlertsForm(request.POST, alerts=alerts, workspace=workspace)
        if not form.is_valid():
            return _render(request, membership, alerts, form, status=422)
        changes = services.training_alert_settings_update(workspace, form.cleaned_data, request.user)
        if changes:
            messages.success(request, f"Saved the training alerts of {workspace.name}.")
        else:
            messages.info(request, "The training alerts are unchanged.")
        return redirect("workspace_training_alerts", pk=workspace.pk)
    return _render(request, membership, alerts, TrainingAlertsForm(alerts=alerts, workspace=workspace))


def _render(request, membership, alerts, form, *, status=200):
    workspace = membership.workspace
    back_url, back_label = settings_page(workspace)
    context = {
        "workspace": workspace,
        "me": membership,
        "rules": selectors.training_alert_rules(alerts, workspace=workspace),
        "form": form if membership.is_owner else None,
        "stall_minutes": settings.FTDASH_STALL_MINUTES,
        "back_url": back_url,
        "back_label": back_label,
    }
    return render(request, "alerts/training_alerts.html", context, status=status)
