"""Fixtures for the real-browser tests: ftdash under gunicorn, a fake Token Factory, Chromium.

The app runs as a separate gunicorn process (two workers, its own SQLite data dir), exactly as
deployed, so these tests exercise the real stack: WSGI, sessions, CSRF, static files, htmx and
the shared refresh lock. The fake Token Factory runs in this test process on loopback; tests
add jobs to it and the server fetches them over HTTP. Nothing here touches the test database
of pytest-django: no test in this folder uses the ``db`` fixture.

Accounts: the session's first account is created through the first-run page by the
``first_admin`` fixture (which asserts that flow); every test then gets its own fresh account
(all created in one ``manage.py shell`` run right after, to pay Django's start-up once) and
signs in in its own browser context, so tests do not share tokens, jobs or cookies and can run
in any order. ``@pytest.mark.username("ada")`` picks a test's username (for screenshots).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.chromium import TIMEOUT_MS
from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ROOT, free_port, stop_process

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - reported by the chromium fixture
    expect = None

VENV_BIN = ROOT / ".venv" / "bin"
VIEWPORT = {"width": 1280, "height": 800}

if expect is not None:
    expect.set_options(timeout=TIMEOUT_MS)

_SERVER_LOG = pytest.StashKey[Path]()


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass
class AppServer:
    """The running ftdash: its base URL and how to run manage.py against its database."""

    url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [_bin("python"), "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            pytest.fail(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        return result.stdout


def _bin(name: str) -> str:
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    if name == "python":
        return sys.executable
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found in {VENV_BIN} or on PATH", pytrace=False)
    return found


def _tail(path: Path, lines: int = 60) -> str:
    """The log's last lines, leaving out the access-log lines of static files."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    kept = [line for line in text.splitlines() if '"GET /static/' not in line]
    return "\n".join(kept[-lines:])


def pytest_configure(config):
    config.addinivalue_line("markers", "username(name): the username of the test's own account (the `user` fixture)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the server's log to every failing browser test's report."""
    report = yield
    log_path = item.config.stash.get(_SERVER_LOG, None)
    if report.failed and log_path is not None:
        report.sections.append(("ftdash server log (last lines)", _tail(log_path)))
    return report


# ---------------------------------------------------------------------------- processes


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeTokenFactory]:
    """The fake Token Factory the server talks to (shared; each test uses its own token)."""
    with FakeTokenFactory() as fake:
        yield fake


@pytest.fixture(scope="session")
def app_server(chromium_executable, fake_api, tmp_path_factory, pytestconfig) -> Iterator[AppServer]:
    data_dir = tmp_path_factory.mktemp("ftdash-data")
    log_path = tmp_path_factory.mktemp("ftdash-server") / "server.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FTDASH_", "DJANGO_")) and key not in ("REDIS_URL", "DATABASE_URL", "GUNICORN_CMD_ARGS")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="ftdash.settings",
        FTDASH_DATA_DIR=str(data_dir),
        FTDASH_DEBUG="true",
        FTDASH_API_BASE_URL=fake_api.url,
        FTDASH_REFRESH_SECONDS="1",
        FTDASH_QUEUED_REFRESH_SECONDS="1",
        FTDASH_API_READ_TIMEOUT="2",
        # One shared server and fake for every browser test, none of them about the budget.
        FTDASH_TOKEN_REQUESTS_PER_MINUTE="1000000",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        migrate = subprocess.run(
            [_bin("python"), "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
        if migrate.returncode != 0:
            pytest.fail(f"manage.py migrate failed:\n{_tail(log_path)}", pytrace=False)
        process = subprocess.Popen(
            [
                _bin("gunicorn"),
                "ftdash.wsgi:application",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "3",
                "--access-logfile",
                "-",
                *_no_control_socket(),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    pytestconfig.stash[_SERVER_LOG] = log_path
    server = AppServer(url=url, env=env, log_path=log_path, process=process)
    try:
        _wait_until_up(server)
        yield server
    finally:
        stop_process(process)


def _no_control_socket() -> list[str]:
    """gunicorn >= 25 opens a control socket at a fixed path in $HOME by default, which two
    test runs (or a dev server) would fight over; the tests do not need it."""
    try:
        import gunicorn
    except ImportError:
        return []
    return ["--no-control-socket"] if getattr(gunicorn, "version_info", (0,)) >= (25,) else []


def _wait_until_up(server: AppServer) -> None:
    deadline = time.monotonic() + 30
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.process.returncode}:\n{_tail(server.log_path)}", pytrace=False)
        try:
            with urllib.request.urlopen(server.url + "/accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            pytest.fail(f"/accounts/login/ answered {exc.code}:\n{_tail(server.log_path)}", pytrace=False)
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"ftdash did not come up within 30 s:\n{_tail(server.log_path)}", pytrace=False)
        time.sleep(0.1)


# ---------------------------------------------------------------------------- browser


def _new_context(browser, server: AppServer):
    context = browser.new_context(base_url=server.url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser, app_server, first_admin):
    """A fresh browser profile (no cookies) per test."""
    context = _new_context(browser, app_server)
    yield context
    context.close()


@pytest.fixture
def page(context):
    return context.new_page()


# ---------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class FirstRun:
    """What the first visitor of the empty site saw, recorded by the ``first_admin`` fixture."""

    account: Account
    first_page_path: str
    landed_path: str
    signed_in_as: str


@pytest.fixture(scope="session")
def first_admin(browser, app_server) -> FirstRun:
    """Create the site's first account the way a person does: through the first-run page."""
    account = Account("admin", "first-admin-" + secrets.token_urlsafe(9))
    context = _new_context(browser, app_server)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.get_by_role("heading", name="Create the first administrator account")).to_be_visible()
        first_page_path = page.url.removeprefix(app_server.url)
        page.get_by_label("Username").fill(account.username)
        page.get_by_label("Password", exact=True).fill(account.password)
        page.get_by_label("Password confirmation").fill(account.password)
        page.get_by_role("button", name="Create account").click()
        nav_user = page.locator(".nav-user")
        expect(nav_user).to_have_text(account.username)
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return FirstRun(
            account=account,
            first_page_path=first_page_path,
            landed_path=page.url.removeprefix(app_server.url),
            signed_in_as=nav_user.inner_text(),
        )
    finally:
        context.close()


_CREATE_ACCOUNTS = """
import json, os
from django.contrib.auth import get_user_model
User = get_user_model()
for username, password in json.loads(os.environ["BROWSER_TEST_ACCOUNTS"]):
    User.objects.create_superuser(username=username, password=password, email=username + "@example.com")
"""


def _new_account(number: int, item) -> Account:
    marker = item.get_closest_marker("username")
    if marker is not None:
        username = marker.args[0]
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", item.name.lower().removeprefix("test_"))[:40].strip("-")
        username = f"u{number}-{slug}"
    return Account(username, "pw-" + secrets.token_urlsafe(12))


@pytest.fixture(scope="session")
def _account_pool(app_server, first_admin, request) -> dict[str, Account]:
    """One account per test that asks for ``user``, created in a single manage.py run.

    Starting Django and hashing a password take about a second per account; paying the
    start-up once keeps the suite fast. Created after ``first_admin``, so the site is
    still empty when the first-run page is tested.
    """
    items = [item for item in request.session.items if "user" in getattr(item, "fixturenames", ())]
    pool = {item.nodeid: _new_account(number, item) for number, item in enumerate(items, start=1)}
    if pool:
        app_server.manage(
            "shell",
            "--no-imports",
            "-c",
            _CREATE_ACCOUNTS,
            extra_env={"BROWSER_TEST_ACCOUNTS": json.dumps([[a.username, a.password] for a in pool.values()])},
        )
    return pool


_extra_numbers = itertools.count(1)


@pytest.fixture
def user(app_server, _account_pool, request) -> Account:
    """A fresh account of this test's own (its own personal workspace, tokens and jobs)."""
    account = _account_pool.pop(request.node.nodeid, None)
    if account is None:  # not collected up front (e.g. the test asked for it indirectly)
        account = _new_account(1000 + next(_extra_numbers), request.node)
        app_server.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            account.username,
            "--email",
            f"{account.username}@example.com",
            extra_env={"DJANGO_SUPERUSER_PASSWORD": account.password},
        )
    return account


@pytest.fixture
def api_secret(fake_api) -> str:
    """A Token Factory API token the fake accepts, unique to this test."""
    secret = "sk-browser-" + secrets.token_hex(12)
    fake_api.add_token(secret)
    return secret


@pytest.fixture
def dashboard(page, user, api_secret):
    """A page signed in as this test's user, with its API token saved, showing the dashboard."""
    from tests.support.browser_pages import save_token, sign_in

    sign_in(page, user)
    save_token(page, "research", api_secret)
    page.goto("/")
    expect(page.get_by_role("heading", name="Fine-tuning jobs")).to_be_visible()
    return page
