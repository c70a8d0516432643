"""A person's steps on a real ftdash server, through its forms over HTTP (requests, not a browser).

For tests that run ftdash as a process (tests/support/server_process.py): the first account,
signing in, saving a token, tracking a job and adding a notification channel, each through
the page a person would use, with its CSRF token.
"""

from __future__ import annotations

import re

import requests

from tests.support.server_process import ServerProcess

ADMIN_PASSWORD = "a-long-passphrase-1"


def create_admin(server: ServerProcess, username: str = "admin") -> None:
    """An administrator made the documented way: `manage.py createsuperuser --noinput`."""
    server.env["DJANGO_SUPERUSER_PASSWORD"] = ADMIN_PASSWORD
    server.manage("createsuperuser", "--noinput", "--username", username, "--email", f"{username}@example.com")


def first_run(session: requests.Session, server: ServerProcess, username: str, password: str) -> None:
    """Create the site's first account on the first-run page, signing `session` in as it."""
    session.get(server.url + "/setup/")
    response = post_form(
        session, server, "/setup/", {"username": username, "password1": password, "password2": password}
    )
    assert response.status_code == 200 and "/tokens/" in response.url


def signed_in_session(server: ServerProcess, username: str, password: str) -> requests.Session:
    """A requests session signed in through the real sign-in form (with its CSRF token)."""
    session = requests.Session()
    session.get(server.url + "/accounts/login/")
    response = session.post(
        server.url + "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["ftdash_csrftoken"]},
        headers={"Referer": server.url + "/accounts/login/"},
    )
    response.raise_for_status()
    return session


def post_form(session: requests.Session, server: ServerProcess, path: str, data: dict) -> requests.Response:
    return session.post(
        server.url + path,
        data={**data, "csrfmiddlewaretoken": session.cookies["ftdash_csrftoken"]},
        headers={"Referer": server.url + path},
    )


def save_token(session: requests.Session, server: ServerProcess, secret: str, name: str = "main") -> str:
    """Save an API token through the tokens page; returns its id."""
    page = post_form(session, server, "/tokens/", {"name": name, "secret": secret}).text
    return re.search(r"/tokens/(\d+)/test/", page).group(1)


def track_job(session: requests.Session, server: ServerProcess, job_id: str, token_pk: str | int) -> int:
    """Track a job through the dashboard's form; returns its pk, read from the card it shows."""
    response = post_form(session, server, "/jobs/track/", {"job_id": job_id, "token": token_pk})
    assert response.status_code == 200 and f"Now tracking {job_id}" in response.text
    return int(re.search(rf'<a class="job-id" href="/jobs/(\d+)/">{job_id}</a>', response.text).group(1))


def add_channel(session: requests.Session, server: ServerProcess, data: dict) -> None:
    """Add a notification channel to the signed-in person's own workspace on the Notifications page."""
    page = session.get(server.url + "/notifications/").text
    workspace_pk = re.search(r"/notifications/workspaces/(\d+)/channels/", page).group(1)
    response = post_form(session, server, f"/notifications/workspaces/{workspace_pk}/channels/", data)
    assert response.status_code == 200 and "Added" in response.text, response.text[-2000:]
