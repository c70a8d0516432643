from __future__ import annotations

import re

from django.utils import timezone

from jobs.models import TrackedJob
from tests.support.payloads import job_payload

HTMX = {"HTTP_HX_REQUEST": "true"}

SUPERVISED = {
    "type": "supervised",
    "supervised": {
        "hyperparameters": {
            "batch_size": 32,
            "learning_rate": 1e-05,
            "n_epochs": 10,
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
            "packing": True,
            "max_grad_norm": 1.0,
            "context_length": 8192,
            "lora": True,
            "lora_r": 16,
            "lora_alpha": 16,
            "lora_dropout": 0.0,
            "new_knob": 7,
        }
    },
}
INTEGRATIONS = [
    {"type": "wandb", "wandb": {"project": "qwen-sft", "entity": "acme", "name": "run-7", "tags": ["sft", "lora"]}},
    {
        "type": "mlflow",
        "mlflow": {"tracking_uri": "https://mlflow.acme.dev", "experiment_name": "exp-1", "run_name": "r-1"},
    },
    {"type": "hf", "hf": {"output_repo_name": "acme/qwen-support"}},
    {"type": "comet", "comet": {"workspace": "acme-ws"}},
]


def test_the_job_page_lays_out_every_detail(alice_client, make_job):
    job = make_job(
        method=SUPERVISED,
        integrations=INTEGRATIONS,
        from_checkpoint={"type": "hf", "repo": "Qwen/Qwen3-4B", "revision": "main"},
        validation_file="file-valid-1",
        organization_id="org-42",
        trained_tokens=1234567,
        future_field="kept-for-later",
    )
    response = alice_client.get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    # Progress
    assert 'role="progressbar"' in page and 'aria-valuenow="25"' in page
    assert "step 25 of 100" in page and "1,234,567" in page
    # Job facts
    for text in ("Qwen/Qwen3-4B", "my-run", "org-42", "file-76807105", "file-valid-1", ">42<"):
        assert text in page
    assert 'href="https://huggingface.co/Qwen/Qwen3-4B/tree/main"' in page
    # Method panel, with what differs from the API's defaults marked
    assert "Supervised fine-tuning" in page
    changed = re.findall(r'<tr class="differs">\s*<th scope="row">([^<]+)</th>', page)
    assert set(changed) == {"Batch size", "Epochs", "LoRA", "LoRA r", "LoRA alpha"}
    assert "New knob" in page
    # Integrations
    assert 'href="https://wandb.ai/acme/qwen-sft"' in page and "run-7" in page and ">lora<" in page
    assert 'href="https://mlflow.acme.dev"' in page and "exp-1" in page and "r-1" in page
    assert 'href="https://huggingface.co/acme/qwen-support"' in page
    assert "comet" in page and "acme-ws" in page
    # Raw JSON keeps fields ftdash does not know yet
    assert "future_field" in page and "kept-for-later" in page
    assert "<title>running · " in page


def test_a_failed_job_shows_its_error(alice_client, make_job):
    job = make_job(
        status="failed",
        error={"code": "invalid_training_file", "message": "Line 3 is not valid JSON", "param": "training_file"},
    )
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="error-heading"' in page
    for text in ("invalid_training_file", "Line 3 is not valid JSON", "training_file"):
        assert text in page
    assert "<title>failed · " in page


def test_spec_draft_settings_are_shown(alice_client, make_job):
    job = make_job(
        method={
            "type": "spec-draft",
            "spec_draft": {
                "hyperparameters": {
                    "architecture": "eagle3_original",
                    "num_decoding_heads": 5,
                    "loss": {"type": "lk_alpha"},
                }
            },
        },
        hyperparameters=None,
    )
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Speculative draft model" in page
    assert "Decoding heads" in page and "lk_alpha" in page and "eagle3_original" in page
    changed = re.findall(r'<tr class="differs">\s*<th scope="row">([^<]+)</th>', page)
    assert set(changed) == {"Decoding heads", "Loss type"}


def test_upstream_text_is_escaped_and_unsafe_links_are_not_rendered(alice_client, make_job):
    script = "<script>alert(1)</script>"
    job = make_job(
        suffix=script,
        model="<img src=x onerror=alert(1)>",
        status="failed",
        error={"code": script, "message": script, "param": None},
        integrations=[
            {
                "type": "mlflow",
                "mlflow": {"tracking_uri": "javascript:alert(1)", "experiment_name": script, "run_name": None},
            },
            {"type": "wandb", "wandb": {"project": 'p"><script>', "entity": "e", "tags": [script]}},
        ],
        from_checkpoint={"type": "ft", "checkpoint_id": script},
    )
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert script not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page
    assert 'href="https://wandb.ai/e/p%22%3E%3Cscript%3E"' in page


def test_progress_is_indeterminate_when_unknown_and_sane_when_odd(alice_client, make_job):
    unknown = make_job(total_steps=None, trained_steps=0)
    zero = make_job(total_steps=0, trained_steps=5)
    over = make_job(total_steps=100, trained_steps=150)
    unknown_page = alice_client.get(f"/jobs/{unknown.pk}/").content.decode()
    assert 'role="progressbar"' in unknown_page and "aria-valuenow" not in unknown_page
    assert "aria-valuenow" not in alice_client.get(f"/jobs/{zero.pk}/").content.decode()
    assert 'aria-valuenow="100"' in alice_client.get(f"/jobs/{over.pk}/").content.decode()


def test_an_unknown_status_and_odd_types_do_not_break_the_pages(alice_client, make_job):
    job = make_job(
        status="paused_for_maintenance",
        trained_steps="many",
        created_at="yesterday",
        method="supervised",
        integrations={"wandb": 1},
        error=["x"],
        result_files="file-1",
    )
    assert alice_client.get(f"/jobs/{job.pk}/").status_code == 200
    assert "paused for maintenance" in alice_client.get("/").content.decode()
    assert alice_client.get(f"/jobs/{job.pk}/live/", **HTMX).status_code == 200


def test_the_live_part_polls_while_running_and_stops_once_done(alice_client, make_job):
    job = make_job(status="running")
    response = alice_client.get(f"/jobs/{job.pk}/live/", **HTMX)
    assert response.status_code == 200
    live = re.search(r'<div id="job-live"[^>]*>', response.content.decode(), re.S).group(0)
    assert f'data-live-url="/jobs/{job.pk}/live/"' in live and "data-live-active" in live
    assert 'data-page-title="running · ' in live
    TrackedJob.objects.filter(pk=job.pk).update(
        status="succeeded", snapshot=job_payload(status="succeeded"), changed_at=timezone.now()
    )
    response = alice_client.get(f"/jobs/{job.pk}/live/", **HTMX)
    live = re.search(r'<div id="job-live"[^>]*>', response.content.decode(), re.S).group(0)
    assert "data-live-active" not in live  # the final render: the page stops asking
    assert 'data-page-title="succeeded · ' in live


def test_a_poll_after_the_session_expired_redirects_the_whole_tab(client, alice, make_job):
    job = make_job()
    response = client.get(
        f"/jobs/{job.pk}/live/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver/jobs/{job.pk}/"
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == f"/accounts/login/?next=/jobs/{job.pk}/"
    assert b"<form" not in response.content


def test_a_poll_never_redirects_off_site_after_expiry(client, alice, make_job):
    job = make_job()
    response = client.get(
        f"/jobs/{job.pk}/live/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="https://evil.example/phish"
    )
    assert response["HX-Redirect"] == "/accounts/login/?next=/"


def test_outsiders_get_404_for_every_job_url(client, charlie, make_job):
    job = make_job()
    client.force_login(charlie)
    for url in ("/", "/live/", "/remove/"):
        assert client.get(f"/jobs/{job.pk}{url}", **HTMX).status_code == 404
    for url in ("/refresh/", "/label/", "/remove/"):
        assert client.post(f"/jobs/{job.pk}{url}", {"label": "x"}).status_code == 404
    assert TrackedJob.objects.filter(pk=job.pk, label="").exists()


def test_a_job_can_be_labelled(alice_client, make_job):
    job = make_job()
    response = alice_client.post(f"/jobs/{job.pk}/label/", {"label": "  baseline v3 "})
    assert response.status_code == 302
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "<h1>baseline v3</h1>" in page
    assert "baseline v3" in alice_client.get("/").content.decode()


def test_removing_a_job_asks_first(alice_client, make_job):
    job = make_job()
    confirm = alice_client.get(f"/jobs/{job.pk}/remove/").content.decode()
    assert "Stop tracking" in confirm and "Remove job" in confirm
    assert TrackedJob.objects.filter(pk=job.pk).exists()
    response = alice_client.post(f"/jobs/{job.pk}/remove/")
    assert response.status_code == 302
    assert not TrackedJob.objects.filter(pk=job.pk).exists()
    assert "Stopped tracking" in alice_client.get("/").content.decode()


def test_a_failed_refresh_keeps_the_snapshot_and_says_why(alice_client, make_job):
    job = make_job(suffix="still-here")
    TrackedJob.objects.filter(pk=job.pk).update(refresh_error="Token Factory is unavailable right now (HTTP 503).")
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "still-here" in page
    assert "Showing the snapshot from" in page and "HTTP 503" in page


def test_refresh_now_fetches_a_finished_job_again(alice_client, fake_api, alice_token, alice):
    from jobs import services

    upstream = fake_api.add_job(status="succeeded", total_steps=10, trained_steps=10)
    job = services.job_track(workspace=alice.personal_workspace, token=alice_token, job_id=upstream["id"], user=alice)
    fake_api.update_job(upstream["id"], suffix="renamed-upstream")
    alice_client.get(f"/jobs/{job.pk}/live/", **HTMX)
    assert len(fake_api.calls_for(upstream["id"])) == 1  # terminal: polls never re-fetch
    response = alice_client.post(f"/jobs/{job.pk}/refresh/", follow=True)
    assert "Refreshed just now." in response.content.decode()
    assert "renamed-upstream" in response.content.decode()
    assert len(fake_api.calls_for(upstream["id"])) == 2


def test_flash_messages_sit_in_a_status_region_around_a_plain_list(alice_client, make_job):
    job = make_job()
    response = alice_client.post(f"/jobs/{job.pk}/label/", {"label": "Support bot"}, follow=True)
    page = response.content.decode()
    region = re.search(
        r'<div class="messages" role="status">\s*<ul>\s*<li class="message message-success">Label saved.</li>', page
    )
    assert region, page
    assert not re.search(r"<ul[^>]*role=", page)


def test_the_raw_json_can_be_scrolled_from_the_keyboard(alice_client, make_job):
    page = alice_client.get(f"/jobs/{make_job().pk}/").content.decode()
    assert '<pre tabindex="0" role="region" aria-label="Raw JSON">' in page


def test_progress_comes_before_the_edit_forms_which_start_collapsed(alice_client, make_job):
    job = make_job()
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    edit = re.search(
        r'<details class="job-edit">\s*<summary>Edit<span class="visually-hidden"> label[^<]*</span></summary>', page
    )
    assert edit, "the label and move forms are not behind a closed Edit disclosure"
    assert page.index('class="label-form"') > edit.start()
    first_panel = re.search(r'<section class="panel[^"]*" aria-labelledby="([^"]+)"', page)
    assert first_panel.group(1) == "progress-heading"

    # A refused label comes back with the disclosure open, so the error is seen.
    response = alice_client.post(f"/jobs/{job.pk}/label/", {"label": "x" * 500})
    assert response.status_code == 422
    assert '<details class="job-edit" open>' in response.content.decode()


def test_ids_break_only_between_their_parts_and_each_has_a_copy_button(alice_client, make_job):
    job = make_job(
        validation_file="file-valid-1",
        result_files=["file-result-1", "file-result-2"],
        integrations=[{"type": "hf", "hf": {"output_repo_name": "acme/qwen-support"}}],
    )
    page = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    prefix, hex_part = job.job_id.split("-", 1)
    assert f'<span id="job-id">{prefix}-<wbr>{hex_part}</span>' in page
    buttons = re.findall(
        r'<button type="button" class="copy-button" id="[^"]+" data-copy-from="([^"]+)" aria-label="([^"]+)">Copy</button>',
        page,
    )
    assert ("job-id", "Copy job ID") in buttons and ("fact-job-id", "Copy job ID") in buttons
    assert ("training-file", "Copy training file ID") in buttons
    assert ("validation-file", "Copy validation file ID") in buttons
    assert ("result-file-1", "Copy result file ID") in buttons and ("result-file-2", "Copy result file ID") in buttons
    assert ("hf-repo-1", "Copy Hugging Face repo") in buttons
    for source, _ in buttons:
        assert page.count(f'id="{source}"') == 1, source
    assert '<code id="hf-repo-1">acme/<wbr>qwen-<wbr>support</code>' in page
    assert re.search(r'<script src="/static/js/copy\.js" defer></script>', page)
