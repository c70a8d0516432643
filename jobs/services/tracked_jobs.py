"""Tracked jobs: track one or many by ID, label, move, stop tracking, cancel on Token Factory,
recalculate a finished job's cost with today's prices, and mute or unmute its alerts'
notifications.

Cancel (`POST /v1/fine_tuning/jobs/{id}/cancel`) is not offered by every Token Factory: an
endpoint that answers 404 or 405 is remembered per API base URL (`jobs.sync.not_offered`), and
the button is not offered again there. After a cancel the job is refreshed at once, so the page
shows what the API now says, and the workspace's audit trail records who cancelled it; what a
refused cancel says about the token (paused, rejected) is recorded as for any other call.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import costs
from jobs.audit import audit_record
from jobs.models import ApiToken, RemovedJob, TrackedJob, Workspace
from jobs.sync import costs as sync_costs
from jobs.sync import files, health, history, refresh
from jobs.sync.not_offered import Endpoint, is_not_offered, remember_not_offered
from jobs.sync.refresh import fetch_job
from jobs.sync.tokens import open_token, record_upstream_error
from jobs.tokenfactory import (
    InvalidJobId,
    JobNotFound,
    NotOffered,
    RateLimited,
    TokenFactoryError,
    TokenRejected,
    clean_job_id,
)
from jobs.vault import VaultError


def job_track(*, workspace: Workspace, token: ApiToken, job_id: str, user, label: str = "") -> TrackedJob:
    """Fetch the job first, and store it only if that worked: nothing half-done is saved.

    Raises InvalidJobId/TokenFactoryError (with a message for the page) or ValidationError.
    """
    job_id = clean_job_id(job_id)
    existing = TrackedJob.objects.filter(workspace=workspace, job_id=job_id).first()
    if existing:
        raise ValidationError(f"{job_id} is already tracked in {workspace.name}.")
    if token.is_paused:
        raise ValidationError("Token Factory is rate-limiting this token; try again in a minute.")
    details = fetch_job(token=token, job_id=job_id)
    # A finished job is not refreshed again: its file names are asked about now (cached).
    files.remember_files(details, token_id=token.pk)
    now = timezone.now()
    try:
        with transaction.atomic():
            job = TrackedJob(
                workspace=workspace,
                token=token,
                job_id=job_id,
                label=label.strip(),
                added_by=user,
                snapshot=details.raw,
                status=details.status,
                fetched_at=now,
                checked_at=now,
            )
            # Tracked already ended: its final cost is frozen now, with today's price (jobs.sync.costs).
            sync_costs.freeze_if_ended(job, details, now=now)
            health.on_tracking(job, details, now=now)
            job.save(force_insert=True)
            audit_record(workspace=workspace, actor=user, action="job.track", description=f"started tracking {job_id}")
            history.record_tracking_started(job, now=now)
            RemovedJob.objects.filter(workspace=workspace, job_id=job_id).delete()  # wanted again
            return job
    except IntegrityError:  # tracked by someone else a moment ago
        raise ValidationError(f"{job_id} is already tracked in {workspace.name}.") from None


def job_track_many(
    *, workspace: Workspace, token: ApiToken, job_ids: list[str], user, label: str = ""
) -> list[tuple[str, str, str]]:
    """Track each of `job_ids` (in order, repeats once): (job ID, outcome, what happened) each.

    Outcomes: "tracked", "already", "not_found", "refused", "invalid", "not_tried". Once the
    API rejects or rate-limits the token, the IDs left are not tried: each would fail alike.
    """
    results: list[tuple[str, str, str]] = []
    stop: str = ""
    for raw in dict.fromkeys(job_ids):
        if stop:
            results.append((raw, "not_tried", stop))
            continue
        try:
            job = job_track(workspace=workspace, token=token, job_id=raw, user=user, label=label)
        except InvalidJobId:
            results.append((raw, "invalid", "not a fine-tuning job ID"))
        except JobNotFound as exc:
            results.append((raw, "not_found", exc.message))
        except (TokenRejected, RateLimited) as exc:
            results.append((raw, "refused", exc.message))
            stop = "not tried: " + exc.message
        except TokenFactoryError as exc:
            results.append((raw, "refused", exc.message))
        except VaultError as exc:
            results.append((raw, "refused", str(exc)))
            stop = "not tried: " + str(exc)
        except ValidationError as exc:
            message = " ".join(exc.messages)
            results.append((raw, "already" if "already tracked" in message else "refused", message))
        else:
            results.append((job.job_id, "tracked", f"now tracking it in {workspace.name}"))
    return results


def job_label(*, job: TrackedJob, label: str) -> TrackedJob:
    job.label = label.strip()
    job.save(update_fields=["label"])
    return job


@transaction.atomic
def job_remove(*, job: TrackedJob, actor) -> None:
    audit_record(
        workspace=job.workspace, actor=actor, action="job.remove", description=f"stopped tracking {job.job_id}"
    )
    # Remembered, so that a watched token does not bring it straight back.
    RemovedJob.objects.update_or_create(
        workspace=job.workspace, job_id=job.job_id, defaults={"removed_at": timezone.now()}
    )
    job.delete()


@transaction.atomic
def job_move(*, job: TrackedJob, token: ApiToken, actor) -> TrackedJob:
    """Move a job to another workspace, to be read there with one of that workspace's tokens."""
    source = job.workspace
    if TrackedJob.objects.filter(workspace=token.workspace, job_id=job.job_id).exclude(pk=job.pk).exists():
        raise ValidationError(f"{job.job_id} is already tracked in {token.workspace.name}.")
    job.workspace, job.token = token.workspace, token
    job.save(update_fields=["workspace", "token"])
    if source.pk != token.workspace_id:
        audit_record(
            workspace=source,
            actor=actor,
            action="job.move",
            description=f"moved {job.job_id} out to {token.workspace.name}",
        )
        audit_record(
            workspace=token.workspace,
            actor=actor,
            action="job.move",
            description=f"moved {job.job_id} in from {source.name}",
        )
    return job


def cancel_offered() -> bool:
    """False once this API base URL answered a cancel with 404 or 405 (a cache outage: offered)."""
    return not is_not_offered(Endpoint.CANCEL)


def can_cancel(job: TrackedJob) -> bool:
    return not job.is_terminal and job.token_id is not None and cancel_offered()


def job_cancel(*, job: TrackedJob, actor) -> TrackedJob:
    """Ask Token Factory to cancel `job`, record who did, and refresh the job at once.

    Raises ValidationError for a job that cannot be cancelled from here, VaultError for a key
    that cannot be decrypted, NotOffered (and remembers it) when the API has no cancel, and
    TokenFactoryError for any other failure (a 429 pauses the token, a 401 marks it rejected).
    """
    if job.is_terminal:
        raise ValidationError(f"{job.job_id} has already finished ({job.status}); there is nothing to cancel.")
    opened = open_token(job.token_id)
    if opened.token is None:
        raise ValidationError("The API token this job used was deleted; move the job to another token first.")
    try:
        opened.require_client().cancel_job(job.job_id)
    except NotOffered as exc:
        remember_not_offered(Endpoint.CANCEL, reason=exc.message)
        raise
    except TokenFactoryError as exc:
        record_upstream_error(opened.token, exc)
        raise
    audit_record(workspace=job.workspace, actor=actor, action="job.cancel", description=f"cancelled job {job.job_id}")
    return refresh.refresh_now(job)


@transaction.atomic
def job_cost_recalculate(job: TrackedJob, actor) -> tuple[costs.JobCost, costs.JobCost]:
    """ "Recalculate with today's prices": freeze a finished job's cost again with the prices of
    now (a price table changed since it ended), and record who did it and what changed in the
    workspace's audit trail. Returns the cost before and after. ValidationError for a job still
    running, whose cost follows today's prices anyway."""
    if not job.is_terminal:
        raise ValidationError(f"{job.job_id} is still {job.status}: its cost follows today's prices until it finishes.")
    before = costs.cost_of(job)
    after = sync_costs.refreeze(job)
    audit_record(
        workspace=job.workspace,
        actor=actor,
        action="job.cost_recalculate",
        description=f"recalculated the cost of {job.job_id} with today's prices: {after.summary} (was {before.summary})",
    )
    return before, after


@transaction.atomic
def job_alerts_mute(job: TrackedJob, actor) -> bool:
    """ "Mute alerts": the job's training-health alerts notify nobody (jobs.notifications) until
    someone unmutes them; their badges stay. Audited. False if they were muted already (by
    someone else meanwhile: theirs stands)."""
    now = timezone.now()
    if not TrackedJob.objects.filter(pk=job.pk, alerts_muted_at__isnull=True).update(
        alerts_muted_at=now, alerts_muted_by=actor
    ):
        job.refresh_from_db(fields=["alerts_muted_at", "alerts_muted_by"])
        return False
    job.alerts_muted_at, job.alerts_muted_by = now, actor
    audit_record(
        workspace=job.workspace, actor=actor, action="job.alerts_mute", description=f"muted the alerts of {job.job_id}"
    )
    return True


@transaction.atomic
def job_alerts_unmute(job: TrackedJob, actor) -> bool:
    """ "Unmute": the job's alerts notify its channels again (those raised from now on). Audited.
    False if they were not muted."""
    if not TrackedJob.objects.filter(pk=job.pk, alerts_muted_at__isnull=False).update(
        alerts_muted_at=None, alerts_muted_by=None
    ):
        job.refresh_from_db(fields=["alerts_muted_at", "alerts_muted_by"])
        return False
    job.alerts_muted_at, job.alerts_muted_by = None, None
    audit_record(
        workspace=job.workspace,
        actor=actor,
        action="job.alerts_unmute",
        description=f"unmuted the alerts of {job.job_id}",
    )
    return True
