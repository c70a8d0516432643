from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import notifications, selectors, services
from jobs.access import channel_for_user, membership_for, user_memberships
from jobs.forms import ChannelForm
from jobs.models import Delivery


@login_required
@require_GET
def notification_list(request):
    return _render_list(request)


def _render_list(request, *, failed_form=None, failed_workspace=None, status=200):
    sections = []
    memberships = user_memberships(request.user)
    workspaces = [m.workspace for m in memberships]
    channels = selectors.channels_with_deliveries(workspaces=workspaces)
    alerts = selectors.training_alert_settings_for(workspaces=workspaces)
    for membership in memberships:
        workspace = membership.workspace
        mine = [
            c
            for c in channels
            if c.workspace_id == workspace.pk and (membership.is_owner or c.user_id == request.user.pk)
        ]
        form = (
            failed_form
            if failed_workspace == workspace.pk
            else ChannelForm(
                workspace=workspace,
                alerts=alerts[workspace.pk],
                email_only=not membership.is_owner,
                initial={"email": request.user.email},
            )
        )
        sections.append({"membership": membership, "channels": mine, "form": form})
    return render(request, "notifications/notification_list.html", {"sections": sections}, status=status)


@login_required
@require_POST
def channel_add(request, pk: int):
    membership = membership_for(request.user, pk)
    workspace = membership.workspace
    form = ChannelForm(
        request.POST,
        workspace=workspace,
        alerts=selectors.training_alert_settings(workspace=workspace),
        email_only=not membership.is_owner,
    )
    if not form.is_valid():
        return _render_list(request, failed_form=form, failed_workspace=pk, status=422)
    channel = services.channel_add(
        workspace=membership.workspace,
        actor=request.user,
        kind=form.cleaned_data["kind"],
        target=form.cleaned_data["target"],
        events=form.cleaned_data["events"],
        personal=not membership.is_owner,
    )
    messages.success(request, f"Added {channel}. Use “Send test” to check it.")
    return redirect(reverse("notification_list") + f"#workspace-{pk}")


@login_required
@require_POST
def channel_test(request, pk: int):
    channel = channel_for_user(request.user, pk)
    delivery = notifications.send_test(channel)
    if delivery.state == Delivery.State.SENT:
        messages.success(request, f"Sent a test notification to {channel.masked_target}.")
    else:
        messages.error(request, f"The test notification to {channel.masked_target} failed: {delivery.last_error}")
    return redirect(reverse("notification_list") + f"#workspace-{channel.workspace_id}")


@login_required
@require_http_methods(["GET", "POST"])
def channel_delete(request, pk: int):
    channel = channel_for_user(request.user, pk)
    if request.method == "POST":
        services.channel_delete(channel=channel, actor=request.user)
        messages.success(request, f"Removed {channel}.")
        return redirect("notification_list")
    return render(
        request,
        "confirm.html",
        {
            "title": f"Remove {channel.get_kind_display().lower()} notifications to {channel.masked_target}?",
            "body": "No more notifications will be sent there. Its delivery log goes too.",
            "button": "Remove channel",
            "cancel_url": reverse("notification_list"),
        },
    )
