"""Notifications: where a workspace's news goes (email, webhook, Slack). Its stall limit is set
with its training alerts (jobs.services.alert_settings)."""

from __future__ import annotations

from django.db import transaction

from jobs.audit import audit_record
from jobs.models import NotificationChannel, Workspace


@transaction.atomic
def channel_add(*, workspace: Workspace, actor, kind: str, target: str, events: list[str], personal: bool):
    channel = NotificationChannel.objects.create(
        workspace=workspace,
        kind=kind,
        target=target,
        events=events,
        user=actor if personal else None,
        created_by=actor,
    )
    whose = "their own " if personal else ""
    audit_record(
        workspace=workspace,
        actor=actor,
        action="channel.add",
        description=f"added {whose}{channel.get_kind_display()} notifications to {channel.masked_target}",
    )
    return channel


@transaction.atomic
def channel_delete(*, channel: NotificationChannel, actor) -> None:
    audit_record(
        workspace=channel.workspace,
        actor=actor,
        action="channel.delete",
        description=f"removed {channel.get_kind_display()} notifications to {channel.masked_target}",
    )
    channel.delete()
