from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from jobs import export, selectors
from jobs.access import job_for_user, user_memberships
from jobs.forms import DashboardFilterForm


def _attachment(response, name: str):
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
def job_export_json(request, pk: int):
    job = job_for_user(request.user, pk)
    body = json.dumps(export.job_document(job), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    return _attachment(response, export.filename(job, "json"))


@login_required
@require_GET
def job_export_metrics(request, pk: int):
    job = job_for_user(request.user, pk)
    response = HttpResponse("".join(export.csv_lines(export.metrics_rows(job))), content_type="text/csv; charset=utf-8")
    return _attachment(response, export.filename(job, "csv", "metrics"))


@login_required
@require_GET
def dashboard_export(request):
    """The dashboard's current view (the same filters and order), every page of it."""
    filter_form = DashboardFilterForm(
        request.GET or None,
        workspaces=[m.workspace for m in user_memberships(request.user)],
        sorts=selectors.DASHBOARD_SORTS,
        periods=selectors.DASHBOARD_PERIODS,
    )
    jobs = selectors.jobs_for_dashboard(user=request.user, **filter_form.filters())
    # Built whole (not streamed): a download of a few thousand rows, and errors stay error pages.
    body = "".join(export.csv_lines(export.dashboard_rows(jobs.iterator(chunk_size=500))))
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    return _attachment(response, "ftdash-jobs.csv")
