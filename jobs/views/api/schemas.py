"""The JSON API's request and answer shapes: the OpenAPI schema at /api/v1/openapi.json is
generated from these (django-ninja, pydantic), and every answer is validated against them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ninja import Field, Schema

from jobs.converters import MAX_DATABASE_ID
from jobs.tokenfactory import JOB_ID_PATTERN

#: A Token Factory job ID, as the Track form accepts it (which strips the spaces around it).
JOB_ID_REGEX = f"^{JOB_ID_PATTERN.pattern}$"
JOB_ID_INPUT_REGEX = rf"^\s*{JOB_ID_PATTERN.pattern}\s*$"
#: Free text in a query: anything but NUL (which PostgreSQL cannot compare).
TEXT_REGEX = r"^[^\x00]*$"
DATABASE_ID = {"ge": 1, "le": MAX_DATABASE_ID}


class FieldError(Schema):
    location: str = Field(description="Where the bad value was: `body.job_id`, `query.workspace`…")
    message: str


class ErrorOut(Schema):
    message: str = Field(description="What went wrong, in words for the person running the script.")
    errors: list[FieldError] | None = Field(None, description="For bad input (422): each value refused, and why.")


class WorkspaceOut(Schema):
    id: int
    name: str


class ProgressOut(Schema):
    percent: int | None = Field(description="0–100 from trained and total steps; null when unknown.")
    trained_steps: int | None
    total_steps: int | None
    trained_tokens: int | None


class CostOut(Schema):
    currency: str = "USD"
    so_far: str | None = Field(
        description="What the job cost so far, a decimal string with 6 places; null without a price."
    )
    projected: str | None = Field(description="While running: what it will cost at its total steps.")
    final: str | None = Field(description="Once finished: its final cost.")
    price_usd_per_million: str | None
    price_source: str | None
    frozen: bool
    summary: str = Field(description="The cost in words, as the job page says it.")


class AlertOut(Schema):
    rule: str = Field(description="overfitting, diverged, eta_slipped or slow.")
    message: str
    raised_at: dt.datetime
    step: int | None


class IntegrationOut(Schema):
    kind: str
    title: str
    url: str | None


class LinksOut(Schema):
    page: str = Field(description="The job's page in ftdash.")
    api: str
    events: str
    checkpoints: str
    integrations: list[IntegrationOut] = Field(
        description="Weights & Biases, MLflow, Hugging Face… as the job names them."
    )


class JobErrorOut(Schema):
    code: str
    message: str
    param: str | None


class MethodOut(Schema):
    kind: str
    title: str
    hyperparameters: dict[str, Any]


class SnapshotOut(Schema):
    fetched_at: dt.datetime = Field(description="When ftdash last read the job from Token Factory.")
    age_seconds: int = Field(description="How old that reading is.")
    checked_at: dt.datetime
    refresh_error: str | None
    stalled: bool


class JobOut(Schema):
    job_id: str
    workspace: WorkspaceOut
    label: str
    status: str
    status_label: str
    is_terminal: bool
    model: str
    suffix: str
    fine_tuned_model: str | None
    created_at: dt.datetime | None
    finished_at: dt.datetime | None
    estimated_finish: dt.datetime | None
    eta_seconds: int | None = Field(description="Seconds until the estimated finish, while running.")
    tracked_at: dt.datetime
    progress: ProgressOut
    error: JobErrorOut | None
    method: MethodOut | None
    training_file: str
    validation_file: str
    result_files: list[str]
    seed: int | None
    cost: CostOut
    alerts: list[AlertOut] = Field(description="Training-health alerts still open.")
    links: LinksOut
    snapshot: SnapshotOut


class EventOut(Schema):
    id: str
    created_at: dt.datetime | None
    level: str
    message: str


class CheckpointOut(Schema):
    id: str
    created_at: dt.datetime | None
    step: int | None
    metrics: dict[str, Any]
    fine_tuned_model_checkpoint: str


class CheckpointsOut(Schema):
    job_id: str
    checkpoints: list[CheckpointOut]


class TrackIn(Schema):
    job_id: str = Field(
        min_length=1, max_length=100, pattern=JOB_ID_INPUT_REGEX, description="The Token Factory job ID, `ftjob-…`."
    )
    workspace: int | None = Field(
        None, **DATABASE_ID, description="The workspace's ID; left out, the token's (or your personal one)."
    )
    token: int | None = Field(
        None,
        **DATABASE_ID,
        description="The Token Factory API token's ID in ftdash; left out, the workspace's only one.",
    )
    label: str = Field("", max_length=100, pattern=TEXT_REGEX)
