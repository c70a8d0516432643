from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs import compare


@login_required
@require_GET
def job_compare(request):
    """`?ids=1&ids=2…`: 2–4 jobs side by side; a shareable URL, a 404 for any job one may not see."""
    try:
        ids = compare.parse_ids(request.GET.getlist("ids"))
    except compare.WrongCount as exc:
        return render(request, "jobs/job_compare.html", {"message": str(exc)})
    jobs = compare.jobs_to_compare(request.user, ids)
    checkpoints = compare.checkpoints_of(jobs)
    context = {
        "jobs": jobs,
        "facts": compare.key_facts(jobs),
        "hyperparameters": compare.hyperparameters(jobs),
        "final_metrics": compare.final_metrics(jobs, checkpoints),
        "best_checkpoints": compare.best_checkpoints(jobs, checkpoints),
        "charts": compare.curves(jobs, checkpoints),
        "share_url": request.build_absolute_uri(),
    }
    return render(request, "jobs/job_compare.html", context)
