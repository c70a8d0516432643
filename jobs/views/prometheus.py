"""Prometheus metrics: a workspace's (`/metrics/<key>`, or `/metrics/` with `Authorization:
Bearer <key>`), the operators' (`/metrics/instance`, Bearer FTDASH_METRICS_TOKEN), and the
"Prometheus metrics" section of the team page and the personal settings, where owners make and
revoke keys.

A key in the path that is wrong or revoked is a 404, as any unknown page; a Bearer key that is
missing, wrong or revoked is a 401. No session is read and no CSRF applies (GET only); the
answers are never cached. Keys in request paths are kept out of the logs (ftdash.log_redaction).
"""

from __future__ import annotations

import gzip
import hmac

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from jobs import selectors, services
from jobs.access import Need, membership_for
from jobs.selectors.prometheus import CONTENT_TYPE
from jobs.views.workspace_settings import settings_page

# Below this an answer is sent as it is: compressing would cost more than it saves.
GZIP_ABOVE_BYTES = 4096


def _exposition(request, body: bytes) -> HttpResponse:
    response = HttpResponse(content_type=CONTENT_TYPE)
    if len(body) > GZIP_ABOVE_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = gzip.compress(body, compresslevel=1)
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept-Encoding, Authorization"
    response["X-Robots-Tag"] = "noindex"
    response.content = body
    return response


def _unauthorized(message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="ftdash metrics"'
    return response


def _bearer(request) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


@never_cache
@require_GET
def workspace_metrics_by_path(request, key: str):
    found = selectors.metrics_key_for_secret(key)
    if found is None:
        raise Http404("No such metrics key.")
    return _exposition(request, selectors.workspace_metrics(found.workspace))


@never_cache
@require_GET
def workspace_metrics_by_header(request):
    secret = _bearer(request)
    if secret is None:
        return _unauthorized("Send a workspace's metrics key as Authorization: Bearer <key>.")
    found = selectors.metrics_key_for_secret(secret)
    if found is None:
        return _unauthorized("This metrics key is not valid (wrong, or revoked).")
    return _exposition(request, selectors.workspace_metrics(found.workspace))


@never_cache
@require_GET
def instance_metrics(request):
    expected = settings.FTDASH_METRICS_TOKEN
    if not expected:
        raise Http404("Instance metrics are off (FTDASH_METRICS_TOKEN is not set).")
    secret = _bearer(request)
    if secret is None:
        return _unauthorized("Send FTDASH_METRICS_TOKEN as Authorization: Bearer <token>.")
    if not hmac.compare_digest(secret.encode("utf-8", "surrogatepass"), expected.encode()):
        return _unauthorized("This token is not FTDASH_METRICS_TOKEN.")
    return _exposition(request, selectors.instance_metrics())


# --- Keys, on the team page and the personal settings ------------------------------------------


def scrape_config(request, workspace, secret: str) -> str:
    """A Prometheus scrape job for this workspace's metrics, with the key as a Bearer token."""
    endpoint = request.build_absolute_uri(reverse("workspace_metrics"))
    scheme, _, rest = endpoint.partition("://")
    host, _, path = rest.partition("/")
    name = "".join(c if c.isalnum() else "-" for c in workspace.name.lower()).strip("-") or "workspace"
    return "\n".join(
        [
            "scrape_configs:",
            f"  - job_name: ftdash-{name}",
            f"    scheme: {scheme}",
            f"    metrics_path: /{path}",
            "    authorization:",
            "      type: Bearer",
            f"      credentials: {secret}",
            "    static_configs:",
            f'      - targets: ["{host}"]',
        ]
    )


@login_required
@require_POST
def metrics_key_create(request, pk: int):
    workspace = membership_for(request.user, pk, Need.MANAGE).workspace
    key, secret = services.metrics_key_create(workspace=workspace, actor=request.user)
    context = {
        "workspace": workspace,
        "key": key,
        "secret": secret,
        "path_url": request.build_absolute_uri(reverse("workspace_metrics_by_path", args=[secret])),
        "scrape_config": scrape_config(request, workspace, secret),
        "back_url": settings_page(workspace, "metrics-heading")[0],
    }
    response = render(request, "prometheus/key_created.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def metrics_key_revoke(request, pk: int, key_pk: int):
    workspace = membership_for(request.user, pk, Need.MANAGE).workspace
    key = selectors.metrics_key_of_workspace(workspace=workspace, pk=key_pk)
    if key is None:
        raise Http404("No such metrics key.")
    services.metrics_key_revoke(key=key, actor=request.user)
    messages.success(request, f"Revoked the metrics key {key.masked}: scrapes with it now fail.")
    return redirect(settings_page(workspace, "metrics-heading")[0])
