"""The "Import jobs" page of a token: read its whole job list, then track what is picked.

Owners and members of the token's workspace may use it (they may track jobs there); the
reading itself happens in `jobs.sync.imports`, mostly in the background.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from jobs import selectors, services
from jobs.access import Need, token_for_user
from jobs.forms import ImportFilterForm
from jobs.sync import imports

ROWS_PER_PAGE = 100


def _filter_form(run, data) -> ImportFilterForm:
    statuses, models = selectors.listing_choices(run)
    return ImportFilterForm(data or None, statuses=statuses, models=models, auto_id="import_%s")


@login_required
@require_GET
def token_import(request, pk: int):
    token = token_for_user(request.user, pk, Need.EDIT_JOBS)
    run = selectors.latest_run(token)
    context = {"token": token, "run": run}
    if run is not None and not run.is_reading:
        form = _filter_form(run, request.GET)
        filters = form.filters()
        rows = selectors.listings(run, **filters)
        paginator = Paginator(rows, ROWS_PER_PAGE)
        page = paginator.get_page(request.GET.get("page"))
        page_rows = list(page.object_list)
        tracked = selectors.tracked_ids(token, [row.job_id for row in page_rows])
        for row in page_rows:
            row.is_tracked = row.job_id in tracked
        query = request.GET.copy()
        query.pop("page", None)
        context.update(
            filter_form=form,
            filters=filters,
            page=page,
            rows=page_rows,
            matching=paginator.count,
            page_query=query.urlencode(),
            filtered=any(filters.values()),
        )
    return render(request, "tokens/token_import.html", context)


@login_required
@require_POST
def import_start(request, pk: int):
    token = token_for_user(request.user, pk, Need.EDIT_JOBS)
    run, started = services.import_start(token=token, user=request.user)
    if not started:
        messages.info(request, "This token's job list is already being read; its progress is below.")
    elif run.state == run.State.FAILED:
        messages.error(request, f"Reading the job list stopped: {run.error}")
    return redirect("token_import", pk=token.pk)


@login_required
@require_POST
def import_resume(request, pk: int):
    token = token_for_user(request.user, pk, Need.EDIT_JOBS)
    run = selectors.latest_run(token)
    if run is None or not services.import_resume(run=run):
        messages.info(request, "There is no stopped reading of this token's job list to resume.")
    return redirect("token_import", pk=token.pk)


@login_required
@require_GET
def import_progress(request, pk: int):
    """The progress poll: reads a page itself when no worker is reading this list right now,
    and reloads the page (which then shows the list) once the reading has ended."""
    if not request.htmx:
        return token_import(request, pk)
    token = token_for_user(request.user, pk, Need.EDIT_JOBS)
    run = selectors.latest_run(token)
    if run is not None and run.is_reading:
        run = imports.import_advance(run.pk, pages=1)
    if run is None or not run.is_reading:
        return HttpResponseClientRefresh()
    return render(
        request,
        "tokens/token_import.html#import-progress",
        {"token": selectors.token_reread(token), "run": run},
    )


@login_required
@require_POST
def import_track(request, pk: int):
    token = token_for_user(request.user, pk, Need.EDIT_JOBS)
    run = selectors.latest_run(token)
    back = reverse("token_import", args=[token.pk])
    if run is None or run.is_reading or str(run.pk) != request.POST.get("run"):
        messages.error(request, "The job list was read again meanwhile: pick the jobs again.")
        return redirect(back)
    form = _filter_form(run, request.POST)
    filters = form.filters()
    query = urlencode({k: v for k, v in request.POST.items() if k in form.fields and v})
    if query:
        back += "?" + query
    if request.POST.get("select_all"):
        rows = selectors.listings(run, **filters)
    else:
        rows = selectors.listings_picked(run, request.POST.getlist("job"))
    if not rows.exists():
        messages.error(request, "Select at least one job to track.")
        return redirect(back)
    result = services.import_track(run=run, rows=rows, user=request.user)
    if result.tracked:
        messages.success(
            request,
            f"Now tracking {len(result.tracked)} job{'s' if len(result.tracked) != 1 else ''} "
            f"in {token.workspace.name}.",
        )
    if result.already:
        messages.info(request, f"{len(result.already)} already tracked in {token.workspace.name}.")
    for job_id, why in result.failed:
        messages.error(request, f"{job_id}: not tracked — {why}")
    return redirect(back)
