"""ftdash's JSON API at /api/v1/ (django-ninja): jobs for scripts, with access tokens.

The OpenAPI 3 schema is generated from the code at /api/v1/openapi.json; /api/v1/docs is our own
page rendered from it (jobs.views.api_docs: ninja's Swagger UI is off). Every call needs an access
token (jobs.views.api.auth); errors are JSON with a message (jobs.views.api.errors); a query
parameter an endpoint does not declare is refused (jobs.views.api.query).
"""

from __future__ import annotations

import math

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, Throttled, ValidationError

from jobs.selectors import TrackedInSeveral
from jobs.tokenfactory import InvalidJobId, clean_job_id
from jobs.views.api.auth import AccessTokenAuth, PerTokenThrottle
from jobs.views.api.errors import ApiError
from jobs.views.api.jobs import router as jobs_router
from jobs.views.api.query import refuse_unknown_query

try:
    clean_job_id("")
except InvalidJobId as exc:
    JOB_ID_MESSAGE = exc.message

api = NinjaAPI(
    title="ftdash",
    version="1",
    description=(
        "Track and read fine-tuning jobs from scripts. Every call needs an access token from ftdash's "
        "Access tokens page: `Authorization: Bearer ftd_…`. Errors are JSON with a `message`."
    ),
    urls_namespace="api-v1",
    auth=AccessTokenAuth(),
    throttle=[PerTokenThrottle()],
    openapi_url="/openapi.json",
    docs_url=None,  # our own page, in ftdash's layout (jobs.views.api_docs)
)
api.add_decorator(refuse_unknown_query)  # every operation, once its parameters are valid
api.add_router("/", jobs_router)


def _error(request: HttpRequest, status: int, message: str, *, errors=None, headers=None) -> HttpResponse:
    body = {"message": message} if errors is None else {"message": message, "errors": errors}
    response = api.create_response(request, body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    return _error(request, exc.status_code, exc.message, errors=getattr(exc, "errors", None), headers=exc.headers)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    if isinstance(exc, Throttled):
        wait = math.ceil(exc.wait or 1)
        message = (
            f"Too many calls: at most {settings.FTDASH_API_REQUESTS_PER_MINUTE} a minute per access token. "
            f"Try again in {wait} s."
        )
        return _error(request, 429, message, headers={"Retry-After": str(wait)})
    if exc.status_code == 401:
        return _error(request, 401, "No valid access token.", headers={"WWW-Authenticate": 'Bearer realm="ftdash"'})
    # The body could not be read (not JSON, say): bad input like any other.
    status = 422 if exc.status_code == 400 else exc.status_code
    return _error(request, status, str(exc))


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    errors = []
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ()) if part != "payload"]
        where = ".".join(loc)
        message = error.get("msg") or "; ".join(f"{k}: {v}" for k, v in error.items())
        if loc and loc[-1] == "job_id" and error.get("type") == "string_pattern_mismatch":
            message = JOB_ID_MESSAGE  # the Track form's words
        errors.append({"location": where or "request", "message": str(message)})
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors) or "Bad input."
    return _error(request, 422, f"Bad input: {summary}"[:1000], errors=errors)


@api.exception_handler(Http404)
def _not_found(request, exc: Http404):
    return _error(request, 404, str(exc) or "Not found.")


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc: PermissionDenied):
    return _error(request, 403, str(exc) or "Your role does not allow that.")


@api.exception_handler(TrackedInSeveral)
def _several(request, exc: TrackedInSeveral):
    return _error(request, 409, str(exc))
