"""ftdash behind the shipped nginx site (deploy/nginx/ftdash.conf), end to end, for real.

A real nginx terminates TLS (a throwaway self-signed certificate) on free loopback ports and
proxies ``/ftdash/`` to gunicorn started the way ``make serve`` starts it: DEBUG off, migrated,
collectstatic'ed, ``gunicorn --config ftdash/gunicorn.conf.py``, FTDASH_BEHIND_PROXY on. The
nginx configuration is the shipped file itself with only ports, the upstream address and the
certificate paths substituted, so what is tested is what people install.

Checked through the proxy: the prefix in every URL and redirect, static files with far-future
caching, secure cookies scoped to ``/ftdash/``, CSRF on forms and on htmx-style requests, and
live polling in headless Chromium that stops once the job has finished. Checked on
the app port directly: forwarded headers are believed from the proxy's address only.

Needs nginx and openssl (and Chromium for the browser test); they are skipped when missing,
unless FTDASH_REQUIRE_BROWSER=1 (CI), where missing tools are an error.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from tests.support.chromium import TIMEOUT_MS, unavailable
from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import BIN, ROOT, free_port
from tests.support.waiting import wait_for

SHIPPED_SITE = ROOT / "deploy" / "nginx" / "ftdash.conf"
PREFIX = "/ftdash"
ONE_YEAR = 365 * 24 * 3600
URL_ATTRIBUTES = ["href", "action", "src", "data-live-url", "hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete"]


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if not found:
        unavailable(f"{name} is not installed (apt-get install -y {'nginx-light' if name == 'nginx' else name})")
    return found


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(could not read {path}: {exc})"


# ---------------------------------------------------------------------------- nginx config


def render_site(
    shipped: str, *, http_port: int, https_port: int, app_port: int, cert: Path, key: Path, access_log: Path
) -> str:
    """The shipped site with only what differs on a test machine replaced.

    Each substitution must hit exactly one line: if the shipped file changes shape, this fails
    instead of quietly testing some other configuration.
    """
    substitutions = [
        (r"^(\s*)server 127\.0\.0\.1:8000;", rf"\g<1>server 127.0.0.1:{app_port};"),
        (r"^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{http_port};"),
        (r"^\s*listen \[::\]:80;\n", ""),
        (r"^(\s*)listen 443 ssl http2;", rf"\g<1>listen 127.0.0.1:{https_port} ssl http2;"),
        (r"^\s*listen \[::\]:443 ssl http2;\n", ""),
        (r"^(\s*)ssl_certificate\s+\S+;", rf"\g<1>ssl_certificate {cert};"),
        (r"^(\s*)ssl_certificate_key\s+\S+;", rf"\g<1>ssl_certificate_key {key};"),
    ]
    text = shipped
    for pattern, replacement in substitutions:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{SHIPPED_SITE}: expected one line matching {pattern!r}, found {count}"
    # Both servers log (with invite secrets redacted) to the same file.
    text, count = re.subn(
        r"^(\s*)access_log /var/log/nginx/ftdash\.access\.log ftdash_redacted;",
        rf"\g<1>access_log {access_log} ftdash_redacted;",
        text,
        flags=re.MULTILINE,
    )
    assert count == 2, f"{SHIPPED_SITE}: expected an access_log line in each of its two servers, found {count}"
    return text


def nginx_main_conf(tmp: Path, site: Path) -> str:
    """A minimal nginx.conf around the site: everything nginx writes stays under `tmp`."""
    # As root, nginx would run its workers as `nobody`, which cannot enter pytest's 0700 tmp dirs.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {tmp / 'access.log'};\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


# ---------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    site: str  # https://127.0.0.1:<port>/ftdash, what people type
    origin: str  # https://127.0.0.1:<port>
    http_origin: str  # http://127.0.0.1:<port>, nginx's plain-http server
    app_port: int  # gunicorn, directly
    cert: Path
    api: FakeTokenFactory
    app_log: Path
    nginx_dir: Path


def _wait_for(check, process: subprocess.Popen, what: str, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{_tail(log)}", pytrace=False)
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not come up within {seconds:.0f} s:\n{_tail(log)}", pytrace=False)
        time.sleep(0.1)


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    nginx = _tool("nginx")
    openssl = _tool("openssl")
    tmp = tmp_path_factory.mktemp("deploy-nginx")
    nginx_dir, data_dir = tmp / "nginx", tmp / "data"
    nginx_dir.mkdir()

    cert, key = nginx_dir / "cert.pem", nginx_dir / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    http_port, https_port, app_port = free_port(), free_port(), free_port()
    origin = f"https://127.0.0.1:{https_port}"
    with FakeTokenFactory() as api:
        # Production mode, as `make serve` under systemd: no FTDASH_DEBUG, keys given.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="ftdash.settings",
            FTDASH_DATA_DIR=str(data_dir),
            FTDASH_SITE_URL=origin + PREFIX,
            FTDASH_BEHIND_PROXY="true",
            FTDASH_SECRET_KEY=secrets.token_urlsafe(50),
            FTDASH_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            FTDASH_API_BASE_URL=api.url,
            FTDASH_API_READ_TIMEOUT="2",
            FTDASH_REFRESH_SECONDS="1",
            FTDASH_QUEUED_REFRESH_SECONDS="1",
            HOST="127.0.0.1",
            PORT=str(app_port),
            FTDASH_WORKERS="2",
            PYTHONUNBUFFERED="1",
            XDG_RUNTIME_DIR=str(tmp),  # gunicorn >= 25.1's control socket: not shared with other servers
        )
        app_log = tmp / "gunicorn.log"
        with app_log.open("w") as log:
            for args in (["migrate", "--noinput"], ["collectstatic", "--noinput", "--verbosity", "0"]):
                done = subprocess.run(
                    [sys.executable, "manage.py", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=120,
                )
                if done.returncode != 0:
                    pytest.fail(f"manage.py {args[0]} failed:\n{_tail(app_log)}", pytrace=False)
            app = subprocess.Popen(
                [str(BIN / "gunicorn"), "--config", "ftdash/gunicorn.conf.py", "ftdash.wsgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for(lambda: _port_open(app_port), app, "gunicorn", app_log)

            site_conf = nginx_dir / "ftdash.conf"
            site_conf.write_text(
                render_site(
                    SHIPPED_SITE.read_text(),
                    http_port=http_port,
                    https_port=https_port,
                    app_port=app_port,
                    cert=cert,
                    key=key,
                    access_log=nginx_dir / "ftdash.access.log",
                )
            )
            main_conf = nginx_dir / "nginx.conf"
            main_conf.write_text(nginx_main_conf(nginx_dir, site_conf))
            error_log = nginx_dir / "error.log"
            proxy = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(nginx_dir),
                    "-c",
                    str(main_conf),
                    "-g",
                    f"daemon off; pid {nginx_dir / 'nginx.pid'}; error_log {error_log};",
                ],
                stdout=subprocess.DEVNULL,
                stderr=error_log.open("a"),
            )
            try:
                _wait_for(lambda: _port_open(https_port) and _port_open(http_port), proxy, "nginx", error_log)
                yield Stack(
                    site=origin + PREFIX,
                    origin=origin,
                    http_origin=f"http://127.0.0.1:{http_port}",
                    app_port=app_port,
                    cert=cert,
                    api=api,
                    app_log=app_log,
                    nginx_dir=nginx_dir,
                )
            finally:
                _stop(proxy, signal.SIGQUIT)  # graceful: lets open connections finish
        finally:
            _stop(app)


@pytest.fixture
def https(stack) -> Iterator[requests.Session]:
    """A client that trusts the throwaway certificate (and nothing else)."""
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE or *_PROXY from the environment must not interfere
        session.verify = str(stack.cert)
        yield session


def _report(stack: Stack) -> str:
    return f"\n--- gunicorn log ---\n{_tail(stack.app_log)}\n--- nginx error log ---\n{_tail(stack.nginx_dir / 'error.log')}"


def _max_age(cache_control: str) -> int:
    match = re.search(r"max-age=(\d+)", cache_control)
    return int(match.group(1)) if match else 0


# ---------------------------------------------------------------------------- through the proxy


def test_the_proxy_serves_ftdash_under_its_prefix(stack, https):
    # Plain http is sent to https, and the bare prefix to the prefix with its slash.
    response = https.get(stack.http_origin + "/ftdash/accounts/login/?next=x", allow_redirects=False, timeout=60)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://127.0.0.1/ftdash/accounts/login/?next=x"
    response = https.get(stack.origin + "/ftdash", allow_redirects=False, timeout=60)
    assert response.status_code == 301
    assert urlsplit(response.headers["Location"]).path == "/ftdash/"

    assert https.get(stack.site + "/healthz", timeout=60).text == "ok\n"

    # Redirects carry the prefix, including the 401 + HX-Redirect sent to a polling htmx request.
    response = https.get(stack.site + "/", allow_redirects=False, timeout=60)
    assert response.status_code == 302, _report(stack)
    assert response.headers["Location"] in ("/ftdash/setup/", "/ftdash/accounts/login/")
    response = https.get(
        stack.site + "/live/cards/?v=1.x", headers={"HX-Request": "true"}, allow_redirects=False, timeout=60
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/ftdash/accounts/login/?next=")

    # The app sees https (secure cookies, HSTS) because nginx says so from a trusted address.
    page = https.get(stack.site + "/accounts/login/", headers={"Accept-Encoding": "gzip"}, timeout=60)
    assert page.status_code == 200, _report(stack)
    assert int(re.search(r"max-age=(\d+)", page.headers["Strict-Transport-Security"]).group(1)) >= ONE_YEAR
    csrf_cookie = next(c for c in https.cookies if c.name == "ftdash_csrftoken")
    assert csrf_cookie.secure and csrf_cookie.path == "/ftdash/"
    # HTML carries CSRF tokens, so the site turns compression off for it (BREACH).
    assert "Content-Encoding" not in page.headers

    # Static files: hashed names under the prefix, served through the proxy, cached for a year.
    css = re.search(r'href="(/ftdash/static/css/ftdash\.[0-9a-f]{12}\.css)"', page.text)
    assert css, f"no hashed stylesheet under /ftdash/static/ in the page: {re.findall(r'<link [^>]+>', page.text)}"
    scripts = re.findall(r'src="([^"]+)"', page.text)
    assert scripts and all(re.match(r"/ftdash/static/.+\.[0-9a-f]{12}\.js$", src) for src in scripts), scripts
    for path in [css.group(1), *scripts]:
        asset = https.get(stack.origin + path, headers={"Accept-Encoding": "gzip"}, timeout=60)
        assert asset.status_code == 200, path
        assert _max_age(asset.headers.get("Cache-Control", "")) >= ONE_YEAR, asset.headers
        assert asset.headers.get("Content-Encoding") == "gzip", path  # pre-compressed by collectstatic
    assert https.get(stack.origin + css.group(1), timeout=60).headers["Content-Type"].startswith("text/css")


# ---------------------------------------------------------------------------- in a browser


def _assert_urls_prefixed(page) -> None:
    found = page.evaluate(
        """(names) => Array.from(document.querySelectorAll(names.map(n => `[${n}]`).join(",")))
             .flatMap(el => names.filter(n => el.hasAttribute(n)).map(n => [el.tagName, n, el.getAttribute(n)]))""",
        URL_ATTRIBUTES,
    )
    assert found
    wrong = [item for item in found if not (item[2].startswith(PREFIX + "/") or item[2].startswith("#"))]
    assert not wrong, f"URLs without the {PREFIX}/ prefix on {page.url}: {wrong}"


@pytest.mark.browser
def test_in_a_browser_through_nginx_first_admin_token_and_live_job(stack, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    secret = "sk-nginx-" + secrets.token_hex(12)
    stack.api.add_token(secret)
    password = "first-admin-" + secrets.token_urlsafe(9)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()

        # First run: the empty site offers to create the administrator (a POST form: CSRF
        # through the proxy, with the Origin checked against FTDASH_SITE_URL).
        page.goto(stack.site + "/")
        expect(page).to_have_url(stack.site + "/setup/")
        expect(page.get_by_role("heading", name="Create the first administrator account")).to_be_visible()
        _assert_urls_prefixed(page)
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_label("Password confirmation").fill(password)
        page.get_by_role("button", name="Create account").click()
        expect(page.locator(".nav-user")).to_have_text("admin")

        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        for name in ("ftdash_session", "ftdash_csrftoken"):
            assert cookies[name]["secure"] is True, cookies[name]
            assert cookies[name]["path"] == "/ftdash/", cookies[name]
        assert cookies["ftdash_session"]["httpOnly"] is True

        # Save a token.
        page.get_by_role("link", name="API tokens").click()
        expect(page).to_have_url(stack.site + "/tokens/")
        page.get_by_label("Token name").fill("research")
        page.get_by_label("API token", exact=True).fill(secret)
        page.get_by_role("button", name="Save token").click()
        expect(page.get_by_role("status")).to_contain_text("Saved token “research”")
        _assert_urls_prefixed(page)

        # Track a job at step 40 of 100; the test moves it on (no race with a wall clock).
        page.get_by_role("link", name="Dashboard", exact=True).click()
        job_id = stack.api.add_job(token=secret, total_steps=100, trained_steps=40, suffix="behind-nginx")["id"]
        polls: list[tuple[float, str, int]] = []
        page.on(
            "response", lambda r: polls.append((time.monotonic(), r.url, r.status)) if "/live/cards/" in r.url else None
        )
        page.get_by_label("Job ID").fill(job_id)
        page.get_by_role("button", name="Track job").click()
        expect(page.get_by_role("status")).to_contain_text(f"Now tracking {job_id}.")
        _assert_urls_prefixed(page)
        card = page.locator("li.job-card").filter(has=page.get_by_role("link", name=job_id, exact=True))
        bar = card.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        start = int(bar.get_attribute("aria-valuenow"))
        assert start == 40

        # The bar advances by itself: no reload (the marker on `window` survives)...
        page.evaluate("window.__marker = 1")
        stack.api.advance(job_id, 30)
        expect(bar).to_have_attribute("aria-valuenow", "70", timeout=30_000)
        stack.api.advance(job_id, 30)  # the job finishes upstream
        expect(bar).to_have_attribute("aria-valuenow", "100", timeout=30_000)
        expect(card.locator(".badge")).to_have_text("succeeded")
        assert page.evaluate("window.__marker") == 1

        # ...and polling stops: the finished card carries no data-live-active, so after the answer
        # that brought it no request for /live/cards/ is made any more.
        expect(card).not_to_have_attribute("data-live-active", re.compile(".*"))
        assert polls and all(url.startswith(stack.site + "/live/cards/?v=") for _, url, _ in polls), polls
        assert all(status in (200, 204) for _, _, status in polls), polls
        count = len(polls)
        page.wait_for_timeout(3000)
        assert len(polls) == count, f"polling went on after the job finished: {polls[count:]}"

        # CSRF for htmx-style requests: the token from <body hx-headers> lets a POST through the
        # proxy, and the same POST without it is refused.
        job_path = card.get_by_role("link", name=job_id, exact=True).get_attribute("href")
        with_token, without_token = page.evaluate(
            """async (url) => {
                const headers = JSON.parse(document.body.getAttribute("hx-headers"));
                const a = await fetch(url, {method: "POST", headers, credentials: "same-origin"});
                const b = await fetch(url, {method: "POST", credentials: "same-origin"});
                return [[a.status, a.url], [b.status, b.url]];
            }""",
            job_path + "refresh/",
        )
        assert with_token == [200, stack.origin + job_path], _report(stack)
        assert without_token[0] == 403
    finally:
        context.close()


# ---------------------------------------------------------------------------- the app port itself


def _direct(stack: Stack, path: str, *, source: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """A request straight to gunicorn (bypassing nginx) from the loopback address `source`."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.app_port, timeout=60, source_address=(source, 0))
    connection.request("GET", path, headers={"Host": "127.0.0.1", **headers})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_forwarded_headers_count_only_from_the_trusted_proxy_address(stack):
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}

    # From 127.0.0.1 (FTDASH_TRUSTED_PROXIES' default, where nginx connects from) the header is
    # believed: the request counts as https, so no redirect and the cookie is marked Secure.
    trusted = _direct(stack, "/accounts/login/", source="127.0.0.1", headers=forged)
    assert trusted.status == 200, _report(stack)
    assert re.search(r"ftdash_csrftoken=.*; Path=/ftdash/; .*Secure", trusted.getheader("Set-Cookie", "")), (
        trusted.getheader("Set-Cookie")
    )

    # The very same request from another address is plain http, whatever it claims: the https
    # redirect (SECURE_SSL_REDIRECT) sends it away instead of serving the page.
    untrusted = _direct(stack, "/accounts/login/", source="127.0.0.2", headers=forged)
    assert untrusted.status == 301, (untrusted.status, untrusted.getheaders())
    assert untrusted.getheader("Location") == "https://127.0.0.1/ftdash/accounts/login/"
    assert untrusted.getheader("Set-Cookie") is None


def test_healthz_answers_plain_http_on_the_app_port(stack):
    # For a load balancer or monitoring that checks gunicorn directly, without TLS: /healthz and
    # /readyz are exempt from the https redirect (SECURE_REDIRECT_EXEMPT), under a URL prefix too.
    for source in ("127.0.0.1", "127.0.0.2"):
        response = _direct(stack, "/healthz", source=source, headers={})
        assert (response.status, response.body) == (200, b"ok\n"), (source, response.status, response.getheaders())
        response = _direct(stack, "/readyz", source=source, headers={})
        assert response.status == 200 and b'"database": "ok"' in response.body, (
            source,
            response.status,
            response.getheaders(),
        )


def test_invite_secrets_stay_out_of_the_proxy_and_app_logs(stack, https):
    secret = "InviteSecret" + secrets.token_urlsafe(16)
    invite = f"{stack.site}/invite/{secret}/"
    assert https.get(invite, timeout=60).status_code == 404  # no such invite: still a secret-shaped path
    assert (
        https.get(stack.http_origin + f"/ftdash/invite/{secret}/", allow_redirects=False, timeout=60).status_code == 301
    )
    https.get(stack.site + "/accounts/login/", headers={"Referer": invite}, timeout=60)
    https.get(stack.site + "/healthz", timeout=60)  # a last line, so the ones before are surely written

    def proxy_log_to_the_last_request() -> str:
        text = (stack.nginx_dir / "ftdash.access.log").read_text()
        return text if '"GET /ftdash/healthz ' in text else ""

    proxy_log = wait_for(proxy_log_to_the_last_request, what="nginx to log the last request")
    assert '"GET /ftdash/invite/[redacted]/ HTTP/1.1" 404' in proxy_log
    assert '"GET /ftdash/invite/[redacted]/ HTTP/1.1" 301' in proxy_log
    assert f'"{stack.site}/invite/[redacted]/"' in proxy_log
    for log in (proxy_log, stack.app_log.read_text()):
        assert secret not in log
