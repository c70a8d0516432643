"""The JSON API used the way a training script uses it (issue 21): the job is created on Token
Factory with the OpenAI Python SDK (`base_url` pointing at the fake), registered with
`POST /api/v1/jobs`, then waited for with `If-None-Match` until it succeeds — all over real
HTTP, ftdash served by a live server."""

from __future__ import annotations

import time

import requests
from openai import OpenAI

from tests.support.access_tokens import access_token, bearer
from tests.support.accounts import ALICE_SECRET


def test_a_training_script_creates_registers_and_waits_for_its_job(live_server, settings, fake_api, alice, alice_token):
    settings.FTDASH_REFRESH_SECONDS = 1  # ftdash reads a running job again each second
    fake_api.set_create_options(steps_per_call=25)  # 100 steps: done after a few reads
    secret = access_token(alice)

    # The script's own work: create the fine-tuning job.
    openai = OpenAI(api_key=ALICE_SECRET, base_url=f"{fake_api.url}/v1", max_retries=0)
    created = openai.fine_tuning.jobs.create(model="Qwen/Qwen3-4B", training_file="file-train", suffix="nightly")

    # ... then tell ftdash about it, with no one pasting the ID.
    ftdash = requests.Session()
    ftdash.headers.update(bearer(secret))
    registered = ftdash.post(
        f"{live_server.url}/api/v1/jobs", json={"job_id": created.id, "label": "nightly run"}, timeout=10
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["label"] == "nightly run"
    url = registered.headers["Location"]

    # ... and wait for it cheaply: 304 with no body until something changed.
    statuses, not_modified, tag = [], 0, None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = ftdash.get(url, headers={"If-None-Match": tag} if tag else {}, timeout=10)
        if answer.status_code == 304:
            assert answer.content == b""
            not_modified += 1
        else:
            assert answer.status_code == 200, answer.text
            tag = answer.headers["ETag"]
            statuses.append(answer.json()["status"])
            if statuses[-1] == "succeeded":
                break
        time.sleep(0.2)
    assert statuses[-1] == "succeeded", statuses
    assert not_modified > 0
    done = ftdash.get(url, timeout=10).json()
    assert done["progress"]["percent"] == 100 and done["suffix"] == "nightly"
