from __future__ import annotations

import ipaddress
import logging
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import TooManyFieldsSent
from django.core.handlers.exception import get_exception_response
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.urls import get_resolver, get_urlconf
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from jobs.database_outage import outage_answer


class HtmxLoginRedirectMiddleware:
    """When a session expires, an HTMX poll must send the whole tab to the sign-in page.

    Following a redirect inside the XHR would swap a login form into a job card, so the
    redirect becomes a 401 carrying HX-Redirect, pointing back to the page the person was on.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not getattr(request, "htmx", False) or response.status_code != 302:
            return response
        login_path = urlsplit(resolve_url(settings.LOGIN_URL)).path
        if urlsplit(response["Location"]).path != login_path:
            return response
        current = request.htmx.current_url or ""
        if url_has_allowed_host_and_scheme(
            current, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            parts = urlsplit(current)
            next_url = parts.path + (f"?{parts.query}" if parts.query else "")
        else:
            next_url = resolve_url(settings.LOGIN_REDIRECT_URL)
        redirect = HttpResponseClientRedirect(redirect_to_login(next_url)["Location"])
        redirect.status_code = 401
        return redirect


class TooManyParametersMiddleware:
    """A query string of more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) parameters gets the
    site's 400 page, with DEBUG on as with it off.

    Django raises TooManyFieldsSent wherever request.GET is first read. With DEBUG off that
    becomes the 400 page; with DEBUG on (`make run`) the debug page reads request.GET again to
    list the parameters, raises once more and ends as a bare 500. Reading it here, before any
    view or middleware does, answers the same 400 in both modes, logged without a traceback.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.GET  # noqa: B018 (parsing the query string is what may raise)
        except TooManyFieldsSent as exc:
            logging.getLogger("django.security.TooManyFieldsSent").error(
                str(exc), extra={"status_code": 400, "request": request}
            )
            return get_exception_response(request, get_resolver(get_urlconf()), 400, exc)
        return self.get_response(request)


class TrustedProxyMiddleware:
    """Believe X-Forwarded-Proto / X-Forwarded-For only when they come from a trusted proxy.

    Off unless FTDASH_BEHIND_PROXY is on; even then only requests whose peer address is in
    FTDASH_TRUSTED_PROXIES count. Someone who reaches the app port directly cannot make
    Django think the request was https, or came from another address (which would defeat
    secure cookies, the https redirect and sign-in throttling).
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.trusted = {self._normal(ip) for ip in settings.TRUSTED_PROXIES}

    @staticmethod
    def _normal(address: str) -> str:
        try:
            return str(ipaddress.ip_address(address.strip()))
        except ValueError:
            return address.strip()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        peer = self._normal(meta.get("REMOTE_ADDR", ""))
        trusted = settings.BEHIND_PROXY and peer in self.trusted
        if not trusted and settings.REMOTE_USER_HEADER:
            # A client that reaches the app directly must not name itself a user.
            meta.pop(_remote_user_meta_key(), None)
        if trusted:
            proto = meta.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                meta["wsgi.url_scheme"] = proto
            # The client is the right-most address that is not one of our proxies; anything
            # that is not an IP address (a port, "unknown") ends the search.
            hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
            for hop in reversed(hops):
                try:
                    address = str(ipaddress.ip_address(hop))
                except ValueError:
                    break
                if address not in self.trusted:
                    meta["REMOTE_ADDR"] = address
                    break
        return self.get_response(request)


def client_ip(request: HttpRequest) -> str:
    """The client's address for sign-in throttling (already resolved by TrustedProxyMiddleware)."""
    return request.META.get("REMOTE_ADDR", "")


def _remote_user_meta_key() -> str:
    return "HTTP_" + settings.REMOTE_USER_HEADER.upper().replace("-", "_")


class ProxyRemoteUserMiddleware(RemoteUserMiddleware):
    """Sign in whoever the auth proxy names in FTDASH_REMOTE_USER_HEADER (off when unset)."""

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        self.enabled = bool(settings.REMOTE_USER_HEADER)
        if self.enabled:
            self.header = _remote_user_meta_key()

    def __call__(self, request):
        if not self.enabled:
            return self.get_response(request)
        try:
            return super().__call__(request)
        except Exception as exc:
            # Signing the named user in reads the database before any view runs, out of
            # DatabaseOutageMiddleware's sight: an outage answers its 503 here too.
            response = outage_answer(exc)
            if response is None:
                raise
            return response


class ContentSecurityPolicyMiddleware:
    """A strict Content-Security-Policy: only our own scripts (or nonced ones), no eval, no
    inline styles, no framing. htmx runs with allowEval and indicator styles off to fit it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        if response.status_code == 204:
            return response  # no body, so no document for a policy to govern: polls stay tiny
        response.setdefault(
            "Content-Security-Policy",
            "; ".join(
                [
                    "default-src 'self'",
                    f"script-src 'self' 'nonce-{request.csp_nonce}'",
                    "style-src 'self'",
                    "img-src 'self' data:",
                    "connect-src 'self'",
                    "font-src 'self'",
                    "object-src 'none'",
                    "base-uri 'none'",
                    "form-action 'self'",
                    "frame-ancestors 'none'",
                ]
            ),
        )
        return response
