"""Security headers on every page and fragment, and markup that fits the strict CSP (a real
browser under the CSP, and a real server's early answers: tests/processes/test_security_headers.py).

The Content-Security-Policy allows only our own scripts (or ones carrying the response's nonce),
no eval and no inline styles; the pages must be written to match: no `style=` attributes, no
`<style>` elements, no inline event handlers, no inline `<script>` without the nonce.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from jobs import services
from jobs.models import Membership
from tests.support.security_headers import assert_framing_and_policy

LOGIN = "/accounts/login/"
# A malicious or compromised upstream answer: markup in every string the pages show.
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2) style="x">'


# ---------------------------------------------------------------------------- parsing


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            assert words[0] not in directives, f"{words[0]} given twice in {header}"
            directives[words[0]] = words[1:]
    return directives


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict] = []  # attrs of each <script>, plus "text"
        self.style_elements = 0
        self.style_attributes: list[str] = []
        self.handlers: list[str] = []  # on*= and hx-on attributes
        self.script_urls: list[str] = []  # javascript: in href/src/action
        self.htmx_config: str | None = None
        self._in_script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs_dict = dict(attrs)
        for name, value in attrs:
            if name == "style":
                self.style_attributes.append(f"<{tag} style={value!r}>")
            if name.startswith(("on", "hx-on", "data-hx-on")):
                self.handlers.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                ("javascript:", "data:text/html")
            ):
                self.script_urls.append(f"<{tag} {name}={value!r}>")
        if tag == "style":
            self.style_elements += 1
        if tag == "script":
            self._in_script = {**attrs_dict, "text": ""}
            self.scripts.append(self._in_script)
        if tag == "meta" and attrs_dict.get("name") == "htmx-config":
            self.htmx_config = attrs_dict.get("content")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script["text"] += data


def check_response(response, *, full_page: bool) -> str:
    """Assert the headers and markup; return the response's nonce."""
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"

    csp = csp_directives(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    script_src = csp["script-src"]
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "'strict-dynamic'" not in script_src
    nonces = [word for word in script_src if word.startswith("'nonce-")]
    assert len(nonces) == 1 and sorted(script_src) == sorted(["'self'", nonces[0]]), script_src
    nonce = nonces[0][len("'nonce-") : -1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", nonce), nonce  # >= 128 bits, base64url

    markup = Markup()
    markup.feed(response.content.decode())
    assert markup.style_attributes == [], "inline style attributes are blocked by style-src 'self'"
    assert markup.style_elements == 0, "<style> elements are blocked by style-src 'self'"
    assert markup.handlers == [], "inline event handlers are blocked by script-src"
    assert markup.script_urls == []
    for script in markup.scripts:
        src = script.get("src")
        if src:
            # External scripts come from this site (relative, not protocol-relative).
            assert src.startswith("/") and not src.startswith("//"), script
        else:
            assert script.get("nonce") == nonce, f"inline script without the nonce: {script}"
        if script.get("nonce") is not None:
            assert script["nonce"] == nonce

    if full_page:
        assert markup.htmx_config is not None, "the htmx-config meta is missing"
        config = json.loads(markup.htmx_config)
        assert config["allowEval"] is False
        assert config["includeIndicatorStyles"] is False
        htmx = [s for s in markup.scripts if "htmx" in s.get("src", "")]
        assert htmx, "{% htmx_script %} rendered no script"
        assert all(s.get("nonce") == nonce for s in htmx), htmx
    return nonce


# ---------------------------------------------------------------------------- the site's pages


@pytest.fixture
def world(alice, bob, team, alice_token, make_job, fake_api):
    """Everything a page can show, with hostile text from the API where the API is the source."""
    alice.is_superuser = alice.is_staff = True  # for the account-creation page
    alice.save()
    running = make_job(total_steps=100, trained_steps=40, suffix=HOSTILE, model=HOSTILE)
    failed = make_job(
        status="failed",
        finished_at=1753345102,
        error={"code": HOSTILE, "message": HOSTILE, "param": HOSTILE},
        integrations=[
            {"type": "mlflow", "mlflow": {"tracking_uri": "javascript:alert(1)", "experiment_name": HOSTILE}},
            {"type": "wandb", "wandb": {"project": HOSTILE, "entity": HOSTILE, "tags": [HOSTILE]}},
            {"type": HOSTILE, HOSTILE: {HOSTILE: HOSTILE}},
        ],
        method={"type": HOSTILE, HOSTILE: {"hyperparameters": {HOSTILE: HOSTILE}}},
    )
    team_token = services.token_create(workspace=team, user=alice, name="team token", secret="sk-team-0123456789-abcd")
    team_job = make_job(workspace=team, token=team_token)
    _, invite_secret = services.invite_create(team=team, role=Membership.Role.MEMBER, actor=alice)
    bob_membership = Membership.objects.get(workspace=team, user=bob)
    return {
        "running": running,
        "failed": failed,
        "team": team,
        "team_job": team_job,
        "token": alice_token,
        "invite": invite_secret,
        "bob_membership": bob_membership,
    }


def signed_in_pages(world) -> list[str]:
    team, token, running, failed = world["team"], world["token"], world["running"], world["failed"]
    return [
        "/",
        f"/?workspace={team.pk}",
        f"/jobs/{running.pk}/",
        f"/jobs/{failed.pk}/",
        f"/jobs/{world['team_job'].pk}/",
        f"/jobs/{running.pk}/remove/",
        "/tokens/",
        f"/tokens/{token.pk}/edit/",
        f"/tokens/{token.pk}/delete/",
        "/teams/",
        f"/teams/{team.pk}/",
        f"/teams/{team.pk}/delete/",
        f"/teams/{team.pk}/leave/",
        f"/teams/{team.pk}/members/{world['bob_membership'].pk}/remove/",
        f"/workspaces/{team.pk}/audit/",
        f"/workspaces/{world['running'].workspace_id}/audit/",
        "/accounts/password_change/",
        "/accounts/password_change/done/",
        "/accounts/create/",
        f"/invite/{world['invite']}/",
        *optional_pages(),
    ]


def optional_pages() -> list[str]:
    """Pages other parts of ftdash may add; covered as soon as their route exists."""
    from django.urls import NoReverseMatch, reverse

    paths = []
    for name in ("notification_list",):
        try:
            paths.append(reverse(name))
        except NoReverseMatch:
            pass
    return paths


def test_every_signed_in_page_sends_the_headers_and_fits_the_csp(client, alice, world):
    client.force_login(alice)
    nonces = []
    for path in signed_in_pages(world):
        response = client.get(path)
        assert response.status_code == 200, path
        nonces.append(check_response(response, full_page=True))
    assert len(set(nonces)) == len(nonces), "the nonce must differ per response"


def test_hostile_text_from_the_api_is_shown_as_text(client, alice, world):
    client.force_login(alice)
    page = client.get(f"/jobs/{world['failed'].pk}/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page


def test_form_errors_and_a_not_found_page_send_the_headers(client, alice, world):
    client.force_login(alice)
    responses = [
        client.post("/tokens/", {"name": "", "secret": ""}),
        client.post("/jobs/track/", {"job_id": "not-a-job"}),
        client.post("/teams/", {"name": ""}),
        client.post(f"/jobs/{world['running'].pk}/label/", {"label": "x" * 500}),
    ]
    for response in responses:
        assert response.status_code == 422, response.request["PATH_INFO"]
        check_response(response, full_page=True)

    missing = client.get("/jobs/987654/")
    assert missing.status_code == 404
    check_response(missing, full_page=False)


def test_htmx_fragments_send_the_headers_and_fit_the_csp(client, alice, world):
    client.force_login(alice)
    nonces = []
    for job in (world["running"], world["failed"]):
        for path in (f"/live/cards/?v={job.pk}.old", f"/jobs/{job.pk}/live/"):
            response = client.get(path, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver/jobs/{job.pk}/")
            assert response.status_code == 200, path
            assert b"<html" not in response.content  # a fragment, not a page
            nonces.append(check_response(response, full_page=False))
    assert len(set(nonces)) == len(nonces)


def test_the_htmx_sign_in_redirect_sends_the_headers(client, world):
    """The 401 that sends an expired poll to sign-in is built after the CSP middleware ran, so it
    has no CSP header; it has no body either, so there is nothing for a CSP to govern."""
    response = client.get(f"/jobs/{world['running'].pk}/live/", HTTP_HX_REQUEST="true")
    assert response.status_code == 401
    assert response.content == b""
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_signed_out_pages_send_the_headers_and_fit_the_csp(client, world, settings):
    settings.FTDASH_SIGNUP_OPEN = True
    nonces = []
    for path, status in [
        (LOGIN, 200),
        (f"{LOGIN}?next=/tokens/", 200),
        (f"/invite/{world['invite']}/", 200),
        ("/invite/no-such-invite/", 404),
        ("/accounts/signup/", 200),
    ]:
        response = client.get(path)
        assert response.status_code == status, path
        nonces.append(check_response(response, full_page=True))

    wrong = client.post(LOGIN, {"username": "alice", "password": "wrong"})
    assert wrong.status_code == 200
    nonces.append(check_response(wrong, full_page=True))
    assert len(set(nonces)) == len(nonces)


def test_the_lockout_page_sends_the_headers_and_fits_the_csp(client, alice):
    for _ in range(5):
        response = client.post(LOGIN, {"username": "alice", "password": "wrong"})
    response = client.post(LOGIN, {"username": "alice", "password": "alice-password-1"})

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    check_response(response, full_page=True)


def test_the_first_run_page_sends_the_headers_and_fits_the_csp(client, db):
    first = client.get("/")
    assert first.status_code == 302 and first["Location"] == "/setup/"
    check_response(first, full_page=False)

    for response in (client.get("/setup/"), client.get(LOGIN), client.post("/setup/", {"username": "admin"})):
        assert response.status_code == 200
        check_response(response, full_page=True)


def test_the_health_check_and_redirects_send_the_headers(client, db):
    for response in (client.get("/healthz"), client.get("/tokens/")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


# ---------------------------------------------------------------------------- answers made before the view


def test_a_bad_host_header_and_a_missing_page_send_the_headers(client, db):
    # CommonMiddleware refuses the Host before any view runs; the answer must still carry them.
    response = client.get("/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert_framing_and_policy(response)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert_framing_and_policy(response)
