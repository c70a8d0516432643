"""The JSON API's job endpoints: list, read (with ETag and 304), events, checkpoints, track
(write scope, the Track form's checks) and stop tracking. Every read goes through
jobs.access's scoping (jobs.selectors.api), as the owner of the access token."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Header, Path, Query, Router, Status
from ninja.pagination import paginate

from jobs import costs, selectors, services
from jobs.access import Need, membership_for, user_workspaces
from jobs.forms import TrackJobForm
from jobs.models import ApiToken, JobAlert, TrackedJob
from jobs.sync import refresh
from jobs.tokenfactory import JobNotFound, TokenFactoryError
from jobs.vault import VaultError
from jobs.views.api.documents import checkpoint_document, etag, event_document, job_document, matches
from jobs.views.api.errors import ApiError
from jobs.views.api.pagination import Cursor, Mapped, Row
from jobs.views.api.schemas import (
    DATABASE_ID,
    JOB_ID_REGEX,
    TEXT_REGEX,
    CheckpointsOut,
    ErrorOut,
    EventOut,
    JobOut,
    TrackIn,
)

router = Router(tags=["jobs"])

# What every call may answer besides its success.
COMMON = {401: ErrorOut, 422: ErrorOut, 429: ErrorOut}
ONE_JOB = {**COMMON, 404: ErrorOut, 409: ErrorOut}
WORKSPACE = Query(None, **DATABASE_ID, description="A workspace's ID: only its jobs (for a job ID tracked in several).")
JOB_ID = Path(..., pattern=JOB_ID_REGEX, max_length=100, description="The Token Factory job ID, `ftjob-…`.")
IF_NONE_MATCH = Header(None, alias="If-None-Match", max_length=2000, description="An ETag from an earlier answer.")


def _user(request: HttpRequest):
    return request.auth.user


def _require_write(request: HttpRequest) -> None:
    if not request.auth.can_write:
        raise ApiError(403, "This access token is read-only: make a read-and-write one to track or stop tracking jobs.")


def _with_open_alerts(jobs):
    return jobs.prefetch_related(
        Prefetch("alerts", queryset=JobAlert.objects.filter(cleared_at__isnull=True), to_attr="open_alerts")
    )


def _conditional(request: HttpRequest, document: dict, response: HttpResponse, if_none_match: str | None):
    """The document with its ETag, or a bodiless 304 when the caller already has it."""
    tag = etag(document)
    if matches(if_none_match, tag):
        not_modified = HttpResponse(status=304)
        not_modified["ETag"] = tag
        return not_modified
    response["ETag"] = tag
    response["Cache-Control"] = "private, no-cache"
    return document


@router.get("/jobs", response={200: list[JobOut], **COMMON, 404: ErrorOut}, url_name="api_jobs", summary="List jobs")
@paginate(Cursor)
def list_jobs(
    request: HttpRequest,
    workspace: int | None = WORKSPACE,
    status: str = Query(
        "", max_length=40, pattern=TEXT_REGEX, description="running, queued, succeeded, failed, cancelled, stalled…"
    ),
    search: str = Query(
        "", max_length=200, pattern=TEXT_REGEX, description="Part of a job ID, label, suffix or model."
    ),
):
    """The jobs of your workspaces, newest tracked first, a page at a time: follow `next`."""
    jobs = selectors.api_jobs(user=_user(request), workspace_id=workspace, status=status, search=search)
    return Mapped(_with_open_alerts(jobs), lambda page: _job_rows(request, page))


def _job_rows(request: HttpRequest, page: list[TrackedJob]) -> list[Row]:
    costs.attach(page)  # the page's prices in one go
    return [Row(job.pk, job_document(request, job, job.open_alerts)) for job in page]


@router.get("/jobs/{job_id}", response={200: JobOut, 304: None, **ONE_JOB}, url_name="api_job", summary="Read a job")
def read_job(
    request: HttpRequest,
    response: HttpResponse,
    job_id: str = JOB_ID,
    workspace: int | None = WORKSPACE,
    if_none_match: str | None = IF_NONE_MATCH,
):
    """A job's snapshot, progress, ETA, cost, open alerts and links. Poll it with `If-None-Match`:
    304 (no body) until something changes."""
    job = selectors.api_job(user=_user(request), job_id=job_id, workspace_id=workspace)
    # Fresh for a script too: refreshed when due, as a page's poll does (one call at a time).
    job = refresh.refresh_if_due(job)
    document = job_document(request, job, selectors.open_alerts_of(job))
    return _conditional(request, document, response, if_none_match)


@router.get(
    "/jobs/{job_id}/events",
    response={200: list[EventOut], **ONE_JOB},
    url_name="api_job_events",
    summary="A job's events",
)
@paginate(Cursor, ordering=("pk",))
def job_events(request: HttpRequest, job_id: str = JOB_ID, workspace: int | None = WORKSPACE):
    """The job's training events as ftdash stored them, oldest first, a page at a time."""
    job = selectors.api_job(user=_user(request), job_id=job_id, workspace_id=workspace)
    return Mapped(selectors.api_events(job), lambda page: [Row(e.pk, event_document(e)) for e in page])


@router.get(
    "/jobs/{job_id}/checkpoints",
    response={200: CheckpointsOut, 304: None, **ONE_JOB},
    url_name="api_job_checkpoints",
    summary="A job's checkpoints",
)
def job_checkpoints(
    request: HttpRequest,
    response: HttpResponse,
    job_id: str = JOB_ID,
    workspace: int | None = WORKSPACE,
    if_none_match: str | None = IF_NONE_MATCH,
):
    """The job's checkpoints with their metrics (losses, accuracies), by step."""
    job = selectors.api_job(user=_user(request), job_id=job_id, workspace_id=workspace)
    document = {"job_id": job.job_id, "checkpoints": [checkpoint_document(c) for c in selectors.api_checkpoints(job)]}
    return _conditional(request, document, response, if_none_match)


@router.post(
    "/jobs", response={201: JobOut, **COMMON, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}, summary="Track a job"
)
def track_job(request: HttpRequest, payload: TrackIn, response: HttpResponse):
    """Start tracking a job (write scope): the same checks and messages as the dashboard's Track form."""
    _require_write(request)
    user = _user(request)
    if payload.workspace is not None:
        membership_for(user, payload.workspace, Need.EDIT_JOBS)  # 404 outside it, 403 for a viewer
    tokens = selectors.tokens_usable_by(user=user)
    token_id = payload.token if payload.token is not None else _only_token(user, tokens, payload.workspace)
    if token_id not in {t.pk for t in tokens}:
        if ApiToken.objects.filter(pk=token_id, workspace__memberships__user=user).exists():
            raise PermissionDenied("Your role in that token's workspace does not allow tracking jobs.")
        raise ApiError(404, f"No Token Factory API token {token_id} that you can track jobs with.")
    data = {"job_id": payload.job_id, "token": token_id, "label": payload.label}
    if payload.workspace is not None:
        data["workspace"] = payload.workspace
    form = TrackJobForm(data, tokens=tokens)
    if not form.is_valid():
        raise _form_errors(form)
    job_ids = form.cleaned_data["job_id"]
    if len(job_ids) != 1:
        raise ApiError(422, "One job ID per call, please.")
    workspace = membership_for(user, form.cleaned_data["workspace"].pk, Need.EDIT_JOBS).workspace
    try:
        job = services.job_track(
            workspace=workspace, token=form.cleaned_data["token"], job_id=job_ids[0], label=payload.label, user=user
        )
    except JobNotFound as exc:
        raise ApiError(404, exc.message) from None
    except TokenFactoryError as exc:
        raise ApiError(422, exc.message) from None
    except VaultError as exc:
        raise ApiError(422, str(exc)) from None
    except ValidationError as exc:
        message = " ".join(exc.messages)
        raise ApiError(409 if "already tracked" in message else 422, message) from None
    job = TrackedJob.objects.select_related("workspace").get(pk=job.pk)
    response["Location"] = request.build_absolute_uri(
        reverse("api-v1:api_job", kwargs={"job_id": job.job_id}) + f"?workspace={job.workspace_id}"
    )
    return Status(201, job_document(request, job, []))


def _only_token(user, tokens: list[ApiToken], workspace_id: int | None) -> int:
    """The token to read a job with when the call names none: the only one there is."""
    candidates = [t for t in tokens if workspace_id is None or t.workspace_id == workspace_id]
    if len(candidates) == 1:
        return candidates[0].pk
    if not candidates:
        if not user_workspaces(user, Need.EDIT_JOBS):
            raise PermissionDenied("Your role in your workspaces does not allow tracking jobs.")
        raise ApiError(422, "No Token Factory API token to read the job with: add one on ftdash's API tokens page.")
    names = ", ".join(f"{t.pk} (“{t.name}”, {t.workspace.name})" for t in candidates)
    raise ApiError(409, f'Several API tokens could read it; say which with "token": one of {names}.')


def _form_errors(form: TrackJobForm) -> ApiError:
    errors = [
        {"location": f"body.{field}" if field != "__all__" else "body", "message": message}
        for field, messages in form.errors.items()
        for message in messages
    ]
    error = ApiError(422, " ".join(e["message"] for e in errors))
    error.errors = errors
    return error


@router.delete("/jobs/{job_id}", response={204: None, **ONE_JOB, 403: ErrorOut}, summary="Stop tracking a job")
def stop_tracking(request: HttpRequest, job_id: str = JOB_ID, workspace: int | None = WORKSPACE):
    """Stop tracking a job (write scope; owners and members): 204 with no body."""
    _require_write(request)
    job = selectors.api_job(user=_user(request), job_id=job_id, workspace_id=workspace, need=Need.EDIT_JOBS)
    services.job_remove(job=job, actor=_user(request))
    return Status(204, None)
