"""Production settings, as a systemd unit or `make serve` gets them: from the environment only.

Every check runs manage.py in a subprocess with a hand-made environment (nothing from the test
run leaks in), because settings are read once per process: that is the only honest way to see
what a given /etc/ftdash/ftdash.env does, including which mistakes stop start-up and with what
message. The last test serves pages under a URL prefix and follows every URL they contain.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.support.fake_tokenfactory import FakeTokenFactory
from tests.support.server_process import ROOT, ftdash_server
from tests.support.web_forms import ADMIN_PASSWORD, create_admin

SECRET_KEY = secrets.token_urlsafe(50)
FERNET_KEY = Fernet.generate_key().decode()
PRODUCTION = {
    "FTDASH_SITE_URL": "https://ml.example.com/ftdash",
    "FTDASH_BEHIND_PROXY": "true",
    "FTDASH_SECRET_KEY": SECRET_KEY,
    "FTDASH_ENCRYPTION_KEYS": FERNET_KEY,
}
SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({name: getattr(s, name) for name in %r}, default=str))"
)


def environment(data_dir: Path, **variables: str | None) -> dict[str, str]:
    """Only what a service would have: a few OS basics, the settings module and `variables`
    (PRODUCTION by default; None removes one)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(DJANGO_SETTINGS_MODULE="ftdash.settings", FTDASH_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    for name, value in {**PRODUCTION, **variables}.items():
        if value is not None:
            env[name] = value
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def settings_in(env: dict[str, str], *names: str) -> dict:
    done = manage(env, "shell", "-v", "0", "-c", SHOW_SETTINGS % (names,))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- checks


def test_check_deploy_is_clean_in_production(tmp_path):
    done = manage(environment(tmp_path / "data"), "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param(
            {"FTDASH_SITE_URL": "ml.example.com/ftdash"},
            "FTDASH_SITE_URL='ml.example.com/ftdash' must be a full URL with scheme and host",
            id="site-url-without-scheme",
        ),
        pytest.param(
            {"FTDASH_SECRET_KEY": None},
            "FTDASH_SECRET_KEY is not set. Set FTDASH_SECRET_KEY (or FTDASH_SECRET_KEY_FILE)",
            id="no-secret-key",
        ),
        pytest.param(
            {"FTDASH_ENCRYPTION_KEYS": None},
            "FTDASH_ENCRYPTION_KEYS is not set. Set FTDASH_ENCRYPTION_KEYS (or FTDASH_ENCRYPTION_KEYS_FILE)",
            id="no-encryption-keys",
        ),
        pytest.param(
            {"FTDASH_BEHIND_PROXY": "maybe"},
            "FTDASH_BEHIND_PROXY='maybe' is not a boolean: set it to true or false",
            id="bad-boolean",
        ),
        pytest.param(
            {"FTDASH_ENCRYPTION_KEYS": "not-a-fernet-key"},
            "FTDASH_ENCRYPTION_KEYS holds a value that is not a Fernet key",
            id="not-base64",
        ),
        pytest.param(
            {"FTDASH_ENCRYPTION_KEYS": f"{FERNET_KEY},{base64.urlsafe_b64encode(b'16 bytes, short!').decode()}"},
            "FTDASH_ENCRYPTION_KEYS holds a value that is not a Fernet key",
            id="second-key-too-short",
        ),
        pytest.param(
            {"FTDASH_SECRET_KEY_FILE": "/run/credentials/ftdash/secret_key"},
            "Set either FTDASH_SECRET_KEY or FTDASH_SECRET_KEY_FILE, not both.",
            id="key-and-key-file",
        ),
        pytest.param(
            {"FTDASH_SECRET_KEY": None, "FTDASH_SECRET_KEY_FILE": "/nonexistent/secret_key"},
            "FTDASH_SECRET_KEY_FILE='/nonexistent/secret_key' cannot be read",
            id="unreadable-key-file",
        ),
        pytest.param(
            {"FTDASH_TRAINING_PRICES": "meta-llama/*=0.4,Qwen/*=cheap"},
            "FTDASH_TRAINING_PRICES: entry 2 ('Qwen/*=cheap'): “cheap” is not a number",
            id="training-price-not-a-number",
        ),
        pytest.param(
            {"FTDASH_TRAINING_PRICES": "Qwen/*:0.8"},
            "FTDASH_TRAINING_PRICES: entry 1 ('Qwen/*:0.8') is not pattern=price",
            id="training-price-not-a-pair",
        ),
        pytest.param(
            {"FTDASH_TRAINING_PRICES": "Qwen/*=-0.8"},
            "FTDASH_TRAINING_PRICES: entry 1 ('Qwen/*=-0.8'): A price cannot be negative.",
            id="training-price-negative",
        ),
        pytest.param(
            {"FTDASH_TRAINING_PRICES_FILE": "/nonexistent/prices.txt"},
            "FTDASH_TRAINING_PRICES_FILE='/nonexistent/prices.txt' cannot be read",
            id="unreadable-training-prices-file",
        ),
    ],
)
def test_a_misconfiguration_stops_start_up_naming_what_to_set(tmp_path, variables, message):
    data_dir = tmp_path / "data"  # empty: no generated keys to fall back on
    done = manage(environment(data_dir, **variables), "check")
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert message in done.stderr, done.stderr[-2000:]
    # Nothing was generated on the way: production never mints keys.
    assert not (data_dir / "secret_key").exists() and not (data_dir / "encryption_key").exists()


def test_keys_can_come_from_files(tmp_path):
    (tmp_path / "secret_key").write_text(SECRET_KEY + "\n")
    (tmp_path / "encryption_keys").write_text(f"{FERNET_KEY}\n{Fernet.generate_key().decode()}\n")
    env = environment(
        tmp_path / "data",
        FTDASH_SECRET_KEY=None,
        FTDASH_SECRET_KEY_FILE=str(tmp_path / "secret_key"),
        FTDASH_ENCRYPTION_KEYS=None,
        FTDASH_ENCRYPTION_KEYS_FILE=str(tmp_path / "encryption_keys"),
    )
    values = settings_in(env, "SECRET_KEY", "FTDASH_ENCRYPTION_KEYS")
    assert values["SECRET_KEY"] == SECRET_KEY
    assert values["FTDASH_ENCRYPTION_KEYS"][0] == FERNET_KEY and len(values["FTDASH_ENCRYPTION_KEYS"]) == 2


def test_a_malformed_training_prices_file_stops_start_up_naming_its_line(tmp_path):
    prices = tmp_path / "prices.txt"
    prices.write_text("# defaults\nmeta-llama/* = 0.4\nQwen/* = 5000\n")
    done = manage(environment(tmp_path / "data", FTDASH_TRAINING_PRICES_FILE=str(prices)), "check")
    assert done.returncode != 0 and "ImproperlyConfigured" in done.stderr
    assert f"FTDASH_TRAINING_PRICES_FILE='{prices}', line 3 ('Qwen/* = 5000')" in done.stderr, done.stderr[-2000:]
    assert "over the 1000 limit" in done.stderr


def test_training_prices_come_from_the_variable_and_the_file(tmp_path):
    prices = tmp_path / "prices.txt"
    prices.write_text("# defaults\nmistralai/* = 1.2\n")
    env = environment(
        tmp_path / "data",
        FTDASH_TRAINING_PRICES="meta-llama/Llama-3.1-8B-Instruct=0.4,Qwen/*=0.8",
        FTDASH_TRAINING_PRICES_FILE=str(prices),
    )
    values = settings_in(env, "FTDASH_TRAINING_PRICES")["FTDASH_TRAINING_PRICES"]
    assert [re.search(r"pattern='([^']+)'", value).group(1) for value in values] == [
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/*",
        "mistralai/*",
    ]
    assert "Decimal('1.2')" in values[2]


# What a gunicorn worker does before its first page: the URLconf, then /readyz, which asks the cache.
LOADED_DRIVERS = (
    "import sys; from django.urls import get_resolver; from django.test import Client; "
    "get_resolver().url_patterns; status = Client().get('/readyz', secure=True, "
    "headers={'host': 'ml.example.com'}).status_code; "
    "print(status, [name for name in ('psycopg', 'redis') if name in sys.modules])"
)


def test_a_process_on_sqlite_without_redis_loads_neither_driver(tmp_path):
    # Each is about 10 MB resident in every gunicorn worker and the worker (BENCHMARKS.md's P9).
    data = tmp_path / "data"
    assert manage(environment(data), "migrate", "--noinput").returncode == 0
    done = manage(environment(data), "shell", "-c", LOADED_DRIVERS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["200", "[]"], done.stdout


def test_a_process_with_redis_loads_its_driver(tmp_path):
    data = tmp_path / "data"
    env = environment(data, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens: /readyz says degraded
    assert manage(env, "migrate", "--noinput").returncode == 0
    done = manage(env, "shell", "-c", LOADED_DRIVERS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["200", "['redis']"], done.stdout


def test_a_first_debug_run_generates_private_keys_and_later_runs_reuse_them(tmp_path):
    data_dir = tmp_path / "data"
    trying = environment(data_dir, FTDASH_SECRET_KEY=None, FTDASH_ENCRYPTION_KEYS=None, FTDASH_DEBUG="true")
    first = settings_in(trying, "SECRET_KEY", "FTDASH_ENCRYPTION_KEYS", "DEBUG")
    assert first["DEBUG"] is True
    assert len(first["SECRET_KEY"]) >= 50
    Fernet(first["FTDASH_ENCRYPTION_KEYS"][0])  # a usable key
    assert oct(data_dir.stat().st_mode & 0o777) == "0o700"
    for name in ("secret_key", "encryption_key"):
        assert oct((data_dir / name).stat().st_mode & 0o777) == "0o600", name
    assert (data_dir / "secret_key").read_text().strip() == first["SECRET_KEY"]
    assert (data_dir / "encryption_key").read_text().strip() == first["FTDASH_ENCRYPTION_KEYS"][0]

    assert settings_in(trying, "SECRET_KEY", "FTDASH_ENCRYPTION_KEYS", "DEBUG") == first
    # Turning debug off afterwards keeps using them (they are in the data dir now).
    later = settings_in(
        {k: v for k, v in trying.items() if k != "FTDASH_DEBUG"}, "SECRET_KEY", "FTDASH_ENCRYPTION_KEYS", "DEBUG"
    )
    assert later == {**first, "DEBUG": False}


# ---------------------------------------------------------------------------- derived settings


def test_the_site_url_sets_hosts_origins_prefix_and_cookies(tmp_path):
    values = settings_in(
        environment(tmp_path / "data"),
        "DEBUG",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "FORCE_SCRIPT_NAME",
        "SESSION_COOKIE_NAME",
        "CSRF_COOKIE_NAME",
        "SESSION_COOKIE_PATH",
        "CSRF_COOKIE_PATH",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_SSL_REDIRECT",
        "BEHIND_PROXY",
        "TRUSTED_PROXIES",
    )
    assert values["DEBUG"] is False
    assert "ml.example.com" in values["ALLOWED_HOSTS"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://ml.example.com"]
    assert values["FORCE_SCRIPT_NAME"] == "/ftdash"
    assert values["SESSION_COOKIE_NAME"] == "ftdash_session"
    assert values["CSRF_COOKIE_NAME"] == "ftdash_csrftoken"
    assert values["SESSION_COOKIE_PATH"] == values["CSRF_COOKIE_PATH"] == "/ftdash/"
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["BEHIND_PROXY"] is True
    assert values["TRUSTED_PROXIES"] == ["127.0.0.1", "::1"]


def test_a_plain_http_site_at_the_root_gets_no_prefix_and_no_https_only_settings(tmp_path):
    values = settings_in(
        environment(tmp_path / "data", FTDASH_SITE_URL="http://10.0.0.5:8000/", FTDASH_BEHIND_PROXY=None),
        "CSRF_TRUSTED_ORIGINS",
        "FORCE_SCRIPT_NAME",
        "SESSION_COOKIE_PATH",
        "SESSION_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_SSL_REDIRECT",
        "BEHIND_PROXY",
        "ALLOWED_HOSTS",
    )
    assert values["CSRF_TRUSTED_ORIGINS"] == ["http://10.0.0.5:8000"]
    assert "10.0.0.5" in values["ALLOWED_HOSTS"]
    assert values["FORCE_SCRIPT_NAME"] is None
    assert values["SESSION_COOKIE_PATH"] == "/"
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["BEHIND_PROXY"] is False  # off unless said: forwarded headers are ignored


# ---------------------------------------------------------------------------- database


def test_migrations_are_complete_and_apply_to_an_empty_database(tmp_path):
    env = environment(tmp_path / "data")
    done = manage(env, "makemigrations", "--check", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    done = manage(env, "migrate", "--noinput")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "data" / "ftdash.sqlite3").exists()
    done = manage(env, "migrate", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------- served under a prefix


URL_ATTRIBUTES = {"href", "action", "src", "data-live-url", "hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete"}


class _UrlCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [(tag, name, value or "") for name, value in attrs if name in URL_ATTRIBUTES]


def assert_urls_prefixed(response: requests.Response, prefix: str = "/ftdash/") -> None:
    assert response.status_code == 200, (response.url, response.status_code)
    collector = _UrlCollector()
    collector.feed(response.text)
    assert collector.urls, response.url
    # "#…" and "?…" resolve against the page the part is shown in, which carries the prefix.
    wrong = [url for url in collector.urls if not url[2].startswith((prefix, "#", "?"))]
    assert not wrong, f"URLs without the {prefix} prefix in {response.url}: {wrong}"


def test_every_url_and_redirect_carries_the_prefix(tmp_path):
    """Served by gunicorn as a proxy would reach it (prefix already stripped): every URL the
    pages contain, and every redirect, must put /ftdash back."""
    secret = "sk-prefix-" + secrets.token_hex(8)
    # Its own SQLite database (empty, for the first-run page) whatever the test run's legs use.
    site = {
        "FTDASH_SITE_URL": "http://127.0.0.1/ftdash",
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    with FakeTokenFactory() as api, ftdash_server(tmp_path / "data", api_url=api.url, **site) as server:
        api.add_token(secret)
        job = api.add_job(token=secret, total_steps=100, trained_steps=40)
        web = requests.Session()
        web.trust_env = False

        # The cookies are scoped to /ftdash/, which this client (standing in for the proxy)
        # strips from the path, so they are sent explicitly.
        def get(path: str, **kwargs) -> requests.Response:
            cookies = {c.name: c.value for c in web.cookies}
            return web.get(server.url + path, cookies=cookies, allow_redirects=False, timeout=10, **kwargs)

        def post(path: str, data: dict) -> requests.Response:
            cookies = {c.name: c.value for c in web.cookies}
            data = {**data, "csrfmiddlewaretoken": cookies["ftdash_csrftoken"]}
            return web.post(server.url + path, data=data, cookies=cookies, allow_redirects=False, timeout=10)

        assert get("/healthz").text == "ok\n"
        assert get("/").headers["Location"] == "/ftdash/setup/"
        assert_urls_prefixed(get("/setup/"))

        create_admin(server)
        assert get("/").headers["Location"] == "/ftdash/accounts/login/"
        assert get("/tokens/").headers["Location"] == "/ftdash/accounts/login/?next=/ftdash/tokens/"
        expired = get("/live/cards/?v=1.x", headers={"HX-Request": "true", "HX-Current-URL": server.url + "/ftdash/"})
        assert expired.status_code == 401
        assert expired.headers["HX-Redirect"].startswith("/ftdash/accounts/login/?next=/ftdash/")

        login_page = get("/accounts/login/")
        assert_urls_prefixed(login_page)
        assert "Path=/ftdash/" in login_page.headers["Set-Cookie"]
        signed_in = post("/accounts/login/", {"username": "admin", "password": ADMIN_PASSWORD})
        assert (signed_in.status_code, signed_in.headers["Location"]) == (302, "/ftdash/")

        saved = post("/tokens/", {"name": "main", "secret": secret})
        assert (saved.status_code, saved.headers["Location"]) == (302, "/ftdash/tokens/")
        tokens = get("/tokens/")
        assert_urls_prefixed(tokens)
        token_pk = re.search(r'action="/ftdash/tokens/(\d+)/test/"', tokens.text).group(1)

        tracked = post("/jobs/track/", {"job_id": job["id"], "token": token_pk})
        assert (tracked.status_code, tracked.headers["Location"]) == (302, "/ftdash/")
        dashboard = get("/")
        assert_urls_prefixed(dashboard)
        assert 'data-live-url="/ftdash/live/cards/"' in dashboard.text
        job_pk = re.search(r'href="/ftdash/jobs/(\d+)/"', dashboard.text).group(1)

        for path in (
            f"/jobs/{job_pk}/",
            f"/jobs/{job_pk}/remove/",
            f"/tokens/{token_pk}/edit/",
            f"/tokens/{token_pk}/delete/",
        ):
            assert_urls_prefixed(get(path))
        for path in (f"/live/cards/?v={job_pk}.old", f"/jobs/{job_pk}/live/"):
            assert_urls_prefixed(get(path, headers={"HX-Request": "true"}))

        refreshed = post(f"/jobs/{job_pk}/refresh/", {})
        assert (refreshed.status_code, refreshed.headers["Location"]) == (302, f"/ftdash/jobs/{job_pk}/")
        signed_out = post("/accounts/logout/", {})
        assert (signed_out.status_code, signed_out.headers["Location"]) == (302, "/ftdash/accounts/login/")
