"""Reads for the JSON API (jobs.views.api): the jobs an access token's owner may see, filtered,
one job by its Token Factory ID, and its open alerts, events and checkpoints."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from jobs.access import Need, jobs_visible_to, membership_for
from jobs.models import Membership, TrackedJob, TrainingCheckpoint, TrainingEvent
from jobs.selectors.dashboard import jobs_in_view, status_q
from jobs.selectors.training_log import checkpoints_of


class TrackedInSeveral(Exception):
    """A job ID tracked in more than one of the caller's workspaces, and no workspace named."""

    def __init__(self, job_id: str, workspaces: list[tuple[int, str]]) -> None:
        self.job_id = job_id
        self.workspaces = workspaces
        names = ", ".join(f"{name} ({pk})" for pk, name in workspaces)
        super().__init__(f"{job_id} is tracked in several of your workspaces: {names}. Say which with ?workspace=<id>.")


def api_jobs(*, user, workspace_id: int | None = None, status: str = "", search: str = "") -> QuerySet[TrackedJob]:
    """The user's jobs, as the dashboard's filters keep them (one query when evaluated). A
    workspace the user is not in is a 404."""
    workspace = membership_for(user, workspace_id).workspace if workspace_id is not None else None
    jobs = jobs_in_view(user=user, workspace=workspace, q=search)
    kept = status_q(status)
    return jobs.filter(kept) if kept is not None else jobs


def api_job(*, user, job_id: str, workspace_id: int | None = None, need: Need = Need.VIEW) -> TrackedJob:
    """The job tracked as `job_id` in one of the user's workspaces (`workspace_id`'s, if given).

    Raises Http404 for a job (or workspace) the user may not see, TrackedInSeveral when the ID is
    tracked in several of their workspaces and none was named, PermissionDenied when their role
    there does not allow `need`."""
    if workspace_id is not None:
        membership_for(user, workspace_id)
    jobs = jobs_visible_to(user).filter(job_id=job_id)
    if workspace_id is not None:
        jobs = jobs.filter(workspace_id=workspace_id)
    found = list(jobs.order_by("workspace__name", "workspace_id")[:10])
    if not found:
        raise Http404("No such job.")
    if len(found) > 1:
        raise TrackedInSeveral(job_id, [(job.workspace_id, job.workspace.name) for job in found])
    job = found[0]
    if need is Need.EDIT_JOBS and job.my_role not in Membership.EDITING_ROLES:
        raise PermissionDenied("Your role in this workspace does not allow that.")
    if need is Need.MANAGE and job.my_role != Membership.Role.OWNER:
        raise PermissionDenied("Your role in this workspace does not allow that.")
    return job


def api_events(job: TrackedJob) -> QuerySet[TrainingEvent]:
    """The job's stored training events (jobs.sync.training_log), for cursor pagination."""
    return job.training_events.all()


def api_checkpoints(job: TrackedJob) -> list[TrainingCheckpoint]:
    """The job's stored checkpoints in the job page's order (by step, those without one last): one query."""
    return checkpoints_of(job)
