"""Read-only share links and status badges.

A share link's page (`/share/<key>/`) is the job page's live part for anyone who holds the key,
no account needed, updated by the same cheap poll (`/share/<key>/live/`, jobs.live); badges
(`/badge/<key>.svg`, `.json`, `.shields`) say a job's or a workspace's status in one query.
Neither answers anything for an unknown, revoked or expired key but the site's 404.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from jobs import live, selectors, services
from jobs.access import Need, job_for_user, membership_for, share_link_for_user
from jobs.forms import ShareLinkForm
from jobs.selectors.training_log import EventsQuery
from jobs.sync import refresh
from jobs.views.live import CHECKED_HEADER, _nothing_changed
from jobs.views.tracked_jobs import _render_detail
from jobs.views.workspace_settings import settings_page

# --- The job page's Share section (owners and members) -------------------------------------


@login_required
@require_POST
def job_share_create(request, pk: int):
    """A new read-only link, shown once, on the job page this answers with (not a redirect: the
    key is neither stored nor put in a message or the session, only in this answer)."""
    job = job_for_user(request.user, pk, Need.EDIT_JOBS)
    form = ShareLinkForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, job, sharing={"share_form": form}, status=422)
    days = services.SHARE_EXPIRY_DAYS[form.cleaned_data["expiry"]]
    link, key = services.share_link_create(job=job, actor=request.user, days=days)
    url = request.build_absolute_uri(reverse("shared_job", args=[key]))
    return _render_detail(request, job, sharing={"new_share_url": url})


@login_required
@require_POST
def job_share_revoke(request, pk: int, link_pk: int):
    link = share_link_for_user(request.user, pk, link_pk)
    services.share_link_revoke(link=link, actor=request.user)
    maker = link.created_by.get_username() if link.created_by else "someone"
    messages.success(
        request, f"Revoked the read-only link {maker} made on {link.created_at:%Y-%m-%d}: it opens nothing now."
    )
    return redirect("job_detail", pk=pk)


@login_required
@require_POST
def job_badge_rotate(request, pk: int):
    job = job_for_user(request.user, pk, Need.MANAGE)
    services.job_badge_rotate(job=job, actor=request.user)
    messages.success(request, "New badge key: the job's old badge URLs no longer answer. Paste the new ones.")
    return redirect(reverse("job_detail", args=[pk]) + "#sharing")


@login_required
@require_POST
def workspace_badge_rotate(request, pk: int):
    workspace = membership_for(request.user, pk, Need.MANAGE).workspace
    services.workspace_badge_rotate(workspace=workspace, actor=request.user)
    messages.success(request, "New badge key: the workspace's old badge URLs no longer answer. Paste the new ones.")
    return redirect(settings_page(workspace, "workspace-badge")[0])


# --- The shared page (anyone with the key) -------------------------------------------------


def _private(response: HttpResponse) -> HttpResponse:
    """What every answer about a share link carries: kept out of search engines, out of the
    Referer of links followed from it (the key is in its URL), out of every cache."""
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    add_never_cache_headers(response)
    return response


def _shared(key: str):
    found = selectors.shared_job(key)
    if found is None:
        raise Http404("No such link.")
    return found


@require_GET
def shared_job(request, key: str):
    link, job = _shared(key)
    job = refresh.refresh_if_due(job)  # fresh on a plain reload too, as the job page is
    context = {
        "job": job,
        "link": link,
        "shared": True,
        "share_live_url": reverse("shared_job_live", args=[key]),
        "checked_at": live.checked_at([job]),
        **selectors.job_live_context(job, EventsQuery.from_params(request.GET), shared=True),
    }
    return _private(render(request, "jobs/shared_job.html", context))


@require_GET
def shared_job_live(request, key: str):
    """The shared page's one poll: 204 when its job has not changed since `?v=<pk>.<version>`,
    else its live part (the shared variant)."""
    answer = live.changed_shared_job(key, live.parse_shown(request.GET.getlist("v")))
    if answer is None:
        raise Http404("No such link.")
    jobs, checked_at = answer
    if jobs:
        events_query = EventsQuery.from_params(request.GET)
        live_url = reverse("shared_job_live", args=[key])
        response = HttpResponse(
            "".join(live.render_shared_job_parts(jobs, events_query=events_query, live_url=live_url))
        )
    else:
        response = _nothing_changed()
    if checked_at is not None:
        response[CHECKED_HEADER] = checked_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _private(response)


# --- Badges (anyone with the key) ----------------------------------------------------------


def _badge(key: str):
    badge = selectors.badge_for(key)
    if badge is None:
        raise Http404("No such badge.")
    return badge


def _uncached(response: HttpResponse) -> HttpResponse:
    # A badge follows its job: browsers and image proxies must ask again each time they show it.
    response["Cache-Control"] = "no-cache"
    response["X-Robots-Tag"] = "noindex"
    return response


@require_GET
def badge_svg(request, key: str):
    svg = render_to_string("jobs/badge.svg", {"badge": _badge(key).drawing()})
    return _uncached(HttpResponse(svg, content_type="image/svg+xml; charset=utf-8"))


@require_GET
def badge_json(request, key: str):
    response = JsonResponse(_badge(key).as_json())
    response["Access-Control-Allow-Origin"] = "*"  # a status page elsewhere may read it; it tells nothing more
    return _uncached(response)


@require_GET
def badge_shields(request, key: str):
    response = JsonResponse(_badge(key).as_shields())
    response["Access-Control-Allow-Origin"] = "*"
    return _uncached(response)
