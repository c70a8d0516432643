"""The API token's plaintext must never reach a page, a log line or a file on disk."""

from __future__ import annotations

import base64
import re

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ftdash_server
from tests.support.web_forms import ADMIN_PASSWORD, create_admin, post_form, signed_in_session

SECRET = "sk-live-PLAINTEXT-never-on-disk-7Qz9"


def test_the_token_plaintext_is_in_no_response_log_or_file(tmp_path):
    data_dir = tmp_path / "data"
    # SQLite on every leg: the database is then a file in the data dir that this test can read.
    with FakeTokenFactory() as api, ftdash_server(data_dir, api_url=api.url, DATABASE_URL="") as server:
        api.add_token(SECRET)
        job = api.add_job(steps_per_call=10, total_steps=100)
        api.add_job("ftjob-" + "b" * 32, token="someone-else")
        create_admin(server)
        session = signed_in_session(server, "admin", ADMIN_PASSWORD)

        pages = [post_form(session, server, "/tokens/", {"name": "main", "secret": SECRET})]
        token_pk = re.search(r"/tokens/(\d+)/test/", pages[-1].text).group(1)
        pages.append(post_form(session, server, f"/tokens/{token_pk}/test/", {}))
        pages.append(post_form(session, server, "/jobs/track/", {"job_id": job["id"], "token": token_pk}))
        pages.append(post_form(session, server, "/jobs/track/", {"job_id": "ftjob-" + "b" * 32, "token": token_pk}))
        api.fail_next("401")
        pages.append(post_form(session, server, f"/tokens/{token_pk}/test/", {}))
        pages.append(session.get(server.url + f"/tokens/{token_pk}/edit/"))
        pages.append(session.get(server.url + "/"))
        job_pk = re.search(r'href="/jobs/(\d+)/"', pages[-1].text).group(1)
        pages.append(session.get(server.url + f"/jobs/{job_pk}/"))
        pages.append(session.get(server.url + f"/jobs/{job_pk}/live/", headers={"HX-Request": "true"}))

        assert "…7Qz9" in pages[-3].text  # the dashboard names the token by its last four
        assert any("rejected this API token" in page.text for page in pages)
        for page in pages:
            assert page.status_code < 500
            assert SECRET not in page.text
        # Every call carried the token, so it really was used.
        assert api.calls and all(call.token == SECRET for call in api.calls if call.path.endswith(job["id"]))
        log = server.log

    assert "upstream GET" in log  # logging was on, and still
    assert SECRET not in log
    needles = [SECRET.encode(), base64.b64encode(SECRET.encode()), SECRET.encode("utf-16-le")]
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".sqlite3" for path in files)
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"token plaintext found in {path}"
