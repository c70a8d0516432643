"""Property tests: whatever text arrives as a job ID, only a safe path segment leaves."""

from __future__ import annotations

import re
import string
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs.models import TrackedJob
from jobs.tokenfactory import JOB_ID_PATTERN, InvalidJobId, clean_job_id

SAFE = re.compile(r"ftjob-[A-Za-z0-9_-]+")
FORBIDDEN = set("/.%?#")

# Text that is likely to come close to a valid ID, mixed with anything at all.
ID_ALPHABET = string.ascii_letters + string.digits + "-_./%?#:@&= \t\n\x00é٣ｆ"
near_ids = st.builds(
    lambda prefix, body, pad: pad + prefix + body + pad,
    st.sampled_from(["ftjob-", "FTJOB-", "ftjob_", "ftjob-.", "ftjob--", "", "ftjob-/"]),
    st.text(alphabet=ID_ALPHABET, max_size=120),
    st.sampled_from(["", " ", "\n", "\u00a0", "\u3000"]),
)
any_text = st.one_of(st.text(max_size=300), near_ids)
real_ids = st.builds(lambda h: f"ftjob-{h}", st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None)


def check_safe(job_id: str) -> None:
    assert SAFE.fullmatch(job_id)
    assert not FORBIDDEN & set(job_id)
    assert not any(c.isspace() for c in job_id)
    assert job_id.isascii()
    assert len(job_id) <= 100
    assert quote(job_id, safe="") == job_id


@PROPERTY_SETTINGS
@given(any_text)
@example("ftjob-abc/../../x")
@example("ftjob-%2e%2e")
@example("ftjob-abc\n")
@example("ftjob-abc\ndef")
@example("ftjob-" + "a" * 94)
@example("ftjob-" + "a" * 95)
@example("ftjob-٣")
@example("ftjob-abc?x=1")
@example("ftjob-abc#frag")
@example("ftjob-")
def test_a_cleaned_job_id_is_always_a_safe_path_segment(raw):
    try:
        job_id = clean_job_id(raw)
    except InvalidJobId as exc:
        assert exc.message
        return
    check_safe(job_id)
    assert job_id == raw.strip()


@PROPERTY_SETTINGS
@given(real_ids, st.sampled_from(["", " ", "\t", "\n", "  \r\n"]))
def test_real_job_ids_always_pass(job_id, padding):
    assert clean_job_id(padding + job_id + padding) == job_id
    check_safe(job_id)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=any_text)
@example(raw="ftjob-abc/../../x")
@example(raw="ftjob-0 0")
@example(raw="../../v1/files")
@example(raw="ftjob-\x00")
@example(raw=" ftjob-c7cc1f8df48144aeb180a5bf5818dc81 ")
def test_the_track_form_never_fails_and_calls_upstream_only_for_valid_ids(alice_client, alice_token, fake_api, raw):
    before = len(fake_api.calls)
    response = alice_client.post("/jobs/track/", {"job_id": raw, "token": alice_token.pk})
    assert response.status_code < 500
    assert response.status_code in (302, 422)
    new_calls = fake_api.calls[before:]
    # Several IDs may be pasted at once (separated by spaces, commas or lines): each valid one
    # is tried, each invalid one reported, and nothing is asked upstream for an invalid one.
    parts = [part for part in re.split(r"[\s,;]+", raw) if part]
    valid = {part for part in parts if JOB_ID_PATTERN.fullmatch(part)}
    if "\x00" in raw:
        valid = set()  # the form refuses NUL characters before looking at the IDs
    if not valid:
        assert response.status_code == 422
        assert not new_calls
    else:
        assert {call.job_id for call in new_calls} <= valid
        if response.status_code == 302 and len(parts) == 1:
            assert TrackedJob.objects.filter(job_id=parts[0]).exists()
