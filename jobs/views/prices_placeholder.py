"""A placeholder for the "Training prices" page (URL name `workspace_prices`), so that the job
page's "Add a training price" link can be reversed before the prices page is merged: the prices
page replaces this module, its template and its URL."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs.access import Need, membership_for


@login_required
@require_GET
def workspace_prices(request, pk: int):
    membership = membership_for(request.user, pk, Need.MANAGE)
    return render(request, "jobs/prices_placeholder.html", {"workspace": membership.workspace})
