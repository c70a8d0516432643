"""A workspace's settings sections (training prices, training alerts, its status badge,
Prometheus metrics keys): on its team page, or for a personal workspace (which has no team page)
on Settings. The one place for what those sections need and for the way back to them."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from jobs import selectors
from jobs.access import personal_membership
from jobs.views.sharing import workspace_badge_context


def settings_page(workspace, anchor: str = "") -> tuple[str, str]:
    """Where `workspace`'s settings are shown, and its name for a "Back to …" link: its team
    page, or Settings for a personal workspace; `anchor` names a section of that page."""
    fragment = f"#{anchor}" if anchor else ""
    if workspace.is_personal:
        return reverse("personal_settings") + fragment, "Settings"
    return reverse("team_detail", args=[workspace.pk]) + fragment, workspace.name


def sections_context(request, membership) -> dict:
    """What the settings sections read: prices and alert rules for everyone in the workspace,
    the badge for its owners' copy buttons, the metrics keys for its owners."""
    workspace = membership.workspace
    context = {
        "prices": selectors.workspace_prices(workspace=workspace),
        "rules": selectors.training_alert_rules(
            selectors.training_alert_settings(workspace=workspace), workspace=workspace
        ),
        **workspace_badge_context(request, workspace),
    }
    if membership.is_owner:
        context["metrics_keys"] = selectors.metrics_keys(workspace=workspace)
    return context


@login_required
@require_GET
def personal_settings(request):
    membership = personal_membership(request.user)
    context = {"workspace": membership.workspace, "me": membership, **sections_context(request, membership)}
    return render(request, "settings/personal_settings.html", context)
