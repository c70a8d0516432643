from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs import costs, live, selectors, services
from jobs.access import Need, membership_for, user_memberships
from jobs.forms import DashboardFilterForm, TrackJobForm
from jobs.sync import refresh
from jobs.tokenfactory import TokenFactoryError
from jobs.vault import VaultError

# Live jobs come first (see selectors.jobs_for_dashboard), so the first page shows them all
# unless a team runs more than this many at once.
JOBS_PER_PAGE = 50


@require_GET
def dashboard(request):
    if not request.user.is_authenticated:
        if not selectors.accounts_exist():
            return redirect("first_admin")
        return redirect("login")
    tokens = selectors.tokens_usable_by(user=request.user)
    return _render_dashboard(request, TrackJobForm(tokens=tokens))


@login_required
@require_POST
def track_job(request):
    form = TrackJobForm(request.POST, tokens=selectors.tokens_usable_by(user=request.user))
    if form.is_valid():
        workspace = membership_for(request.user, form.cleaned_data["workspace"].pk, Need.EDIT_JOBS).workspace
        job_ids = form.cleaned_data["job_id"]
        if len(job_ids) > 1:
            results = services.job_track_many(
                workspace=workspace,
                token=form.cleaned_data["token"],
                job_ids=job_ids,
                label=form.cleaned_data["label"],
                user=request.user,
            )
            _report_results(request, results)
            return redirect("dashboard")
        try:
            job = services.job_track(
                workspace=workspace,
                token=form.cleaned_data["token"],
                job_id=job_ids[0],
                label=form.cleaned_data["label"],
                user=request.user,
            )
        except TokenFactoryError as exc:
            form.add_error("job_id", exc.message)
        except VaultError as exc:
            form.add_error("token", str(exc))
        except ValidationError as exc:
            form.add_error("job_id", exc)
        else:
            messages.success(request, f"Now tracking {job.job_id}.")
            return redirect("dashboard")
    return _render_dashboard(request, form, status=422)


OUTCOME_LEVELS = {"tracked": messages.SUCCESS, "already": messages.INFO}
OUTCOME_WORDS = {
    "tracked": "tracked",
    "already": "already tracked",
    "not_found": "not found",
    "refused": "refused",
    "invalid": "not a job ID",
    "not_tried": "not tried",
}


def _report_results(request, results: list[tuple[str, str, str]]) -> None:
    """One line per ID: what happened to it, and why when it was not tracked."""
    for job_id, outcome, message in results:
        text = f"{job_id}: {OUTCOME_WORDS[outcome]}"
        if outcome not in ("tracked", "already", "invalid"):
            text += f" — {message}"
        messages.add_message(request, OUTCOME_LEVELS.get(outcome, messages.ERROR), text)


def _summary(request, counts: dict, filters: dict, memberships) -> dict:
    """The summary above the list: each counter a link to the same view filtered to it (a
    second click on the one in use lifts that filter), "Spent this month" and the budget bar of
    the one workspace shown (with several, the Spend page has them)."""
    counters = []
    for key, label, count in counts["counters"]:
        query = request.GET.copy()
        query.pop("page", None)
        current = filters["status"] == key
        if current:
            query.pop("status", None)
        else:
            query["status"] = key
        counters.append({"key": key, "label": label, "count": count, "query": query.urlencode(), "current": current})
    shown = filters["workspace"] or (memberships[0].workspace if len(memberships) == 1 else None)
    budget = costs.month_spend(shown) if shown is not None and shown.monthly_budget_usd else None
    return {
        "counters": counters,
        "spent_this_month": counts["spent_this_month"],
        "workspace": shown,
        "budget": budget,
        "budgeted": [] if shown is not None else [m.workspace for m in memberships if m.workspace.monthly_budget_usd],
    }


def _render_dashboard(request, form: TrackJobForm, status: int = 200):
    memberships = user_memberships(request.user)
    filter_form = DashboardFilterForm(
        request.GET or None,
        workspaces=[m.workspace for m in memberships],
        sorts=selectors.DASHBOARD_SORTS,
        periods=selectors.DASHBOARD_PERIODS,
        auto_id="filter_%s",  # the track form on the same page has its own id_workspace
    )
    filters = filter_form.filters()
    all_jobs = selectors.jobs_for_dashboard(user=request.user, **filters)
    counts = selectors.dashboard_counts(user=request.user, **filters)
    paginator = Paginator(all_jobs, JOBS_PER_PAGE)
    paginator.count = counts["total"]  # counted above with the summary's counters, in one query
    page = paginator.get_page(request.GET.get("page"))
    jobs = list(page.object_list)
    # Fresh on a plain reload too, with or without JavaScript.
    live.refresh_due(jobs)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "jobs": jobs,
        "cards": live.render_cards(jobs),
        "checked_at": live.checked_at(jobs),
        "page": page,
        "page_query": query.urlencode(),
        "live_due": any(refresh.is_due(job) for job in jobs),
        "poll_seconds": settings.FTDASH_REFRESH_SECONDS,
        "form": form,
        "tokens": form.tokens,
        "memberships": memberships,
        "filter_form": filter_form,
        "filtered": any(filters[k] for k in ("q", "workspace", "status", "model", "period", "alert")),
        "shown_workspace": filters["workspace"],
        "running_count": counts["running"],
        "summary": _summary(request, counts, filters, memberships),
    }
    return render(request, "jobs/dashboard.html", context, status=status)
