from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from jobs import selectors, services
from jobs.auth_backends import BACKEND_PATH
from jobs.forms import AccountCreationForm
from jobs.redis_cache import redis_answers


@require_http_methods(["GET", "POST"])
def first_admin(request):
    """Offered only while the site has no accounts at all."""
    if selectors.accounts_exist():
        return redirect("login")
    form = AccountCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.first_admin_create(
                username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            login(request, user, backend=BACKEND_PATH)
            return redirect("token_list")
    return render(request, "setup/first_admin.html", {"form": form})


class SignInView(LoginView):
    """Django's sign-in, pointing to first-run setup while no account exists."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["no_accounts_yet"] = not selectors.accounts_exist()
        return context


def healthz(request):
    """For the proxy or an orchestrator: 200 when the database answers, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_GET
def readyz(request):
    """For an orchestrator's readiness probe: whether this process can serve pages. 200 while
    the database answers (the cache "degraded" while Redis cannot be reached: pages still
    work), 503 when it does not. Always JSON, whatever fails."""
    try:
        newest = selectors.worker_last_seen()
    except DatabaseError:
        database_ok, worker_seen = False, None
    else:
        database_ok = True
        worker_seen = None if newest is None else max(0, int((timezone.now() - newest).total_seconds()))
    cache_ok = redis_answers(caches["default"])
    if cache_ok is None:  # the database cache
        cache_ok = database_ok
    return JsonResponse(
        {
            "database": "ok" if database_ok else "unavailable",
            "cache": "ok" if cache_ok else "degraded",
            "worker_seen_seconds_ago": worker_seen,
        },
        status=200 if database_ok else 503,
    )
