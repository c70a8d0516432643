"""The one poll per page and interval (see jobs.live and static/js/live.js).

Both answer 204 with no body when nothing the page shows has changed, and otherwise the
changed parts only, which the page morphs in place by their ids. Either way the answer says
how fresh the page's jobs are (`CHECKED_HEADER`), which a quiet job's check changes alone.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from jobs import live
from jobs.selectors.training_log import EventsQuery


@login_required
@require_GET
def dashboard_cards(request):
    """The dashboard's cards whose jobs changed since the versions in `?v=<pk>.<version>`."""
    return _changed_parts(request, live.parse_shown(request.GET.getlist("v")))


@login_required
@require_GET
def job_parts(request, pk: int):
    """The live parts of a job page, if the job changed since `?v=<pk>.<version>`."""
    shown = live.parse_shown(request.GET.getlist("v"))
    # The Events panel's level filter and length ride along, so an update keeps them.
    events_query = EventsQuery.from_params(request.GET)
    return _changed_parts(request, {pk: shown.get(pk, "")}, events_query=events_query)


# The oldest working check of the jobs polled, for the page's "checked N s ago" (live.js).
CHECKED_HEADER = "X-Ftdash-Checked-At"


def _changed_parts(request, shown: dict[int, str], *, events_query: EventsQuery | None = None) -> HttpResponse:
    """Dashboard cards, or (with `events_query`) the live part of one job's page."""
    job_page = events_query is not None
    jobs, gone, checked_at = live.changed_jobs(request.user, shown, with_training_log=job_page)
    if gone and job_page:
        raise Http404("No such job.")  # as for every other URL of a job one may not see
    response = _nothing_changed() if not jobs and not gone else _parts(request, jobs, gone, events_query)
    if checked_at is not None:
        response[CHECKED_HEADER] = checked_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return response


def _parts(request, jobs, gone: list[int], events_query: EventsQuery | None) -> HttpResponse:
    """The changed parts, each from the render cache where it is there, and the gone notices
    (a dashboard card whose job the viewer can no longer see, which polls no more)."""
    if events_query is None:
        html = live.render_cards(jobs, viewer=request.user)
    else:
        html = live.render_job_parts(jobs, events_query=events_query, viewer=request.user)
    html += [render_to_string(live.GONE_TEMPLATE, {"pk": pk}) for pk in gone]
    return HttpResponse("".join(html))


def _nothing_changed() -> HttpResponse:
    """As small as an answer gets: most polls find nothing new, and they add up."""
    response = HttpResponse(status=204)
    del response["Content-Type"]
    response.xframe_options_exempt = True  # nothing to frame (and no CSP, see the middleware)
    return response
