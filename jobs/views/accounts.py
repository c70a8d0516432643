"""Accounts beyond sign-in: invite links, open sign-up, and accounts made by administrators."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ftdash.log_redaction import INVITE_ID_KEY
from jobs import services
from jobs.auth_backends import BACKEND_PATH
from jobs.forms import AccountCreationForm


@require_http_methods(["GET", "POST"])
def invite_accept(request, secret: str):
    invite = services.invite_for_secret(secret)
    if invite is None:
        return render(request, "teams/invite_invalid.html", status=404)
    # For the request logs, which show this ID instead of the secret path.
    request.META[INVITE_ID_KEY] = invite.pk
    # Signed in: just accept. Otherwise: choose a username and password first.
    form = None if request.user.is_authenticated else AccountCreationForm(request.POST or None)
    if request.method == "POST" and (form is None or form.is_valid()):
        try:
            with transaction.atomic():  # no account is left behind if the invite was just used
                user = (
                    request.user
                    if form is None
                    else services.account_create(
                        username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
                    )
                )
                services.invite_accept(invite=invite, user=user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            if form is not None:
                login(request, user, backend=BACKEND_PATH)
            messages.success(request, f"Welcome to {invite.workspace.name}.")
            return redirect("team_detail", pk=invite.workspace_id)
    status = 422 if request.method == "POST" else 200
    return render(request, "teams/invite_accept.html", {"invite": invite, "form": form}, status=status)


@require_http_methods(["GET", "POST"])
def signup(request):
    if not settings.FTDASH_SIGNUP_OPEN:
        raise Http404("Sign-up is closed on this ftdash; ask an administrator for an account or an invite.")
    form = AccountCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.account_create(username=form.cleaned_data["username"], password=form.cleaned_data["password1"])
        login(request, user, backend=BACKEND_PATH)
        return redirect("dashboard")
    status = 422 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def account_create(request):
    if not request.user.is_superuser:
        raise PermissionDenied("Only administrators create accounts.")
    form = AccountCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.account_create(username=form.cleaned_data["username"], password=form.cleaned_data["password1"])
        messages.success(
            request,
            f"Created the account {user.get_username()}. Give them the password in person, then add them to a team.",
        )
        return redirect("account_create")
    status = 422 if request.method == "POST" else 200
    return render(request, "registration/account_create.html", {"form": form}, status=status)
