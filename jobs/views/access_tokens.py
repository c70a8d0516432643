"""The Access tokens page (`/account/access-tokens/`, from the user menu): a person's tokens to
the JSON API (jobs.views.api), made with a name, an expiry and a scope, the secret shown once,
listed by name and last use, revocable."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from jobs import selectors, services
from jobs.access import user_memberships
from jobs.forms import AccessTokenForm


@login_required
@require_http_methods(["GET", "POST"])
def access_tokens(request):
    form = AccessTokenForm(request.POST or None)
    context = {"form": form}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            token, secret = services.access_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                expires_in_days=form.expires_in_days,
            )
            # Shown on this answer only: nothing stores the secret, so nothing can show it again.
            context.update(new_token=token, secret=secret, form=AccessTokenForm())
        else:
            status = 422
    context.update(
        tokens=selectors.access_tokens_of(user=request.user),
        memberships=user_memberships(request.user),
        api_tokens=selectors.tokens_usable_by(user=request.user),
        jobs_url=request.build_absolute_uri(reverse("api-v1:api_jobs")),
        docs_url=reverse("api_docs"),
    )
    response = render(request, "access_tokens/access_tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may carry a secret
    return response


@login_required
@require_http_methods(["GET", "POST"])
def access_token_revoke(request, pk: int):
    token = selectors.access_token_for_owner(user=request.user, pk=pk)
    if request.method == "POST":
        services.access_token_revoke(token=token, actor=request.user)
        messages.success(request, f"Revoked the access token “{token.name}”: scripts using it now get a 401.")
        return redirect("access_tokens")
    return render(
        request,
        "confirm.html",
        {
            "title": f"Revoke the access token “{token.name}”?",
            "body": "Scripts that use it stop working at once (their calls get a 401). This cannot be undone.",
            "button": "Revoke",
            "cancel_url": reverse("access_tokens"),
        },
    )
