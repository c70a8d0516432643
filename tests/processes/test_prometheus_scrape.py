"""A real Prometheus (Debian's `prometheus`) scrapes ftdash under gunicorn with a workspace's
metrics key as a Bearer token, and answers a PromQL query for a tracked job's progress."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import requests

from tests.support.chromium import unavailable
from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.prometheus import samples, value_of
from tests.support.server_process import free_port, ftdash_server, stop_process

SECRET = "sk-prometheus-scrape-0123456789"
SEED = r"""
import json
from django.contrib.auth import get_user_model
from jobs import services
user = get_user_model().objects.create_user(username="ops", password="ops-password-1")
workspace = user.personal_workspace
token = services.token_create(workspace=workspace, user=user, name="scrape", secret=SECRET)
services.job_track(workspace=workspace, token=token, job_id=JOB_ID, user=user)
key, secret = services.metrics_key_create(workspace=workspace, actor=user)
print(json.dumps({"secret": secret}))
"""


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if not found:
        unavailable("Prometheus is not installed: apt-get install prometheus")
    return found


def test_prometheus_scrapes_a_workspace_with_a_bearer_key_and_answers_promql(tmp_path):
    binary = prometheus_binary()
    with FakeTokenFactory() as api:
        api.add_token(SECRET)
        job = api.add_job(total_steps=200, trained_steps=50, suffix='run "one" {x}')
        with ftdash_server(tmp_path / "data", api_url=api.url, FTDASH_METRICS_TOKEN="ops-token-0123456789") as server:
            seeded = (
                server.manage("shell", "-c", f"SECRET = {SECRET!r}\nJOB_ID = {job['id']!r}\n" + SEED)
                .stdout.strip()
                .splitlines()[-1]
            )
            key = json.loads(seeded)["secret"]
            host = server.url.removeprefix("http://")
            (tmp_path / "prometheus.yml").write_text(
                "\n".join(
                    [
                        "global:",
                        "  scrape_interval: 1s",
                        "scrape_configs:",
                        "  - job_name: ftdash",
                        "    metrics_path: /metrics/",
                        "    authorization:",
                        "      type: Bearer",
                        f"      credentials: {key}",
                        "    static_configs:",
                        f'      - targets: ["{host}"]',
                        "",
                    ]
                )
            )
            port = free_port()
            log = (tmp_path / "prometheus.log").open("w")
            prometheus = subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                query = f'ftdash_job_progress_ratio{{job_id="{job["id"]}"}}'
                answer = _query_until_found(f"http://127.0.0.1:{port}", query, deadline=time.monotonic() + 90)
                assert answer, (tmp_path / "prometheus.log").read_text()[-3000:]
                assert float(answer[0]["value"][1]) == 0.25
                up = _query_until_found(f"http://127.0.0.1:{port}", 'up{job="ftdash"}', deadline=time.monotonic() + 10)
                assert float(up[0]["value"][1]) == 1
                label = _query_until_found(
                    f"http://127.0.0.1:{port}", "ftdash_job_info", deadline=time.monotonic() + 10
                )[0]["metric"]["label"]
                assert label == 'run "one" {x}'
            finally:
                stop_process(prometheus)
                log.close()
            # The operators' metrics under several gunicorn workers (multiprocess mode).
            instance = requests.get(
                server.url + "/metrics/instance", headers={"Authorization": "Bearer ops-token-0123456789"}, timeout=10
            )
            assert instance.status_code == 200
            value_of(samples(instance.text), "ftdash_cache_degraded")
            assert requests.get(f"{server.url}/metrics/{key}", timeout=10).status_code == 200


def _query_until_found(base: str, query: str, *, deadline: float) -> list:
    while time.monotonic() < deadline:
        try:
            answer = requests.get(base + "/api/v1/query", params={"query": query}, timeout=5).json()
        except (requests.RequestException, ValueError):
            answer = {}
        result = answer.get("data", {}).get("result") if answer.get("status") == "success" else None
        if result:
            return result
        time.sleep(0.5)
    return []
