from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from jobs import services
from jobs.access import Need, job_for_user
from jobs.tokenfactory import TokenFactoryError
from jobs.vault import VaultError


@login_required
@require_http_methods(["GET", "POST"])
def job_cancel(request, pk: int):
    """GET asks "Cancel job …?"; POST cancels it on Token Factory."""
    job = job_for_user(request.user, pk, Need.EDIT_JOBS)
    if job.is_terminal:
        messages.info(
            request, f"This job has already finished ({job.details.status_label}); there is nothing to cancel."
        )
        return redirect("job_detail", pk=job.pk)
    if not services.cancel_offered():
        messages.info(request, "This Token Factory endpoint does not offer cancelling.")
        return redirect("job_detail", pk=job.pk)
    if request.method == "GET":
        return render(request, "jobs/job_cancel.html", {"job": job})
    try:
        job = services.job_cancel(job=job, actor=request.user)
    except TokenFactoryError as exc:
        messages.error(request, exc.message)
    except (ValidationError, VaultError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"Asked Token Factory to cancel {job.job_id}; it is now {job.details.status_label}.")
    return redirect("job_detail", pk=job.pk)
