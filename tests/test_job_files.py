"""A job's training, validation and result files on its page, against the fake API over HTTP:
name and size where the API answers, the ID otherwise; asked about on refresh, never on a page
render, and not at all by an API without files."""

from __future__ import annotations

from tests.support.accounts import track_remote_job
from tests.support.django_client import job_page


def test_files_that_answer_show_name_and_size_and_the_others_their_id(alice_client, fake_api, alice, alice_token):
    fake_api.add_file("file-train-1", filename="support-<b>chats</b>.jsonl", size=2_500_000)
    job = track_remote_job(fake_api, alice, alice_token, training_file="file-train-1", validation_file="file-missing-2")
    page = job_page(alice_client, job)
    assert "support-&lt;b&gt;chats&lt;/b&gt;.jsonl" in page and "2.4\xa0MB" in page
    assert "file-train-1" in page.replace("<wbr>", "")  # the ID stays, with its copy button
    assert "file-missing-2" in page.replace("<wbr>", "")


def test_page_renders_never_ask_about_files(alice_client, fake_api, alice, alice_token):
    fake_api.add_file("file-train-1", filename="train.jsonl")
    job = track_remote_job(fake_api, alice, alice_token, training_file="file-train-1", validation_file="file-gone")
    fake_api.reset_calls()
    for _ in range(3):
        job_page(alice_client, job)
    assert not [c for c in fake_api.calls if c.path.startswith("/v1/files/")]


def test_an_api_without_files_keeps_showing_ids_and_is_not_asked_every_refresh(
    alice_client, fake_api, alice, alice_token
):
    fake_api.set_files(supported=False)
    job = track_remote_job(fake_api, alice, alice_token, training_file="file-train-1")
    page = job_page(alice_client, job)
    assert "file-train-1" in page.replace("<wbr>", "") and "file-name" not in page
    fake_api.reset_calls()
    alice_client.post(f"/jobs/{job.pk}/refresh/")
    alice_client.post(f"/jobs/{job.pk}/refresh/")
    assert not [c for c in fake_api.calls if c.path.startswith("/v1/files/")]


def test_result_files_get_their_names_when_the_refresh_sees_them(alice_client, fake_api, running_job):
    fake_api.add_file("file-result-9", filename="metrics.csv", size=512)
    fake_api.update_job(running_job.job_id, status="succeeded", result_files=["file-result-9"])
    alice_client.post(f"/jobs/{running_job.pk}/refresh/")
    page = job_page(alice_client, running_job)
    assert "metrics.csv" in page and "512\xa0bytes" in page
