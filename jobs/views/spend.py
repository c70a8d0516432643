"""The Spend page: a workspace's spend by month, in flight, its chart and CSV, and its budget."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from jobs import export, selectors, services
from jobs.access import Need, membership_for, user_memberships
from jobs.forms import BudgetForm
from jobs.models import Membership


def _chosen(request) -> tuple[Membership, list[Membership]]:
    """The membership of the workspace asked for (`?workspace=<pk>`; 404 if not the user's), else
    of their personal workspace, else of their first one."""
    memberships = user_memberships(request.user)
    asked = request.GET.get("workspace", "")
    if asked:
        if not asked.isdigit():
            raise Http404("No such workspace.")
        chosen = next((m for m in memberships if m.workspace_id == int(asked)), None)
        if chosen is None:
            raise Http404("No such workspace.")
        return chosen, memberships
    if not memberships:
        raise Http404("No workspace.")
    return memberships[0], memberships


def _render(request, membership: Membership, memberships: list[Membership], form: BudgetForm, status: int = 200):
    report = selectors.workspace_spend(membership.workspace)
    context = {
        "workspace": membership.workspace,
        "membership": membership,
        "memberships": memberships,
        "report": report,
        "chart_rows": selectors.chart_rows(report),
        "budget_form": form if membership.is_owner else None,
        "time_zone": settings.TIME_ZONE,
    }
    return render(request, "jobs/spend.html", context, status=status)


@login_required
@require_GET
def spend(request):
    membership, memberships = _chosen(request)
    return _render(request, membership, memberships, BudgetForm(workspace=membership.workspace))


@login_required
@require_POST
def workspace_budget(request, pk: int):
    membership = membership_for(request.user, pk, Need.MANAGE)
    workspace = membership.workspace
    form = BudgetForm(request.POST, workspace=workspace)
    if not form.is_valid():
        return _render(request, membership, user_memberships(request.user), form, status=422)
    changed = services.workspace_budget_update(
        workspace=workspace,
        monthly_budget_usd=form.cleaned_data["monthly_budget_usd"],
        expensive_job_usd=form.cleaned_data["expensive_job_usd"],
        actor=request.user,
    )
    messages.success(request, f"Saved the budget of {workspace.name}." if changed else "The budget is unchanged.")
    return redirect(reverse("spend") + f"?workspace={workspace.pk}#budget")


@login_required
@require_GET
def spend_export(request):
    """Every finished job's cost, month by month, then the jobs in flight with their projection."""
    membership, _ = _chosen(request)
    report = selectors.workspace_spend(membership.workspace)
    response = HttpResponse(
        "".join(export.csv_lines(selectors.spend_csv_rows(report))), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="ftdash-spend-{membership.workspace.pk}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
