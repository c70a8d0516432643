from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import costs, live, selectors, services
from jobs.access import Need, job_for_user, membership_for
from jobs.forms import JobMoveForm, LabelForm
from jobs.selectors.training_log import EventsQuery
from jobs.sync import refresh
from jobs.views.sharing import job_sharing_context


@login_required
@require_GET
def job_detail(request, pk: int):
    # Fresh on a plain reload too, with or without JavaScript.
    job = refresh.refresh_if_due(job_for_user(request.user, pk))
    return _render_detail(request, job)


def _render_detail(request, job, *, label_form=None, move_form=None, status=200, sharing=None):
    context = {
        "job": job,
        "checked_at": live.checked_at([job]),
        **selectors.job_live_context(job, EventsQuery.from_params(request.GET)),
        **job_sharing_context(request, job, **(sharing or {})),  # the Share section (jobs/sharing.html)
    }
    if job.can_edit:
        context["can_cancel"] = services.can_cancel(job)
        tokens = selectors.tokens_usable_by(user=request.user)
        context["label_form"] = label_form or LabelForm(instance=job)
        context["move_form"] = move_form or JobMoveForm(
            tokens=tokens, initial={"workspace": job.workspace_id, "token": job.token_id}
        )
    return render(request, "jobs/job_detail.html", context, status=status)


@login_required
@require_POST
def job_refresh(request, pk: int):
    job = refresh.refresh_now(job_for_user(request.user, pk, Need.EDIT_JOBS))
    if job.refresh_error:
        messages.error(request, job.refresh_error)
    else:
        messages.success(request, "Refreshed just now.")
    return redirect("job_detail", pk=job.pk)


@login_required
@require_POST
def job_label(request, pk: int):
    job = job_for_user(request.user, pk, Need.EDIT_JOBS)
    form = LabelForm(request.POST, instance=job)
    if form.is_valid():
        services.job_label(job=job, label=form.cleaned_data["label"])
        messages.success(request, "Label saved." if job.label else "Label removed.")
        return redirect("job_detail", pk=job.pk)
    return _render_detail(request, job, label_form=form, status=422)


@login_required
@require_POST
def job_move(request, pk: int):
    job = job_for_user(request.user, pk, Need.EDIT_JOBS)
    form = JobMoveForm(request.POST, tokens=selectors.tokens_usable_by(user=request.user))
    if form.is_valid():
        membership_for(request.user, form.cleaned_data["workspace"].pk, Need.EDIT_JOBS)
        try:
            services.job_move(job=job, token=form.cleaned_data["token"], actor=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Moved to {job.workspace.name}, read with “{job.token.name}”.")
            return redirect("job_detail", pk=job.pk)
    return _render_detail(request, job, move_form=form, status=422)


@login_required
@require_http_methods(["GET", "POST"])
def job_remove(request, pk: int):
    job = job_for_user(request.user, pk, Need.EDIT_JOBS)
    if request.method == "POST":
        services.job_remove(job=job, actor=request.user)
        messages.success(request, f"Stopped tracking {job.job_id}. The job itself is untouched.")
        return redirect("dashboard")
    return render(request, "jobs/job_remove.html", {"job": job})


@login_required
@require_http_methods(["GET", "POST"])
def job_recalculate_cost(request, pk: int):
    """GET asks "Recalculate with today's prices?"; POST freezes the finished job's cost again."""
    job = job_for_user(request.user, pk, Need.MANAGE)
    if not job.is_terminal:
        messages.info(request, "This job has not finished: its cost follows today's prices until it does.")
        return redirect("job_detail", pk=job.pk)
    if request.method == "GET":
        today = selectors.cost_with_todays_prices(job)
        body = (
            f"{job.display_name} cost {costs.cost_of(job).summary}, worked out with the price when its cost was"
            f" frozen. With today's prices: {today.summary}. Everyone in {job.workspace.name} sees the new cost,"
            " and the workspace's audit trail records that you changed it."
        )
        context = {
            "title": "Recalculate with today's prices?",
            "body": body,
            "button": "Recalculate with today's prices",
            "cancel_url": reverse("job_detail", args=[job.pk]),
        }
        return render(request, "confirm.html", context)
    before, after = services.job_cost_recalculate(job, request.user)
    messages.success(request, f"Recalculated the cost with today's prices: {after.summary} (was {before.summary}).")
    return redirect("job_detail", pk=job.pk)


@login_required
@require_POST
def job_alerts_mute(request, pk: int):
    """ "Mute alerts": no more notifications about this job's alerts; the badges stay."""
    return _alerts_muted(request, pk, muted=True)


@login_required
@require_POST
def job_alerts_unmute(request, pk: int):
    """ "Unmute": this job's alerts notify the workspace's channels again."""
    return _alerts_muted(request, pk, muted=False)


def _alerts_muted(request, pk: int, *, muted: bool):
    job = job_for_user(request.user, pk, Need.EDIT_JOBS)
    change = services.job_alerts_mute if muted else services.job_alerts_unmute
    if change(job, request.user):
        messages.success(
            request,
            "Alerts muted: their badges stay, and no notification is sent about them."
            if muted
            else "Alerts unmuted: new alerts are notified again.",
        )
    else:
        messages.info(
            request, "This job's alerts were already muted." if muted else "This job's alerts were not muted."
        )
    return redirect("job_detail", pk=job.pk)
