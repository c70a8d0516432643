"""Fine-tuning job bodies as Token Factory sends them: the one source of job JSON in the tests.

The fake Token Factory serves `default_job_body` (plus what a test adds); tests that parse a
job or store a snapshot without the fake use `observed_job` (the job the API README shows, as
seen on the real API) or `job_payload` (a running job with progress, a new ID each call).
Only the standard library is used, like the fake that imports it.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any


def new_job_id() -> str:
    """A job id in Token Factory's format: ``ftjob-`` + 32 lowercase hex chars."""
    return "ftjob-" + uuid.uuid4().hex


def new_file_id() -> str:
    """A file id in Token Factory's format: ``file-<uuid>``."""
    return f"file-{uuid.uuid4()}"


def default_hyperparameters() -> dict[str, Any]:
    """The supervised LoRA hyperparameters observed on a real job."""
    return {
        "batch_size": 32,
        "n_epochs": 10,
        "learning_rate": 1e-05,
        "warmup_ratio": 0.0,
        "weight_decay": 0.0,
        "lora": True,
        "lora_r": 16,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "packing": True,
        "max_grad_norm": 1.0,
        "context_length": 8192,
    }


def default_job_body(job_id: str, created_at: int) -> dict[str, Any]:
    """A realistic FineTuningJob body (see the API README), before any overrides."""
    return {
        "id": job_id,
        "object": "fine_tuning.job",
        "created_at": created_at,
        "error": None,
        "finished_at": None,
        "hyperparameters": default_hyperparameters(),
        "model": "Qwen/Qwen3-4B",
        "organization_id": "",
        "result_files": [],
        "seed": 42,
        "status": "running",
        "trained_tokens": 0,
        "training_file": new_file_id(),
        "validation_file": new_file_id(),
        "estimated_finish": None,
        "integrations": None,
        "method": None,
        "suffix": "",
        "trained_steps": 0,
        "total_steps": None,
    }


OBSERVED_JOB_ID = "ftjob-c7cc1f8df48144aeb180a5bf5818dc81"


def observed_job(**fields: Any) -> dict[str, Any]:
    """The job the API README shows, as observed on the real API (a fresh copy each call);
    `fields` override."""
    body = default_job_body(OBSERVED_JOB_ID, 1753341502)
    body["training_file"] = "file-76807105-0000-0000-0000-000000000000"
    body["validation_file"] = "file-d1c98e51-0000-0000-0000-000000000000"
    body.update(fields)
    return body


_job_numbers = itertools.count(1)


def job_payload(**fields: Any) -> dict[str, Any]:
    """A realistic job body as the API sends it, for a snapshot stored without the fake; each
    call a new job ID (``ftjob-`` and a counter); `fields` override."""
    payload = default_job_body(f"ftjob-{next(_job_numbers):032x}", 1753341502)
    payload.update(
        hyperparameters={"batch_size": 32, "n_epochs": 10, "learning_rate": 1e-05, "lora": True, "lora_r": 16},
        trained_tokens=1000,
        training_file="file-76807105",
        validation_file=None,
        suffix="my-run",
        trained_steps=25,
        total_steps=100,
    )
    payload.update(fields)
    return payload
