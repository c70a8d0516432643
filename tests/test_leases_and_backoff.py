"""The worker's two shared scheduling rules: the backoff schedule after failures in a row, and
leases (one worker per row; a lease is given back only by the worker that holds it)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Q
from django.utils import timezone

from jobs.models import TrackedJob
from jobs.sync.backoff import backed_off
from jobs.sync.leases import Lease, Quota

seconds = dt.timedelta


def test_the_backoff_doubles_per_failure_up_to_the_cap():
    base, cap = seconds(seconds=5), seconds(seconds=60)
    schedule = [backed_off(base, failures, cap=cap).total_seconds() for failures in range(7)]
    assert schedule == [5, 10, 20, 40, 60, 60, 60]
    # However many failures: no overflow, still the cap.
    assert backed_off(base, 10_000, cap=cap) == cap


def test_the_backoff_never_goes_below_the_base_interval():
    assert backed_off(seconds(seconds=120), 0, cap=seconds(seconds=60)) == seconds(seconds=120)
    assert backed_off(seconds(seconds=120), 3, cap=seconds(seconds=60)) == seconds(seconds=120)


def test_the_backoff_cap_is_the_setting_unless_given(settings):
    settings.FTDASH_MAX_BACKOFF_SECONDS = 30
    assert [backed_off(seconds(seconds=10), failures).total_seconds() for failures in range(4)] == [10, 20, 30, 30]


JOB_LEASE = Lease(TrackedJob, "claimed_until")


def stored(job: TrackedJob) -> TrackedJob:
    return TrackedJob.objects.get(pk=job.pk)


@pytest.mark.django_db
def test_a_row_is_leased_to_one_worker_until_its_lease_runs_out(make_job):
    job = make_job()
    now = timezone.now()
    rows = TrackedJob.objects.filter(pk=job.pk)
    assert JOB_LEASE.take(rows, until=now + seconds(seconds=60), now=now)
    assert not JOB_LEASE.take(rows, until=now + seconds(seconds=60), now=now)
    later = now + seconds(seconds=61)
    assert JOB_LEASE.take(rows, until=later + seconds(seconds=60), now=later)
    assert stored(job).claimed_until == later + seconds(seconds=60)


@pytest.mark.django_db
def test_claims_skip_held_rows_respect_the_limit_the_recheck_and_the_quota(make_job, alice_token):
    jobs = [make_job() for _ in range(4)]
    now = timezone.now()
    everything = TrackedJob.objects.order_by("pk")
    first = JOB_LEASE.claim(everything, seconds=60, now=now, limit=2)
    assert [j.pk for j in first] == [j.pk for j in jobs[:2]]
    assert all(j.claimed_until == now + seconds(seconds=60) for j in first)
    # Held rows are not candidates; `still` is checked in the UPDATE itself.
    assert JOB_LEASE.claim(everything, seconds=60, now=now, still=Q(status="queued")) == []
    # No more of a key's rows than its quota (none of a key it does not name).
    quota = Quota(key=lambda job: job.token_id, left={alice_token.pk: 1})
    assert [j.pk for j in JOB_LEASE.claim(everything, seconds=60, now=now, quota=quota)] == [jobs[2].pk]
    assert quota.left == {alice_token.pk: 0}
    assert JOB_LEASE.claim(everything, seconds=60, now=now, quota=Quota(key=lambda job: job.token_id, left={})) == []


@pytest.mark.django_db
def test_a_lease_is_given_back_only_by_the_worker_holding_it(make_job):
    mine, taken_over = make_job(), make_job()
    now = timezone.now()
    claimed = JOB_LEASE.claim(TrackedJob.objects.order_by("pk"), seconds=60, now=now)
    # The second lease ran out and another worker took it.
    later = now + seconds(seconds=61)
    assert JOB_LEASE.take(TrackedJob.objects.filter(pk=taken_over.pk), until=later + seconds(seconds=60), now=later)

    JOB_LEASE.release(claimed, refresh_error="given back")

    assert (stored(mine).claimed_until, stored(mine).refresh_error) == (None, "given back")
    assert (stored(taken_over).claimed_until, stored(taken_over).refresh_error) == (later + seconds(seconds=60), "")
    assert all(job.claimed_until is None for job in claimed)


@pytest.mark.django_db
def test_a_row_that_held_no_lease_is_written_only_if_it_still_holds_none(make_job):
    free, held = make_job(), make_job()
    now = timezone.now()
    JOB_LEASE.take(TrackedJob.objects.filter(pk=held.pk), until=now + seconds(seconds=60), now=now)

    JOB_LEASE.release([free, held], refresh_error="looked at")  # both copies say "no lease"

    assert stored(free).refresh_error == "looked at"
    assert (stored(held).claimed_until, stored(held).refresh_error) == (now + seconds(seconds=60), "")
