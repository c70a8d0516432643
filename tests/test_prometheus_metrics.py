"""Prometheus metrics (issue 21, section 4): owners make read-only metrics keys on the team page
and the personal settings; `/metrics/<key>` and `/metrics/` with a Bearer key answer the
workspace's jobs in the exposition format; `/metrics/instance` is the operators', behind
FTDASH_METRICS_TOKEN."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ftdash.log_redaction import redact
from jobs import services
from jobs.models import AuditEvent, Delivery, JobAlert, MetricsKey, NotificationChannel, TrackedJob
from jobs.selectors import prometheus
from tests.support.accounts import track_remote_job
from tests.support.django_client import signed_in
from tests.support.prometheus import create_metrics_key, samples, value_of
from tests.support.tracked_jobs import age, poll


def scrape(key: str) -> dict:
    response = Client().get(f"/metrics/{key}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.content.decode())


# ---------------------------------------------------------------------------- keys and access


def test_an_owner_creates_a_key_shown_once_with_a_scrape_config_and_it_is_listed_and_audited(alice, alice_workspace):
    client = signed_in(alice)
    page = client.post(f"/workspaces/{alice_workspace.pk}/metrics-keys/").content.decode()
    secret = create_metrics_key(client, alice_workspace.pk)

    assert "Copy it now" in page and "scrape_configs:" in page and "type: Bearer" in page
    assert "metrics_path: /metrics/" in page
    key = MetricsKey.objects.get(last4=secret[-4:])
    assert len(secret) >= 43 and secret not in key.key_hash  # 256 random bits; only a hash kept
    settings_page = client.get("/settings/").content.decode()
    assert "Prometheus metrics" in settings_page and f"…{secret[-4:]}" in settings_page
    assert secret not in settings_page
    assert AuditEvent.objects.filter(workspace=alice_workspace, action="metrics_key.create").count() == 2


def test_a_key_works_in_the_path_and_as_a_bearer_token_until_it_is_revoked(alice, alice_workspace):
    client = signed_in(alice)
    secret = create_metrics_key(client, alice_workspace.pk)

    assert Client().get(f"/metrics/{secret}").status_code == 200
    assert Client().get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    missing = Client().get("/metrics/")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics/", HTTP_AUTHORIZATION="Bearer not-a-key").status_code == 401
    assert Client().get("/metrics/not-a-key").status_code == 404

    key = MetricsKey.objects.get(workspace=alice_workspace)
    response = client.post(f"/workspaces/{alice_workspace.pk}/metrics-keys/{key.pk}/revoke/")
    assert response.status_code == 302

    assert Client().get(f"/metrics/{secret}").status_code == 404
    assert Client().get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert f'id="metrics-key-{key.pk}"' not in client.get("/settings/").content.decode()
    assert AuditEvent.objects.filter(workspace=alice_workspace, action="metrics_key.revoke").exists()


def test_only_owners_make_or_revoke_keys_and_outsiders_learn_nothing(alice, bob, charlie, team):
    assert signed_in(bob).post(f"/workspaces/{team.pk}/metrics-keys/").status_code == 403
    assert signed_in(charlie).post(f"/workspaces/{team.pk}/metrics-keys/").status_code == 404
    secret = create_metrics_key(signed_in(alice), team.pk)
    key = MetricsKey.objects.get(workspace=team)
    team_page = signed_in(alice).get(f"/teams/{team.pk}/").content.decode()
    assert "Prometheus metrics" in team_page and key.masked in team_page
    assert "Prometheus metrics" not in signed_in(bob).get(f"/teams/{team.pk}/").content.decode()

    revoke = f"/workspaces/{team.pk}/metrics-keys/{key.pk}/revoke/"
    assert signed_in(bob).post(revoke).status_code == 403
    assert signed_in(charlie).post(revoke).status_code == 404
    # Another workspace's key is not found through this one.
    assert (
        signed_in(alice).post(f"/workspaces/{alice.personal_workspace.pk}/metrics-keys/{key.pk}/revoke/").status_code
        == 404
    )
    assert Client().get(f"/metrics/{secret}").status_code == 200


def test_a_key_sees_its_own_workspace_only(alice, team, make_job):
    mine = make_job()
    theirs = make_job(workspace=team)
    found = scrape(create_metrics_key(signed_in(alice), alice.personal_workspace.pk))

    job_ids = {labels["job_id"] for labels, _ in found["ftdash_job_info"]}
    assert job_ids == {mine.job_id}
    assert theirs.job_id not in str(found)
    assert {labels["workspace"] for labels, _ in found["ftdash_job_info"]} == {alice.personal_workspace.name}


# ---------------------------------------------------------------------------- the metrics


def test_every_metric_of_a_running_job_with_checkpoints_alerts_and_cost(fake_api, alice, alice_token):
    workspace = alice.personal_workspace
    services.training_price_set(workspace, "Qwen/*", Decimal("2"), alice)
    finish = int(timezone.now().timestamp()) + 3600
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=5, estimated_finish=finish)
    age(job, seconds=60)
    poll(job)
    fake_api.advance(job.job_id, 5)  # an epoch ends (10 epochs of 10 steps): its checkpoint is read
    fake_api.add_checkpoint(job.job_id, metrics={"train_loss": 0.75, "valid_loss": 0.875, "full_valid_loss": 0.9})
    age(job, seconds=60)
    poll(job)
    TrackedJob.objects.filter(pk=job.pk).update(label="Qwen run 7")
    JobAlert.objects.create(job=job, rule=JobAlert.Rule.SLOW, message="slow")
    JobAlert.objects.create(job=job, rule=JobAlert.Rule.DIVERGED, message="over", cleared_at=timezone.now())

    found = scrape(create_metrics_key(signed_in(alice), workspace.pk))
    me = {"job_id": job.job_id, "workspace": workspace.name}

    assert value_of(found, "ftdash_job_info", **me, label="Qwen run 7", model="Qwen/Qwen3-4B", status="running") == 1
    assert value_of(found, "ftdash_job_progress_ratio", **me) == pytest.approx(0.1)
    assert value_of(found, "ftdash_job_trained_steps", **me) == 10
    assert value_of(found, "ftdash_job_total_steps", **me) == 100
    assert value_of(found, "ftdash_job_trained_tokens", **me) == 10 * 4096
    assert 3500 < value_of(found, "ftdash_job_eta_seconds", **me) <= 3600
    assert value_of(found, "ftdash_job_loss", **me, split="train") == 0.75
    assert value_of(found, "ftdash_job_loss", **me, split="valid") == 0.875
    assert value_of(found, "ftdash_job_loss", **me, split="full_valid") == 0.9
    assert value_of(found, "ftdash_job_cost_dollars", **me) == pytest.approx(10 * 4096 * 2 / 1e6)
    assert value_of(found, "ftdash_job_alert", **me, rule="slow") == 1
    assert [labels["rule"] for labels, _ in found["ftdash_job_alert"]] == ["slow"]  # a cleared one is gone
    assert value_of(found, "ftdash_jobs", workspace=workspace.name, status="running") == 1
    assert 0 <= value_of(found, "ftdash_snapshot_age_seconds", **me) < 60


def test_finished_jobs_are_complete_and_counted_by_status(alice, make_job):
    make_job(status="succeeded", trained_steps=100, total_steps=100)
    make_job(status="failed", trained_steps=40, total_steps=100)
    make_job(status="failed", trained_steps=None, total_steps=None, estimated_finish=1753341502)
    found = scrape(create_metrics_key(signed_in(alice), alice.personal_workspace.pk))

    workspace = alice.personal_workspace.name
    assert value_of(found, "ftdash_jobs", workspace=workspace, status="succeeded") == 1
    assert value_of(found, "ftdash_jobs", workspace=workspace, status="failed") == 2
    assert sorted(value for _, value in found["ftdash_job_progress_ratio"]) == [0.4, 1.0]
    assert "ftdash_job_eta_seconds" not in found  # no ETA for an ended job
    assert "ftdash_snapshot_age_seconds" not in found  # nor an age: it is not read again


def test_label_values_with_quotes_newlines_and_braces_do_not_break_the_exposition(alice, make_job):
    hostile = 'say "hi"\\n}\n{x="1"} # not a comment'
    job = make_job(model='m"odel}\n{')
    TrackedJob.objects.filter(pk=job.pk).update(label=hostile[:100])
    response = Client().get(f"/metrics/{create_metrics_key(signed_in(alice), alice.personal_workspace.pk)}")
    text = response.content.decode()

    found = samples(text)  # Prometheus's own parser reads it back
    assert value_of(found, "ftdash_job_info", job_id=job.job_id, label=hostile[:100], model='m"odel}\n{') == 1
    info_lines = [line for line in text.splitlines() if line.startswith("ftdash_job_info{")]
    assert len(info_lines) == 1 and '\\"hi\\"' in info_lines[0] and "\\n" in info_lines[0]


def test_a_scrape_runs_the_same_few_queries_for_3_jobs_as_for_30(alice, team, make_job, fake_api):
    small = create_metrics_key(signed_in(alice), alice.personal_workspace.pk)
    big = create_metrics_key(signed_in(alice), team.pk)
    for _ in range(3):
        make_job()
    for number in range(30):
        job = make_job(workspace=team)
        JobAlert.objects.create(job=job, rule=JobAlert.Rule.SLOW, message="slow")
        job.checkpoints.create(upstream_id=f"c{number}", step=10, metrics={"train_loss": 1.0})
        job.checkpoints.create(upstream_id=f"d{number}", step=20, metrics={"train_loss": 0.5})

    counts = []
    for key in (small, big):
        Client().get(f"/metrics/{key}")  # warm
        with CaptureQueriesContext(connection) as queries:
            response = Client().get(f"/metrics/{key}")
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 8, counts
    found = samples(Client().get(f"/metrics/{big}").content.decode())
    assert {value for _, value in found["ftdash_job_loss"]} == {0.5}  # the latest checkpoint's


def test_each_scrape_shows_what_the_latest_refresh_read(fake_api, alice, alice_token):
    # A process keeps the snapshots it parsed for the next scrape: a refresh must show through it.
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=5)
    key = create_metrics_key(signed_in(alice), alice.personal_workspace.pk)
    assert value_of(scrape(key), "ftdash_job_trained_steps", job_id=job.job_id) == 5

    fake_api.advance(job.job_id, 20)
    age(job, seconds=60)
    poll(job)
    with CaptureQueriesContext(connection) as queries:
        found = scrape(key)
    assert value_of(found, "ftdash_job_trained_steps", job_id=job.job_id) == 25
    assert value_of(found, "ftdash_job_progress_ratio", job_id=job.job_id) == pytest.approx(0.25)
    with CaptureQueriesContext(connection) as unchanged:
        scrape(key)
    assert len(queries) == len(unchanged) + 1  # the changed snapshot, read in one more query


def test_a_scrape_is_whole_when_the_kept_snapshots_are_full(monkeypatch, fake_api, alice, alice_token, make_job):
    # Past its bound a process forgets every snapshot it kept, this workspace's unchanged ones too.
    monkeypatch.setattr(prometheus, "MAX_PARSED_SNAPSHOTS", 6)
    quiet = [make_job(trained_steps=7, total_steps=100) for _ in range(5)]
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=5)
    key = create_metrics_key(signed_in(alice), alice.personal_workspace.pk)
    scrape(key)

    fake_api.advance(job.job_id, 20)
    age(job, seconds=60)
    poll(job)
    found = scrape(key)
    assert value_of(found, "ftdash_job_trained_steps", job_id=job.job_id) == 25
    assert [value_of(found, "ftdash_job_trained_steps", job_id=other.job_id) for other in quiet] == [7] * 5


def test_a_big_scrape_is_compressed_for_prometheus(alice, make_job):
    for _ in range(40):
        make_job()
    key = create_metrics_key(signed_in(alice), alice.personal_workspace.pk)
    plain = Client().get(f"/metrics/{key}")
    compressed = Client().get(f"/metrics/{key}", HTTP_ACCEPT_ENCODING="gzip")

    assert compressed["Content-Encoding"] == "gzip"
    assert len(compressed.content) * 3 < len(plain.content)
    assert "no-cache" in plain["Cache-Control"] or "no-store" in plain["Cache-Control"]


def test_metrics_keys_in_request_paths_never_reach_the_logs():
    secret = "Zk3_abcdefghijklmnopqrstuvwxyz0123456789ABCD"
    assert redact(f'"GET /metrics/{secret} HTTP/1.1" 200') == '"GET /metrics/[redacted] HTTP/1.1" 200'
    assert redact("GET /metrics/instance HTTP/1.1") == "GET /metrics/instance HTTP/1.1"


# ---------------------------------------------------------------------------- the instance


def test_instance_metrics_are_off_without_ftdash_metrics_token(settings, db):
    settings.FTDASH_METRICS_TOKEN = None
    assert Client().get("/metrics/instance", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_instance_metrics_count_upstream_calls_and_read_the_state(settings, fake_api, alice, alice_token):
    settings.FTDASH_METRICS_TOKEN = "operator-token-0123456789"
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    TrackedJob.objects.filter(pk=job.pk).update(fetched_at=timezone.now() - dt.timedelta(minutes=10))
    channel = NotificationChannel.objects.create(
        workspace=alice.personal_workspace, kind="webhook", target="https://example.invalid/hook", events=["failed"]
    )
    Delivery.objects.create(channel=channel, payload={}, state=Delivery.State.PENDING)
    Delivery.objects.create(channel=channel, payload={}, state=Delivery.State.FAILED)
    Delivery.objects.create(channel=channel, payload={}, state=Delivery.State.FAILED)

    assert Client().get("/metrics/instance").status_code == 401
    assert Client().get("/metrics/instance", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = Client().get("/metrics/instance", HTTP_AUTHORIZATION="Bearer operator-token-0123456789")
    assert response.status_code == 200
    found = samples(response.content.decode())

    calls = value_of(found, "ftdash_upstream_calls_total", endpoint="GET /v1/fine_tuning/jobs/{id}", status="200")
    assert calls >= 1
    assert (
        value_of(found, "ftdash_upstream_call_duration_seconds_count", endpoint="GET /v1/fine_tuning/jobs/{id}")
        >= calls
    )
    assert not any(job.job_id in str(labels) for labels, _ in found["ftdash_upstream_calls_total"])
    assert 590 < value_of(found, "ftdash_oldest_snapshot_age_seconds") < 700
    assert value_of(found, "ftdash_deliveries", state="pending") == 1
    assert value_of(found, "ftdash_deliveries", state="failed") == 2
    assert value_of(found, "ftdash_cache_degraded") == 0
    assert "ftdash_refresh_errors_total" in found and "ftdash_worker_round_duration_seconds_count" in found


def test_a_failed_refresh_is_counted(settings, fake_api, alice, alice_token):
    settings.FTDASH_METRICS_TOKEN = "operator-token-0123456789"
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)

    def errors() -> float:
        answer = Client().get("/metrics/instance", HTTP_AUTHORIZATION="Bearer operator-token-0123456789")
        return value_of(samples(answer.content.decode()), "ftdash_refresh_errors_total")

    before = errors()
    fake_api.set_down(True)
    age(job, seconds=600)
    poll(job)
    assert errors() == before + 1
    assert (
        value_of(
            samples(
                Client()
                .get("/metrics/instance", HTTP_AUTHORIZATION="Bearer operator-token-0123456789")
                .content.decode()
            ),
            "ftdash_jobs_with_refresh_error",
        )
        == 1
    )
