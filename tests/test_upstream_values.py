"""Numbers, times and metrics from the API, each read by one rule in one place.

`jobs.finetuning.finite_number` is the only "is this a number?" (the job, the charts, the
exports, the compare page); `jobs.finetuning.parse_timestamp` the only reading of a time (the
job's own times and the training log's events and checkpoints); `jobs.metrics.METRICS` the only
table of the six training metrics and their labels.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs import compare, export
from jobs.finetuning import FineTuningJob, finite_number, parse_timestamp
from jobs.metrics import LABELS, METRIC_KEYS, METRICS
from jobs.models import TrackedJob, TrainingCheckpoint, TrainingEvent
from jobs.sync import refresh
from jobs.templatetags import training
from tests.conftest import track_remote_job

UTC = dt.UTC
MOMENT = dt.datetime(2025, 7, 24, 7, 18, 22, tzinfo=UTC)
SECONDS = 1753341502

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Any JSON value, as json.loads hands it over (NaN and infinities included: Python's json reads them).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
    | st.datetimes().map(lambda moment: moment.isoformat()),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (3, 3.0),
        (-2.5, -2.5),
        (1e-300, 1e-300),
        (10**300, 1e300),
        (True, None),
        (False, None),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        (10**400, None),  # no float holds it: not a number a chart or a CSV can use
        (-(10**400), None),
        ("1.5", None),  # a numeric string is not a number
        ("NaN", None),  # what storable_json keeps of a NaN
        ("Infinity", None),
        ([1], None),
        ({"value": 1}, None),
    ],
)
def test_finite_number_reads_only_finite_ints_and_floats(value, expected):
    assert finite_number(value) == expected
    if expected is not None:
        assert isinstance(finite_number(value), float)


def test_a_csv_cell_keeps_an_int_as_an_int_and_blanks_what_is_not_a_finite_number():
    assert export.safe_cell(3) == 3 and isinstance(export.safe_cell(3), int)
    assert export.safe_cell(0.25) == 0.25
    assert export.safe_cell(float("nan")) == ""
    assert export.safe_cell(10**400) == ""  # was an OverflowError


# ---------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(SECONDS, MOMENT, id="seconds"),
        pytest.param(float(SECONDS), MOMENT, id="seconds-float"),
        pytest.param(SECONDS + 0.5, MOMENT + dt.timedelta(seconds=0.5), id="seconds-fraction"),
        pytest.param(SECONDS * 1000, MOMENT, id="milliseconds"),
        pytest.param(SECONDS * 1000 + 250, MOMENT + dt.timedelta(milliseconds=250), id="milliseconds-fraction"),
        pytest.param(1, dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), id="one-second"),
        pytest.param(10**11, dt.datetime(5138, 11, 16, 9, 46, 40, tzinfo=UTC), id="last-seconds"),
        pytest.param(10**11 + 1, dt.datetime(1973, 3, 3, 9, 46, 40, 1000, tzinfo=UTC), id="first-milliseconds"),
        pytest.param("2025-07-24T07:18:22Z", MOMENT, id="iso-z"),
        pytest.param("2025-07-24T07:18:22.000+00:00", MOMENT, id="iso-utc-offset"),
        pytest.param("2025-07-24T09:18:22+02:00", MOMENT, id="iso-plus-two"),
        pytest.param("2025-07-24T02:18:22-05:00", MOMENT, id="iso-minus-five"),
        pytest.param("2025-07-24T07:18:22", MOMENT, id="iso-naive-is-utc"),
        pytest.param("2025-07-24 07:18:22", MOMENT, id="iso-space"),
        pytest.param("2025-07-24", dt.datetime(2025, 7, 24, tzinfo=UTC), id="iso-date"),
        pytest.param("20250724", dt.datetime(2025, 7, 24, tzinfo=UTC), id="iso-basic-date"),
        pytest.param(None, None, id="null"),
        pytest.param(float("nan"), None, id="nan"),
        pytest.param(float("inf"), None, id="inf"),
        pytest.param(float("-inf"), None, id="minus-inf"),
        pytest.param(0, None, id="zero"),
        pytest.param(-1, None, id="negative"),
        pytest.param(-SECONDS, None, id="negative-seconds"),
        pytest.param(True, None, id="true"),
        pytest.param(False, None, id="false"),
        pytest.param(10**15, None, id="milliseconds-past-year-9999"),
        pytest.param(10**15 + 1, None, id="past-any-date"),
        pytest.param(10**20, None, id="huge"),
        pytest.param(1e300, None, id="huge-float"),
        pytest.param(10**400, None, id="too-big-for-a-float"),
        pytest.param(str(SECONDS), None, id="string-of-seconds"),
        pytest.param(str(SECONDS * 1000), None, id="string-of-milliseconds"),
        pytest.param("", None, id="empty-string"),
        pytest.param("yesterday", None, id="garbage"),
        pytest.param("NaN", None, id="stored-nan"),
        pytest.param("Infinity", None, id="stored-infinity"),
        pytest.param("2025-13-01T00:00:00Z", None, id="month-13"),
        pytest.param("2025-07-24T07:18:22+25:00", None, id="offset-out-of-range"),
        pytest.param("0001-01-01T00:00:00+05:00", None, id="before-year-1-in-utc"),
        pytest.param("9999-12-31T23:59:59-05:00", None, id="after-year-9999-in-utc"),
        pytest.param("10000-01-01T00:00:00Z", None, id="year-10000"),
        pytest.param("\ud800", None, id="lone-surrogate"),
        pytest.param("2025-07-24T07:18:22Z" + " " * 3_000_000, None, id="3-mb-string"),
        pytest.param("9" * 3_000_000, None, id="3-mb-of-digits"),
        pytest.param([SECONDS], None, id="list"),
        pytest.param({"seconds": SECONDS}, None, id="object"),
    ],
)
def test_parse_timestamp_reads_every_time_by_one_rule(value, expected):
    parsed = parse_timestamp(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == dt.timedelta(0)


def test_a_time_after_the_year_9999_reads_as_missing_in_any_unit():
    year_10000 = int(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) + 1
    # In seconds it is above MILLISECONDS_ABOVE, so it reads as milliseconds (in 1978).
    assert parse_timestamp(year_10000) == dt.datetime.fromtimestamp(year_10000 / 1000, tz=UTC)
    assert parse_timestamp(year_10000 * 1000) is None  # milliseconds: past what datetime holds
    assert parse_timestamp(year_10000 * 10**6) is None  # microseconds: past any date


@PROPERTY_SETTINGS
@given(json_values)
@example(float("nan"))
@example(10**400)
@example("9999-12-31T23:59:59-23:59")
@example("0001-01-01T00:00:00+23:59")
@example("\ud800")
def test_parse_timestamp_never_raises_and_answers_in_utc(value):
    parsed = parse_timestamp(value)
    assert parsed is None or (isinstance(parsed, dt.datetime) and parsed.utcoffset() == dt.timedelta(0))


@PROPERTY_SETTINGS
@given(json_values)
@example(10**400)
@example(float("-inf"))
def test_finite_number_never_raises_and_answers_a_finite_float(value):
    number = finite_number(value)
    assert number is None or (isinstance(number, float) and math.isfinite(number))


@PROPERTY_SETTINGS
@given(st.dictionaries(st.sampled_from(["created_at", "finished_at", "estimated_finish"]), json_values))
def test_a_job_with_any_times_at_all_reads_them_by_the_same_rule(times):
    payload = {"id": "ftjob-x", "status": "running", **times}
    json.dumps(payload)  # a payload json.loads could have produced
    parsed = FineTuningJob.from_payload(payload)
    assert parsed.created_at == parse_timestamp(times.get("created_at"))
    assert parsed.finished_at == parse_timestamp(times.get("finished_at"))
    assert parsed.estimated_finish == parse_timestamp(times.get("estimated_finish"))
    parsed.duration  # noqa: B018 - reading it never raises either


# ---------------------------------------------------------------------------- the training log


@pytest.fixture
def quick_settings(settings):
    settings.FTDASH_API_RETRIES = 0
    settings.FTDASH_API_READ_TIMEOUT = 2.0
    settings.FTDASH_REFRESH_SECONDS = 5


@pytest.fixture
def fresh_cache(db):
    from django.core.cache import caches

    caches["default"].clear()
    caches["rendered"].clear()


def _refresh(job: TrackedJob) -> None:
    from django.utils import timezone

    TrackedJob.objects.filter(pk=job.pk).update(checked_at=timezone.now() - dt.timedelta(seconds=60))
    refresh.refresh_if_due(TrackedJob.objects.get(pk=job.pk))


def test_events_timed_in_milliseconds_are_stored_at_their_moment(
    quick_settings, fresh_cache, fake_api, alice, alice_token
):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    start = int(time.time()) + 10
    for i in range(3):
        fake_api.add_event(job.job_id, f"ms {i}", created_at=(start + i) * 1000)

    _refresh(job)

    stored = dict(TrainingEvent.objects.filter(job=job, message__startswith="ms ").values_list("message", "created_at"))
    assert stored == {f"ms {i}": dt.datetime.fromtimestamp(start + i, tz=UTC) for i in range(3)}


def test_checkpoints_keep_only_the_six_metrics(quick_settings, fresh_cache, fake_api, alice, alice_token):
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    _refresh(job)
    fake_api.update_job(job.job_id, status="succeeded", trained_steps=100)
    fake_api.add_checkpoint(
        job.job_id, step_number=100, metrics={**dict.fromkeys(METRIC_KEYS, 0.5), "step": 100, "surprise": 1}
    )

    _refresh(job)  # the final read after the end fetches the checkpoints

    (checkpoint,) = TrainingCheckpoint.objects.filter(job=job, step=100)
    assert checkpoint.metrics == dict.fromkeys(METRIC_KEYS, 0.5)


# ---------------------------------------------------------------------------- the metrics table


def test_the_metrics_table_has_six_metrics_each_labelled_once():
    assert len(METRICS) == 6 == len(set(METRIC_KEYS)) == len(set(LABELS.values()))
    assert {metric.panel for metric in METRICS} == {"loss", "accuracy"}


def test_the_job_page_the_compare_page_and_the_csv_show_the_metrics_the_same_way(db):
    assert [column.label for column in training.TABLE_COLUMNS] == [metric.label for metric in METRICS]
    assert [column.key for column in training.TABLE_COLUMNS] == list(METRIC_KEYS)
    assert [row.label for row in compare.final_metrics([], {})][1:] == [metric.label for metric in METRICS]
    csv_header = next(export.metrics_rows(TrackedJob(job_id="ftjob-x")))
    first = csv_header.index(METRIC_KEYS[0])
    assert csv_header[first : first + len(METRIC_KEYS)] == list(METRIC_KEYS)
