"""A fine-tuning job as the Token Factory API describes it, parsed tolerantly.

The API marks every object `additionalProperties: true` and adds fields and statuses over
time, so nothing here trusts a type: a field of the wrong type reads as missing, an unknown
status is shown as it is, and the raw payload is kept for the "Raw JSON" panel.
`finite_number` and `parse_timestamp` are the one reading of a number and of a time from the
API: the training log's sync, the charts and the exports use them too.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "canceled"})
QUEUED_STATUSES = frozenset({"validating_files", "queued"})
KNOWN_STATUSES = frozenset({"validating_files", "queued", "running"}) | TERMINAL_STATUSES


def safe_url(url: Any) -> str | None:
    """`url` if it is an absolute http(s) URL, else None: upstream data never becomes a
    `javascript:` or `data:` link."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return url
    return None


def _quote(value: str, safe: str = "") -> str:
    """A URL path segment; never raises, even on a lone surrogate."""
    return quote(value, safe=safe, errors="replace")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def finite_number(value: Any) -> float | None:
    """`value` as a float if it is a finite real number, else None.

    The one reading of a number upstream sent: bools are not numbers; NaN, ±infinity, an
    integer too large for a float and anything that is not an int or a float (strings too,
    "12" and the "NaN"/"Infinity" that storable_json keeps) read as None. Never raises.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    """The strings of a JSON list; anything else reads as an empty list."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


#: Above this a timestamp is in milliseconds: as seconds it would be after the year 5000.
MILLISECONDS_ABOVE = 10**11
#: Above this not even milliseconds make a date (it would be after the year 30000).
LATEST_TIMESTAMP = 10**15
#: No ISO 8601 date and time is longer (the longest, with microseconds and offset, has 32).
MAX_ISO_CHARS = 64


def parse_timestamp(value: Any) -> dt.datetime | None:
    """A moment upstream sent, as an aware datetime in UTC, or None. Never raises.

    The one rule for every time in an answer: a positive number is seconds since the epoch, or
    milliseconds when it is above `MILLISECONDS_ABOVE`; zero, negatives, bools, NaN, infinities
    and numbers past any date read as missing. A string is read as ISO 8601 only (with Z, with
    an offset, or naive, which is taken as UTC); a string of digits is not seconds, so
    "1700000000" reads as missing (though "20240101" is an ISO 8601 date). Anything else reads
    as missing.
    """
    if isinstance(value, str):
        return _iso_timestamp(value)
    seconds = finite_number(value)
    if seconds is None or seconds <= 0 or seconds > LATEST_TIMESTAMP:
        return None
    if seconds > MILLISECONDS_ABOVE:
        seconds = seconds / 1000
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso_timestamp(text: str) -> dt.datetime | None:
    if len(text) > MAX_ISO_CHARS:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
        return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (OverflowError, ValueError):  # not ISO 8601, or an offset that moves it past year 1 or 9999
        return None


def display_value(value: Any) -> str:
    """A short, human rendering of a JSON value (still escaped by the template)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# --- Method and hyperparameters ------------------------------------------------------------


@dataclass(frozen=True)
class HyperparameterSpec:
    key: str
    label: str
    default: Any


_COMMON_SPECS = [
    HyperparameterSpec("batch_size", "Batch size", 8),
    HyperparameterSpec("learning_rate", "Learning rate", 0.00001),
    HyperparameterSpec("n_epochs", "Epochs", 3),
    HyperparameterSpec("warmup_ratio", "Warmup ratio", 0),
    HyperparameterSpec("weight_decay", "Weight decay", 0),
    HyperparameterSpec("packing", "Packing", True),
    HyperparameterSpec("max_grad_norm", "Max grad norm", 1),
    HyperparameterSpec("context_length", "Context length", 8192),
]

# Defaults as published in the API schema (SupervisedHParameters, SpecDraftHParameters).
METHOD_SPECS: dict[str, list[HyperparameterSpec]] = {
    "supervised": [
        *_COMMON_SPECS,
        HyperparameterSpec("lora", "LoRA", False),
        HyperparameterSpec("lora_r", "LoRA r", 8),
        HyperparameterSpec("lora_alpha", "LoRA alpha", 8),
        HyperparameterSpec("lora_dropout", "LoRA dropout", 0),
    ],
    "spec-draft": [
        HyperparameterSpec(spec.key, spec.label, default)
        for spec, default in zip(_COMMON_SPECS, [8, 0.0075, 1, 0, 0, True, 1, 8192], strict=True)
    ]
    + [
        HyperparameterSpec("architecture", "Architecture", "eagle3_original"),
        HyperparameterSpec("num_decoding_heads", "Decoding heads", 3),
        HyperparameterSpec("loss", "Loss type", "kl"),
    ],
}

METHOD_TITLES = {"supervised": "Supervised fine-tuning", "spec-draft": "Speculative draft model"}


@dataclass(frozen=True)
class Hyperparameter:
    key: str
    label: str
    value: Any
    default: Any
    is_set: bool

    @property
    def differs_from_default(self) -> bool:
        if not self.is_set or self.default is None:
            return False
        if isinstance(self.value, bool) or isinstance(self.default, bool):
            return self.value is not self.default
        if isinstance(self.value, (int, float)) and isinstance(self.default, (int, float)):
            try:
                return not math.isclose(float(self.value), float(self.default), rel_tol=1e-9, abs_tol=1e-15)
            except OverflowError:  # a number too large for a float is certainly not the default
                return True
        return self.value != self.default

    @property
    def display(self) -> str:
        return display_value(self.value if self.is_set else self.default)

    @property
    def default_display(self) -> str:
        return display_value(self.default)


@dataclass(frozen=True)
class Method:
    kind: str
    hyperparameters: list[Hyperparameter]

    @property
    def title(self) -> str:
        return METHOD_TITLES.get(self.kind, self.kind)

    @property
    def changed_count(self) -> int:
        return sum(1 for h in self.hyperparameters if h.differs_from_default)

    @classmethod
    def from_payload(cls, payload: dict) -> Method | None:
        method = _dict(payload.get("method"))
        kind = _str(method.get("type"))
        if kind:
            section = _dict(method.get(kind.replace("-", "_")) or method.get(kind))
            values = _dict(section.get("hyperparameters"))
        elif isinstance(payload.get("hyperparameters"), dict):
            # Jobs created without `method` report supervised settings at the top level.
            kind, values = "supervised", payload["hyperparameters"]
        else:
            return None
        values = dict(values)
        if isinstance(values.get("loss"), dict):
            values["loss"] = values["loss"].get("type", values["loss"])
        specs = METHOD_SPECS.get(kind, [])
        known = {spec.key for spec in specs}
        hyperparameters = [
            Hyperparameter(spec.key, spec.label, values.get(spec.key), spec.default, spec.key in values)
            for spec in specs
        ]
        # Settings the API adds later are still shown, without a default to compare against.
        hyperparameters += [
            Hyperparameter(key, key.replace("_", " ").capitalize(), value, None, True)
            for key, value in sorted(values.items())
            if key not in known
        ]
        return cls(kind=kind, hyperparameters=hyperparameters)


# --- Integrations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Integration:
    kind: str
    title: str
    url: str | None
    url_text: str
    rows: list[tuple[str, str]]
    tags: list[str]

    @classmethod
    def from_payload(cls, item: Any) -> Integration | None:
        item = _dict(item)
        kind = _str(item.get("type")) or next(iter(item), None)
        if not kind:
            return None
        config = _dict(item.get(kind))
        if kind == "wandb":
            return cls._wandb(config)
        if kind == "mlflow":
            return cls._mlflow(config)
        if kind == "hf":
            return cls._hugging_face(config)
        rows = [(key, display_value(value)) for key, value in sorted(config.items())]
        return cls(kind=kind, title=kind, url=None, url_text="", rows=rows, tags=[])

    @classmethod
    def _wandb(cls, config: dict) -> Integration:
        project, entity = _str(config.get("project")), _str(config.get("entity"))
        url = None
        if project and entity:
            url = f"https://wandb.ai/{_quote(entity)}/{_quote(project)}"
        rows = [("Project", project or "—"), ("Entity", entity or "—"), ("Run name", _str(config.get("name")) or "—")]
        tags = _strings(config.get("tags"))
        return cls("wandb", "Weights & Biases", url, f"{entity}/{project}", rows, tags)

    @classmethod
    def _mlflow(cls, config: dict) -> Integration:
        tracking_uri = _str(config.get("tracking_uri"))
        rows = [
            ("Tracking URI", tracking_uri or "—"),
            ("Experiment", _str(config.get("experiment_name")) or "—"),
            ("Run", _str(config.get("run_name")) or "—"),
        ]
        tags = [f"{key}={value}" for key, value in sorted(_dict(config.get("tags")).items())]
        return cls("mlflow", "MLflow", safe_url(tracking_uri), tracking_uri or "", rows, tags)

    @classmethod
    def _hugging_face(cls, config: dict) -> Integration:
        repo = _str(config.get("output_repo_name"))
        url = f"https://huggingface.co/{_quote(repo, safe='/')}" if repo else None
        return cls("hf", "Hugging Face", url, repo or "", [("Output repo", repo or "—")], [])


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    title: str
    url: str | None
    rows: list[tuple[str, str]]

    @classmethod
    def from_payload(cls, value: Any) -> Checkpoint | None:
        value = _dict(value)
        if not value:
            return None
        repo = _str(value.get("repo"))
        kind = _str(value.get("type")) or ("hf" if repo else "ft")
        if kind == "hf" and repo:
            revision = _str(value.get("revision"))
            path = _quote(repo, safe="/")
            url = f"https://huggingface.co/{path}" + (f"/tree/{_quote(revision)}" if revision else "")
            title = f"{repo}@{revision}" if revision else repo
            return cls(kind, title, url, [])
        rows = [(key, display_value(item)) for key, item in sorted(value.items()) if key != "type"]
        return cls(kind, "Fine-tuning checkpoint", None, rows)


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    param: str | None

    @classmethod
    def from_payload(cls, value: Any) -> JobError | None:
        if isinstance(value, str) and value:
            return cls(code="", message=value, param=None)
        value = _dict(value)
        if not value:
            return None
        return cls(
            code=display_value(value.get("code")) if value.get("code") is not None else "",
            message=display_value(value.get("message")) if value.get("message") is not None else "",
            param=display_value(value["param"]) if value.get("param") is not None else None,
        )


# --- The job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FineTuningJob:
    id: str
    status: str
    model: str
    suffix: str
    created_at: dt.datetime | None
    finished_at: dt.datetime | None
    estimated_finish: dt.datetime | None
    trained_tokens: int | None
    trained_steps: int | None
    total_steps: int | None
    seed: int | None
    organization_id: str
    training_file: str
    validation_file: str
    result_files: list[str]
    raw: dict = field(repr=False)

    @classmethod
    def from_payload(cls, payload: Any) -> FineTuningJob:
        payload = _dict(payload)
        return cls(
            id=_str(payload.get("id")) or "",
            # At most 40 characters, what TrackedJob.status stores (PostgreSQL enforces it).
            status=(_str(payload.get("status")) or "unknown").strip().lower()[:40] or "unknown",
            model=_str(payload.get("model")) or "",
            suffix=_str(payload.get("suffix")) or "",
            created_at=parse_timestamp(payload.get("created_at")),
            finished_at=parse_timestamp(payload.get("finished_at")),
            estimated_finish=parse_timestamp(payload.get("estimated_finish")),
            trained_tokens=_int(payload.get("trained_tokens")),
            trained_steps=_int(payload.get("trained_steps")),
            total_steps=_int(payload.get("total_steps")),
            seed=_int(payload.get("seed")),
            organization_id=_str(payload.get("organization_id")) or "",
            training_file=_str(payload.get("training_file")) or "",
            validation_file=_str(payload.get("validation_file")) or "",
            result_files=_strings(payload.get("result_files")),
            raw=payload,
        )

    # Parsed when first asked for: a card, a poll's render or a metrics scrape of a thousand jobs
    # reads the progress fields above, and only a job page needs the method's hyperparameters.
    @functools.cached_property
    def error(self) -> JobError | None:
        return JobError.from_payload(self.raw.get("error"))

    @functools.cached_property
    def method(self) -> Method | None:
        return Method.from_payload(self.raw)

    @functools.cached_property
    def integrations(self) -> list[Integration]:
        items = self.raw.get("integrations")
        if not isinstance(items, list):
            return []
        return [integration for integration in map(Integration.from_payload, items) if integration is not None]

    @functools.cached_property
    def from_checkpoint(self) -> Checkpoint | None:
        return Checkpoint.from_payload(self.raw.get("from_checkpoint"))

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_known_status(self) -> bool:
        return self.status in KNOWN_STATUSES

    @property
    def status_label(self) -> str:
        return self.status.replace("_", " ")

    @property
    def progress_percent(self) -> int | None:
        """0–100 from trained/total steps, or None when progress cannot be known."""
        if self.status == "succeeded":
            return 100
        total, trained = self.total_steps, self.trained_steps or 0
        if not total or total <= 0:
            return None
        return max(0, min(100, trained * 100 // total))

    @property
    def duration(self) -> dt.timedelta | None:
        if not self.created_at:
            return None
        end = self.finished_at or (None if self.is_terminal else dt.datetime.now(tz=dt.UTC))
        if end is None or end < self.created_at:
            return None
        return end - self.created_at

    @property
    def raw_json(self) -> str:
        return json.dumps(self.raw, indent=2, sort_keys=True, ensure_ascii=False)
