from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from jobs import selectors, services
from jobs.access import Need, membership_for, token_for_user, user_workspaces
from jobs.forms import TokenEditForm, TokenForm


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    """Tokens of the workspaces the user owns; members use a team's tokens without seeing them."""
    form = TokenForm(request.POST or None, workspaces=user_workspaces(request.user, Need.MANAGE))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            workspace = membership_for(request.user, form.cleaned_data["workspace"].pk, Need.MANAGE).workspace
            try:
                token = services.token_create(
                    workspace=workspace,
                    user=request.user,
                    name=form.cleaned_data["name"],
                    secret=form.cleaned_data["secret"],
                    ai_project_id=form.cleaned_data["ai_project_id"],
                    watch=form.cleaned_data["watch"],
                    watch_pattern=form.cleaned_data["watch_pattern"],
                )
            except ValidationError as exc:
                form.add_error("name", exc)
            else:
                messages.success(request, f"Saved token “{token.name}” ({token.masked}) in {workspace.name}.")
                return redirect("token_list")
        status = 422
    tokens = selectors.tokens_managed_by(user=request.user)
    return render(request, "tokens/token_list.html", {"form": form, "tokens": tokens}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def token_edit(request, pk: int):
    token = token_for_user(request.user, pk)
    form = TokenEditForm(request.POST or None, token=token, workspaces=user_workspaces(request.user, Need.MANAGE))
    if request.method == "POST" and form.is_valid():
        workspace = membership_for(request.user, form.cleaned_data["workspace"].pk, Need.MANAGE).workspace
        try:
            services.token_update(
                token=token,
                actor=request.user,
                name=form.cleaned_data["name"],
                secret=form.cleaned_data["secret"],
                workspace=workspace,
                ai_project_id=form.cleaned_data["ai_project_id"],
                watch=form.cleaned_data["watch"],
                watch_pattern=form.cleaned_data["watch_pattern"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Saved token “{token.name}” in {token.workspace.name}.")
            return redirect("token_list")
    status = 422 if request.method == "POST" else 200
    return render(request, "tokens/token_edit.html", {"form": form, "token": token}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def token_delete(request, pk: int):
    token = token_for_user(request.user, pk)
    if request.method == "POST":
        services.token_delete(token=token, actor=request.user)
        messages.success(request, f"Deleted token “{token.name}”.")
        return redirect("token_list")
    return render(request, "tokens/token_delete.html", {"token": token, "job_count": token.jobs.count()})


@login_required
@require_POST
def token_test(request, pk: int):
    token = token_for_user(request.user, pk)
    ok, message = services.token_check(token=token)
    (messages.success if ok else messages.error)(request, f"“{token.name}”: {message}")
    return redirect("token_list")
