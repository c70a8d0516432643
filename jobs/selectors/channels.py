"""Notification channels as the Notifications page shows them, each with its latest deliveries."""

from __future__ import annotations

from jobs.models import Delivery, NotificationChannel, Workspace

#: Deliveries read for the whole page, newest first, and how many of them one channel shows.
RECENT_DELIVERIES_READ = 200
RECENT_DELIVERIES_SHOWN = 5


def channels_with_deliveries(*, workspaces: list[Workspace]) -> list[NotificationChannel]:
    """The workspaces' channels by kind, each with `recent_deliveries` (newest first): two queries."""
    channels = list(
        NotificationChannel.objects.filter(workspace__in=workspaces).select_related("workspace").order_by("kind", "pk")
    )
    recent: dict[int, list[Delivery]] = {}
    for delivery in Delivery.objects.filter(channel__in=channels).order_by("-created_at")[:RECENT_DELIVERIES_READ]:
        shown = recent.setdefault(delivery.channel_id, [])
        if len(shown) < RECENT_DELIVERIES_SHOWN:
            shown.append(delivery)
    for channel in channels:
        channel.recent_deliveries = recent.get(channel.pk, [])
    return channels
