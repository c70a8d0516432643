"""FineTuningJob.from_payload: real jobs read right, odd jobs never break a page."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs.finetuning import (
    FineTuningJob,
    Hyperparameter,
    safe_url,
)
from tests.support.payloads import observed_job

UTC = dt.UTC

# The job from the API README, as observed on the real API (observed_job() is a fresh copy).
OBSERVED_JOB = observed_job()


def job(**fields) -> FineTuningJob:
    return FineTuningJob.from_payload(observed_job(**fields))


def hyperparameters(parsed: FineTuningJob) -> dict[str, Hyperparameter]:
    assert parsed.method is not None
    return {h.key: h for h in parsed.method.hyperparameters}


def changed(parsed: FineTuningJob) -> set[str]:
    return {key for key, h in hyperparameters(parsed).items() if h.differs_from_default}


def read_everything(parsed: FineTuningJob) -> None:
    """Touch every property the templates read, and check what a page would show is sane."""
    for name in (
        "id",
        "status",
        "model",
        "suffix",
        "created_at",
        "finished_at",
        "estimated_finish",
        "trained_tokens",
        "trained_steps",
        "total_steps",
        "seed",
        "organization_id",
        "training_file",
        "validation_file",
        "result_files",
    ):
        getattr(parsed, name)
    assert isinstance(parsed.status, str) and parsed.status
    assert parsed.status_label
    _ = parsed.is_terminal, parsed.is_known_status
    progress = parsed.progress_percent
    assert progress is None or (isinstance(progress, int) and 0 <= progress <= 100)
    duration = parsed.duration
    assert duration is None or duration >= dt.timedelta(0)
    assert isinstance(parsed.raw_json, str)
    assert all(isinstance(name, str) for name in parsed.result_files)
    if parsed.error:
        _ = str(parsed.error.code), str(parsed.error.message), parsed.error.param
    if parsed.method:
        _ = parsed.method.title, parsed.method.kind
        assert 0 <= parsed.method.changed_count <= len(parsed.method.hyperparameters)
        for h in parsed.method.hyperparameters:
            assert isinstance(h.label, str)
            assert isinstance(h.display, str)
            assert isinstance(h.default_display, str)
            assert h.differs_from_default in (True, False)
            _ = h.is_set
    for integration in parsed.integrations:
        assert isinstance(integration.title, str) and isinstance(integration.url_text, str)
        assert integration.url is None or safe_url(integration.url) == integration.url
        for label, value in integration.rows:
            assert isinstance(label, str) and isinstance(value, str)
        assert all(isinstance(tag, str) for tag in integration.tags)
    checkpoint = parsed.from_checkpoint
    if checkpoint:
        assert isinstance(checkpoint.title, str)
        assert checkpoint.url is None or safe_url(checkpoint.url) == checkpoint.url
        for label, value in checkpoint.rows:
            assert isinstance(label, str) and isinstance(value, str)


# ---------------------------------------------------------------------------- the observed job


def test_the_observed_real_job_reads_as_a_running_supervised_lora_job():
    parsed = FineTuningJob.from_payload(observed_job())

    assert parsed.id == "ftjob-c7cc1f8df48144aeb180a5bf5818dc81"
    assert parsed.status == "running" and parsed.status_label == "running"
    assert parsed.is_known_status and not parsed.is_terminal
    assert parsed.model == "Qwen/Qwen3-4B"
    assert parsed.suffix == "" and parsed.organization_id == ""
    assert parsed.created_at == dt.datetime(2025, 7, 24, 7, 18, 22, tzinfo=UTC)
    assert parsed.finished_at is None and parsed.estimated_finish is None
    assert parsed.trained_steps == 0 and parsed.trained_tokens == 0 and parsed.total_steps is None
    assert parsed.progress_percent is None  # a fresh job does not know its total yet
    assert parsed.seed == 42
    assert parsed.training_file.startswith("file-76807105")
    assert parsed.result_files == []
    assert parsed.error is None and parsed.integrations == [] and parsed.from_checkpoint is None
    assert parsed.duration is not None and parsed.duration > dt.timedelta(days=1)
    assert json.loads(parsed.raw_json) == OBSERVED_JOB

    assert parsed.method is not None
    assert parsed.method.kind == "supervised"
    assert parsed.method.title == "Supervised fine-tuning"
    assert changed(parsed) == {"batch_size", "n_epochs", "lora", "lora_r", "lora_alpha"}
    assert parsed.method.changed_count == 5
    hps = hyperparameters(parsed)
    assert hps["learning_rate"].display == "1e-05" and not hps["learning_rate"].differs_from_default
    assert hps["lora"].display == "yes" and hps["lora"].default_display == "no"
    assert hps["max_grad_norm"].is_set and not hps["max_grad_norm"].differs_from_default  # 1.0 == 1
    assert hps["batch_size"].display == "32" and hps["batch_size"].default_display == "8"


def test_created_at_in_milliseconds_reads_as_the_same_moment():
    assert job(created_at=1753341502000).created_at == dt.datetime(2025, 7, 24, 7, 18, 22, tzinfo=UTC)


def test_created_at_as_an_iso_string_reads_as_the_same_moment():
    # One rule for every time in an answer (jobs.finetuning.parse_timestamp): the training log
    # always read ISO 8601 strings; since issue 18 the job does too.
    assert job(created_at="2025-07-24T07:18:22Z").created_at == dt.datetime(2025, 7, 24, 7, 18, 22, tzinfo=UTC)
    assert job(created_at="2025-07-24T09:18:22+02:00").created_at == dt.datetime(2025, 7, 24, 7, 18, 22, tzinfo=UTC)


# ---------------------------------------------------------------------------- methods


def test_a_supervised_lora_method_marks_only_changed_settings():
    method = {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {
                "batch_size": 8,
                "learning_rate": 0.0002,
                "n_epochs": 3,
                "lora": True,
                "lora_r": 8,
                "lora_alpha": 32,
                "lora_dropout": 0.05,
                "packing": True,
                "context_length": 8192,
                "max_grad_norm": 1.0,
            }
        },
    }
    parsed = job(method=method, hyperparameters={"batch_size": 64})  # method wins over legacy

    assert parsed.method.kind == "supervised"
    assert changed(parsed) == {"learning_rate", "lora", "lora_alpha", "lora_dropout"}
    hps = hyperparameters(parsed)
    assert hps["batch_size"].display == "8"
    assert not hps["warmup_ratio"].is_set
    assert hps["warmup_ratio"].display == "0"  # shown at its default
    assert not hps["warmup_ratio"].differs_from_default
    assert hps["lora_alpha"].display == "32" and hps["lora_alpha"].default_display == "8"


def test_a_setting_the_api_adds_later_is_shown_without_a_default():
    method = {"type": "supervised", "supervised": {"hyperparameters": {"gradient_checkpointing": True}}}
    hps = hyperparameters(job(method=method))

    extra = hps["gradient_checkpointing"]
    assert extra.label == "Gradient checkpointing"
    assert extra.display == "yes"
    assert extra.default is None and not extra.differs_from_default


def test_a_spec_draft_method_reads_its_architecture_heads_and_loss():
    method = {
        "type": "spec-draft",
        "spec_draft": {
            "hyperparameters": {
                "batch_size": 8,
                "learning_rate": 0.0075,
                "n_epochs": 1,
                "context_length": 8192,
                "architecture": "eagle3_original",
                "num_decoding_heads": 5,
                "loss": {"type": "lk_alpha"},
            }
        },
    }
    parsed = job(method=method, hyperparameters=None)

    assert parsed.method.kind == "spec-draft"
    assert parsed.method.title == "Speculative draft model"
    hps = hyperparameters(parsed)
    assert hps["architecture"].display == "eagle3_original"
    assert hps["num_decoding_heads"].display == "5"
    assert hps["loss"].display == "lk_alpha" and hps["loss"].default_display == "kl"
    assert changed(parsed) == {"num_decoding_heads", "loss"}
    assert hps["n_epochs"].default == 1 and hps["learning_rate"].default == 0.0075


def test_a_spec_draft_method_at_its_defaults_has_nothing_changed():
    method = {
        "type": "spec-draft",
        "spec_draft": {"hyperparameters": {"loss": {"type": "kl"}, "num_decoding_heads": 3, "n_epochs": 1}},
    }
    parsed = job(method=method)

    assert parsed.method.changed_count == 0
    assert hyperparameters(parsed)["loss"].display == "kl"


def test_a_spec_draft_section_keyed_with_a_dash_is_read_too():
    method = {"type": "spec-draft", "spec-draft": {"hyperparameters": {"num_decoding_heads": 4}}}
    assert changed(job(method=method)) == {"num_decoding_heads"}


def test_legacy_top_level_hyperparameters_read_as_supervised():
    parsed = job(method=None, hyperparameters={"batch_size": 16, "lora": False})

    assert parsed.method.kind == "supervised"
    assert changed(parsed) == {"batch_size"}


def test_a_job_without_method_or_hyperparameters_has_no_method():
    assert job(method=None, hyperparameters=None).method is None


def test_an_unknown_method_type_is_shown_as_it_is():
    parsed = job(method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}})

    assert parsed.method.kind == "dpo" and parsed.method.title == "dpo"
    hps = hyperparameters(parsed)
    assert hps["beta"].display == "0.1" and not hps["beta"].differs_from_default


# ---------------------------------------------------------------------------- integrations


def test_a_wandb_integration_links_the_project_and_shows_the_run():
    parsed = job(
        integrations=[
            {
                "type": "wandb",
                "wandb": {"project": "project", "entity": "entity", "name": "qwen-lora-1", "tags": ["a", "b", 3]},
            }
        ]
    )

    (wandb,) = parsed.integrations
    assert wandb.kind == "wandb" and wandb.title == "Weights & Biases"
    assert wandb.url == "https://wandb.ai/entity/project"
    assert wandb.url_text == "entity/project"
    assert ("Run name", "qwen-lora-1") in wandb.rows
    assert wandb.tags == ["a", "b"]


def test_a_wandb_link_escapes_odd_names():
    (wandb,) = job(integrations=[{"type": "wandb", "wandb": {"project": "p?x=1", "entity": "a/b"}}]).integrations
    assert wandb.url == "https://wandb.ai/a%2Fb/p%3Fx%3D1"


def test_a_wandb_integration_without_entity_has_no_link():
    (wandb,) = job(integrations=[{"type": "wandb", "wandb": {"project": "project", "name": None}}]).integrations

    assert wandb.url is None
    assert ("Project", "project") in wandb.rows
    assert ("Entity", "—") in wandb.rows and ("Run name", "—") in wandb.rows


def test_an_mlflow_integration_links_an_https_tracking_uri():
    mlflow = {
        "tracking_uri": "https://mlflow.example.com",
        "experiment_name": "summarizer",
        "run_name": "llama-8b-lora",
        "tags": {"team": "ml"},
    }
    (integration,) = job(integrations=[{"type": "mlflow", "mlflow": mlflow}]).integrations

    assert integration.title == "MLflow"
    assert integration.url == "https://mlflow.example.com"
    assert ("Experiment", "summarizer") in integration.rows and ("Run", "llama-8b-lora") in integration.rows
    assert integration.tags == ["team=ml"]


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/mlflow",
        "databricks",
        "file:///etc/passwd",
        "java\nscript:alert(1)",
    ],
)
def test_an_mlflow_tracking_uri_that_is_not_http_is_shown_but_not_linked(uri):
    (integration,) = job(
        integrations=[{"type": "mlflow", "mlflow": {"tracking_uri": uri, "experiment_name": None, "run_name": None}}]
    ).integrations

    assert integration.url is None
    assert ("Tracking URI", uri) in integration.rows


def test_a_hugging_face_integration_links_the_output_repo():
    (hf,) = job(integrations=[{"type": "hf", "hf": {"output_repo_name": "org/repo"}}]).integrations

    assert hf.title == "Hugging Face"
    assert hf.url == "https://huggingface.co/org/repo"
    assert hf.url_text == "org/repo"


def test_an_unknown_integration_is_shown_generically():
    (comet,) = job(
        integrations=[{"type": "comet", "comet": {"workspace": "ws", "project_name": "p", "tags": ["x"]}}]
    ).integrations

    assert comet.kind == "comet" and comet.title == "comet"
    assert comet.url is None
    assert comet.rows == [("project_name", "p"), ("tags", '["x"]'), ("workspace", "ws")]


def test_an_integration_without_a_type_is_named_by_its_key():
    (wandb,) = job(integrations=[{"wandb": {"project": "p", "entity": "e"}}]).integrations
    assert wandb.kind == "wandb" and wandb.url == "https://wandb.ai/e/p"


def test_integration_items_that_are_not_objects_are_skipped():
    parsed = job(integrations=[None, "wandb", 3, [], {}, {"type": "hf", "hf": {"output_repo_name": "o/r"}}])
    assert [i.kind for i in parsed.integrations] == ["hf"]


# ---------------------------------------------------------------------------- from_checkpoint and error


def test_a_hugging_face_checkpoint_with_a_revision_links_the_tree():
    checkpoint = job(from_checkpoint={"type": "hf", "repo": "org/base", "revision": "v1.0"}).from_checkpoint

    assert checkpoint.kind == "hf"
    assert checkpoint.url == "https://huggingface.co/org/base/tree/v1.0"
    assert checkpoint.title == "org/base@v1.0"


def test_a_hugging_face_checkpoint_without_a_revision_links_the_repo():
    checkpoint = job(from_checkpoint={"type": "hf", "repo": "org/base", "revision": None}).from_checkpoint

    assert checkpoint.url == "https://huggingface.co/org/base"
    assert checkpoint.title == "org/base"


def test_a_checkpoint_with_a_repo_but_no_type_is_hugging_face():
    assert job(from_checkpoint={"repo": "org/base"}).from_checkpoint.url == "https://huggingface.co/org/base"


def test_a_fine_tuning_checkpoint_is_shown_without_a_link():
    checkpoint = job(
        from_checkpoint={"type": "ft", "job_id": "ftjob-abc", "checkpoint_id": "ftckpt_1", "step": 100}
    ).from_checkpoint

    assert checkpoint.kind == "ft"
    assert checkpoint.url is None
    assert checkpoint.title == "Fine-tuning checkpoint"
    assert checkpoint.rows == [("checkpoint_id", "ftckpt_1"), ("job_id", "ftjob-abc"), ("step", "100")]


@pytest.mark.parametrize("value", [None, {}, "org/base", ["org/base"], 5])
def test_no_checkpoint_reads_as_none(value):
    assert job(from_checkpoint=value).from_checkpoint is None


def test_an_error_object_is_read():
    parsed = job(
        status="failed",
        error={
            "code": "invalid_training_file",
            "message": "Line 17: expected a 'messages' list",
            "param": "training_file",
        },
    )

    assert parsed.error.code == "invalid_training_file"
    assert parsed.error.message == "Line 17: expected a 'messages' list"
    assert parsed.error.param == "training_file"


def test_an_error_given_as_a_string_is_the_message():
    error = job(error="Out of GPU memory").error
    assert error.message == "Out of GPU memory" and error.code == "" and error.param is None


@pytest.mark.parametrize("value", [None, {}, "", [], ["x"], 0])
def test_an_empty_error_reads_as_no_error(value):
    assert job(error=value).error is None


def test_an_error_with_odd_field_types_is_still_shown():
    error = job(error={"code": 500, "message": None, "param": None}).error
    assert error.code == "500" and error.message == "" and error.param is None


# ---------------------------------------------------------------------------- progress and status


@pytest.mark.parametrize(
    "status, trained, total, expected",
    [
        ("running", 0, None, None),
        ("running", 50, None, None),
        ("running", 0, 0, None),
        ("running", 10, 0, None),
        ("running", 5, -10, None),
        ("running", 0, 100, 0),
        ("running", None, 100, 0),
        ("running", 25, 100, 25),
        ("running", 1, 3, 33),
        ("running", 99, 100, 99),
        ("running", 100, 100, 100),
        ("running", 150, 100, 100),
        ("running", -5, 100, 0),
        ("succeeded", 10, 100, 100),
        ("succeeded", 0, None, 100),
        ("failed", 40, 100, 40),
        ("queued", 0, 100, 0),
    ],
)
def test_progress_percent(status, trained, total, expected):
    assert job(status=status, trained_steps=trained, total_steps=total).progress_percent == expected


def test_an_unknown_status_is_kept_as_it_is():
    parsed = job(status="paused_by_admin")

    assert parsed.status == "paused_by_admin"
    assert parsed.status_label == "paused by admin"
    assert not parsed.is_terminal and not parsed.is_known_status


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "canceled"])
def test_finished_statuses_are_terminal(status):
    parsed = job(status=status)
    assert parsed.is_terminal and parsed.is_known_status


@pytest.mark.parametrize("status", [None, "", "   ", 3, ["running"]])
def test_a_missing_status_reads_as_unknown(status):
    parsed = job(status=status)
    assert parsed.status == "unknown" and not parsed.is_known_status


def test_duration_of_a_finished_job_is_from_created_to_finished():
    assert job(status="succeeded", created_at=1000, finished_at=4600).duration == dt.timedelta(hours=1)


def test_duration_is_unknown_for_a_finished_job_without_finished_at():
    assert job(status="failed", finished_at=None).duration is None


def test_duration_is_unknown_when_finished_before_created():
    assert job(status="succeeded", created_at=5000, finished_at=1000).duration is None


# ---------------------------------------------------------------------------- wrong types never raise


def test_strings_where_numbers_are_expected_read_as_missing():
    parsed = job(
        trained_steps="25",
        total_steps="100",
        trained_tokens="1000",
        seed="42",
        created_at="1753341502",
        finished_at="yesterday",
    )

    assert parsed.trained_steps is None and parsed.total_steps is None
    assert parsed.trained_tokens is None and parsed.seed is None
    assert parsed.created_at is None and parsed.finished_at is None
    assert parsed.progress_percent is None
    read_everything(parsed)


def test_booleans_and_fractions_are_not_step_counts():
    parsed = job(trained_steps=True, total_steps=100.5)
    assert parsed.trained_steps is None and parsed.total_steps is None


def test_whole_floats_are_step_counts():
    parsed = job(trained_steps=25.0, total_steps=100.0)
    assert parsed.trained_steps == 25 and parsed.progress_percent == 25


def test_lists_where_objects_are_expected_read_as_missing():
    parsed = job(
        method=[{"type": "supervised"}],
        hyperparameters=[{"batch_size": 8}],
        integrations={"type": "wandb", "wandb": {"project": "p"}},
        from_checkpoint=["org/base"],
        error=["boom"],
        result_files="file-1",
    )

    assert parsed.method is None
    assert parsed.integrations == []
    assert parsed.from_checkpoint is None
    assert parsed.error is None
    assert parsed.result_files == []
    read_everything(parsed)


def test_null_everywhere_never_raises():
    parsed = FineTuningJob.from_payload(dict.fromkeys(OBSERVED_JOB))

    assert parsed.id == "" and parsed.status == "unknown" and parsed.method is None
    assert parsed.progress_percent is None and parsed.duration is None
    read_everything(parsed)


@pytest.mark.parametrize("payload", [None, [], "ftjob-x", 42, True, {}])
def test_a_payload_that_is_not_an_object_never_raises(payload):
    parsed = FineTuningJob.from_payload(payload)
    assert parsed.status == "unknown"
    read_everything(parsed)


def test_nested_sections_of_the_wrong_type_never_raise():
    parsed = job(
        method={"type": "supervised", "supervised": {"hyperparameters": ["lora"]}},
        integrations=[
            {"type": "wandb", "wandb": ["project"]},
            {"type": "mlflow", "mlflow": {"tracking_uri": 5, "tags": ["team"]}},
            {"type": "hf", "hf": {"output_repo_name": ["org/repo"]}},
            {"type": 7, "other": 1},
        ],
        from_checkpoint={"type": "hf", "repo": 5, "revision": ["main"]},
    )

    assert parsed.method.changed_count == 0
    assert [i.url for i in parsed.integrations] == [None, None, None, None]
    read_everything(parsed)


def test_hyperparameters_of_the_wrong_type_never_raise():
    parsed = job(
        hyperparameters={
            "batch_size": "32",
            "learning_rate": None,
            "lora": "true",
            "n_epochs": [3],
            "packing": 1,
            "max_grad_norm": {"value": 1},
            "context_length": float("inf"),
        }
    )
    hps = hyperparameters(parsed)

    assert hps["batch_size"].display == "32"
    assert hps["n_epochs"].display == "[3]"
    read_everything(parsed)


@pytest.mark.parametrize("tags", [5, 2.5, True, {"team": "ml"}, "abc"])
def test_wandb_tags_of_the_wrong_type_read_as_no_tags(tags):
    parsed = job(integrations=[{"type": "wandb", "wandb": {"project": "p", "entity": "e", "tags": tags}}])

    (wandb,) = parsed.integrations
    assert wandb.url == "https://wandb.ai/e/p"
    assert wandb.tags == []
    read_everything(parsed)


@pytest.mark.parametrize("key", ["created_at", "finished_at", "estimated_finish"])
def test_an_absurdly_large_timestamp_reads_as_missing(key):
    parsed = job(**{key: 10**400})
    assert getattr(parsed, key) is None
    read_everything(parsed)


@pytest.mark.parametrize("key", ["created_at", "finished_at", "estimated_finish"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1, 0, 10**20, 1e300])
def test_out_of_range_timestamps_read_as_missing(key, value):
    assert getattr(job(**{key: value}), key) is None


@pytest.mark.parametrize("key", ["learning_rate", "batch_size", "lora_dropout"])
def test_an_absurdly_large_hyperparameter_is_shown_as_changed(key):
    parsed = job(hyperparameters={key: 10**400})

    assert hyperparameters(parsed)[key].differs_from_default
    read_everything(parsed)


def test_huge_step_counts_still_give_a_percentage():
    parsed = job(trained_steps=10**400, total_steps=10**401)
    assert parsed.progress_percent == 10
    read_everything(parsed)


def test_a_lone_surrogate_in_a_repo_name_never_raises():
    # Valid JSON ("\ud800" escapes are allowed by the grammar) that Python decodes to a lone surrogate.
    payload = json.loads(
        '{"id": "ftjob-x", "status": "running",'
        ' "integrations": [{"type": "wandb", "wandb": {"project": "p\\ud800", "entity": "e"}},'
        '                  {"type": "hf", "hf": {"output_repo_name": "org/r\\udfff"}}],'
        ' "from_checkpoint": {"type": "hf", "repo": "org/\\ud800", "revision": "\\udc00"}}'
    )
    read_everything(FineTuningJob.from_payload(payload))


# ---------------------------------------------------------------------------- safe_url


@pytest.mark.parametrize(
    "url",
    ["http://mlflow.internal:5000", "https://wandb.ai/entity/project", "HTTPS://Example.COM/path?q=1#x"],
)
def test_safe_url_accepts_absolute_http_and_https(url):
    assert safe_url(url) == url


def test_safe_url_trims_surrounding_whitespace():
    assert safe_url("  https://example.com/x \n") == "https://example.com/x"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\nscript:alert(1)",
        "java\tscript:alert(1)",
        "\x01javascript:alert(1)",
        "javascript://example.com/%0Aalert(1)",
        "vbscript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "//evil.example",
        "//evil.example/https://ok",
        "/relative/path",
        "relative/path",
        "evil.example",
        "ftp://files.example.com",
        "file:///etc/passwd",
        "https://",
        "http:evil.example",
        "https:/evil.example",
        "",
        "   ",
        None,
        5,
        ["https://example.com"],
        {"url": "https://example.com"},
        "http://[::1",  # unparseable
    ],
)
def test_safe_url_rejects_everything_that_is_not_an_absolute_http_url(url):
    assert safe_url(url) is None


# ---------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

KNOWN_KEYS = sorted(set(OBSERVED_JOB) | {"method", "integrations", "from_checkpoint", "error", "hyperparameters"})


@settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(payload=json_values, key=st.sampled_from(KNOWN_KEYS), value=json_values)
def test_any_json_never_breaks_parsing_or_the_properties_templates_read(payload, key, value):
    read_everything(FineTuningJob.from_payload(payload))

    with_odd_field = observed_job(**{key: value})
    read_everything(FineTuningJob.from_payload(with_odd_field))


# Schema-shaped payloads whose leaves are anything: reaches the nested sections the flat
# property above rarely builds (method sections, integration configs, checkpoints).
small_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=4,
)


def _config(keys):
    return st.dictionaries(st.sampled_from(keys), small_json_values, max_size=len(keys))


_HP_KEYS = [
    "batch_size",
    "learning_rate",
    "n_epochs",
    "warmup_ratio",
    "weight_decay",
    "packing",
    "max_grad_norm",
    "context_length",
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "architecture",
    "num_decoding_heads",
    "loss",
    "extra_setting",
]
_methods = st.one_of(
    small_json_values,
    st.builds(lambda hp: {"type": "supervised", "supervised": {"hyperparameters": hp}}, _config(_HP_KEYS)),
    st.builds(lambda hp: {"type": "spec-draft", "spec_draft": {"hyperparameters": hp}}, _config(_HP_KEYS)),
)
_integrations = st.lists(
    st.one_of(
        small_json_values,
        st.builds(lambda c: {"type": "wandb", "wandb": c}, _config(["project", "entity", "name", "tags"])),
        st.builds(
            lambda c: {"type": "mlflow", "mlflow": c},
            _config(["tracking_uri", "experiment_name", "run_name", "tags"]),
        ),
        st.builds(lambda c: {"type": "hf", "hf": c}, _config(["output_repo_name"])),
    ),
    max_size=4,
)
_checkpoints = st.one_of(small_json_values, _config(["type", "repo", "revision", "step"]))


@settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    method=_methods,
    hyperparameters=st.one_of(small_json_values, _config(_HP_KEYS)),
    integrations=_integrations,
    from_checkpoint=_checkpoints,
    error=st.one_of(small_json_values, _config(["code", "message", "param"])),
)
@example(  # found by this test: W&B tags that are not a list
    method=None,
    hyperparameters=None,
    integrations=[{"type": "wandb", "wandb": {"project": "p", "entity": "e", "tags": True}}],
    from_checkpoint=None,
    error=None,
)
def test_schema_shaped_jobs_with_odd_leaves_never_break(method, hyperparameters, integrations, from_checkpoint, error):
    payload = observed_job(
        method=method,
        hyperparameters=hyperparameters,
        integrations=integrations,
        from_checkpoint=from_checkpoint,
        error=error,
    )
    read_everything(FineTuningJob.from_payload(payload))


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(key=st.sampled_from(KNOWN_KEYS), value=json_values)
def test_any_json_in_a_known_field_still_renders_the_job_page_and_the_dashboard(make_job, alice_client, key, value):
    """The templates themselves, not only the properties they read: a stored snapshot (made
    storable the way a refresh makes it) with any value in any known field renders both pages."""
    from jobs.models import TrackedJob
    from jobs.tokenfactory import storable_json

    tracked = make_job()
    snapshot = observed_job(**{"id": tracked.job_id, key: value})
    TrackedJob.objects.filter(pk=tracked.pk).update(snapshot=storable_json(snapshot))

    detail = alice_client.get(f"/jobs/{tracked.pk}/")
    dashboard = alice_client.get("/")

    assert detail.status_code == 200 and dashboard.status_code == 200
    assert tracked.job_id in detail.content.decode() and tracked.job_id in dashboard.content.decode()
    TrackedJob.objects.filter(pk=tracked.pk).delete()  # the next example starts from one job again
