"""Telling people when a job finishes, fails, is cancelled or stalls: by email, webhook or Slack.

A job event creates one Delivery per subscribed channel (a unique constraint makes that
exactly one, even with several workers); `poll_jobs` sends due deliveries, retrying failures
with backoff a bounded number of times. Webhook and Slack URLs are guarded against SSRF:
http(s) only, no redirects, and no loopback, link-local or private address, checked on the
connected socket itself so DNS tricks cannot get around it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from jobs.models import Delivery, JobEvent, NotificationChannel, TrackedJob

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30
SEND_TIMEOUT = (3.05, 10)
SENDING_LEASE = dt.timedelta(minutes=5)

# Which job events each notification rule answers to.
RULES = {
    "succeeded": lambda event: event.kind == JobEvent.Kind.FINISHED and event.status == "succeeded",
    "failed": lambda event: event.kind == JobEvent.Kind.FINISHED and event.status == "failed",
    "cancelled": lambda event: event.kind == JobEvent.Kind.FINISHED and event.status in ("cancelled", "canceled"),
    "stalled": lambda event: event.kind == JobEvent.Kind.STALLED,
}


class UnsafeDestination(Exception):
    """A webhook URL that ftdash refuses to call."""


# --- Where deliveries go, and what they carry ---------------------------------------------


def address_allowed(address: str) -> bool:
    if settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS:
        return True
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_webhook_url(url: str) -> str:
    """The URL if ftdash may post to it in principle (the address is checked again on connect)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination("Only http:// and https:// URLs can receive notifications.")
    if parts.username or parts.password:
        raise UnsafeDestination("Put credentials in the URL's path or query, not before the host.")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(str(literal)):
        raise UnsafeDestination(
            "That address is private, loopback or link-local. An administrator can allow "
            "intranet webhooks with FTDASH_ALLOW_PRIVATE_WEBHOOKS=true."
        )
    if parts.hostname.lower() in ("localhost",) or parts.hostname.lower().endswith(".localhost"):
        if not settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS:
            raise UnsafeDestination("localhost cannot receive notifications.")
    return url.strip()


class _GuardedConnectionMixin:
    def connect(self):
        super().connect()
        peer = self.sock.getpeername()[0]
        if not address_allowed(peer):
            self.sock.close()
            raise UnsafeDestination(
                f"{self.host} resolves to a private or loopback address ({peer}); refused."
            )


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _GuardedHTTPConnection}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": _GuardedHTTPSConnection}),
        }


def _webhook_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # a proxy would connect for us and hide the real address
    session.mount("http://", _GuardedAdapter(max_retries=0))
    session.mount("https://", _GuardedAdapter(max_retries=0))
    session.headers["User-Agent"] = "ftdash-notifications"
    return session


def job_url(job: TrackedJob) -> str:
    path = reverse("job_detail", args=[job.pk])
    site = settings.SITE_URL
    if site:
        return urlsplit(site)._replace(path=path, query="", fragment="").geturl()
    return path


def event_payload(event: JobEvent) -> dict:
    """What a webhook receives: the job, never a token."""
    job = event.job
    details = job.details
    payload = {
        "event": "stalled" if event.kind == JobEvent.Kind.STALLED else event.status,
        "message": event.message,
        "job_id": job.job_id,
        "label": job.label,
        "workspace": job.workspace.name,
        "status": details.status,
        "model": details.model,
        "suffix": details.suffix,
        "created_at": details.created_at.isoformat() if details.created_at else None,
        "finished_at": details.finished_at.isoformat() if details.finished_at else None,
        "event_at": event.at.isoformat(),
        "url": job_url(job),
    }
    if details.error:
        payload["error"] = {"code": details.error.code, "message": details.error.message,
                            "param": details.error.param}
    return payload


def _summary(payload: dict) -> str:
    name = payload.get("label") or payload.get("job_id")
    line = f"ftdash: {name} — {payload.get('event')}"
    if payload.get("error"):
        line += f" ({payload['error']['code']}: {payload['error']['message']})"
    elif payload.get("message") and payload.get("event") == "stalled":
        line += f" ({payload['message']})"
    return f"{line}\n{payload.get('model', '')} {payload.get('suffix', '')}\n{payload.get('url', '')}".strip()


# --- Creating and sending deliveries ------------------------------------------------------


def channels_for(event: JobEvent) -> list[NotificationChannel]:
    rule = next((name for name, matches in RULES.items() if matches(event)), None)
    if rule is None:
        return []
    channels = NotificationChannel.objects.filter(workspace_id=event.job.workspace_id).filter(
        # A personal subscription counts only while its subscriber is still a member.
        Q(user__isnull=True) | Q(user__memberships__workspace_id=event.job.workspace_id)
    )
    return [c for c in channels.distinct() if rule in c.events]


def queue_for_events(events: list[JobEvent]) -> int:
    """One delivery per subscribed channel and event; a repeat is ignored, never sent twice."""
    created = 0
    for event in events:
        for channel in channels_for(event):
            try:
                with transaction.atomic():
                    Delivery.objects.create(channel=channel, event=event, payload=event_payload(event))
                    created += 1
            except IntegrityError:
                pass
    return created


def send(channel: NotificationChannel, payload: dict) -> None:
    """Send one notification now; raises on failure with a message fit for the delivery log."""
    if channel.kind == NotificationChannel.Kind.EMAIL:
        subject = _summary(payload).splitlines()[0]
        send_mail(subject, _summary(payload), settings.DEFAULT_FROM_EMAIL, [channel.target])
        return
    check_webhook_url(channel.target)
    body = {"text": _summary(payload)} if channel.kind == NotificationChannel.Kind.SLACK else payload
    with _webhook_session() as session:
        response = session.post(channel.target, json=body, timeout=SEND_TIMEOUT, allow_redirects=False)
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"the receiver answered HTTP {response.status_code}")


def send_test(channel: NotificationChannel) -> Delivery:
    payload = {
        "event": "test", "message": "A test notification from ftdash.", "job_id": "ftjob-test",
        "label": "Test notification", "workspace": channel.workspace.name, "status": "test",
        "model": "", "suffix": "", "url": settings.SITE_URL or "",
    }
    delivery = Delivery.objects.create(channel=channel, payload=payload, state=Delivery.State.SENDING)
    _attempt(delivery)
    return delivery


def deliver_due(*, limit: int = 50) -> int:
    """Send deliveries that are due; each is claimed first, so two workers never both send it."""
    now = timezone.now()
    # A delivery stuck in "sending" past its lease (its worker died mid-send) is due again.
    due = Delivery.objects.filter(
        state__in=[Delivery.State.PENDING, Delivery.State.SENDING], next_attempt_at__lte=now
    ).order_by("next_attempt_at")
    sent = 0
    for delivery in due.select_related("channel")[:limit]:
        claimed = Delivery.objects.filter(
            pk=delivery.pk, state=delivery.state, next_attempt_at=delivery.next_attempt_at
        ).update(state=Delivery.State.SENDING, next_attempt_at=now + SENDING_LEASE)
        if claimed:
            _attempt(delivery)
            sent += 1
    return sent


def _attempt(delivery: Delivery) -> None:
    delivery.attempts += 1
    try:
        send(delivery.channel, delivery.payload)
    except Exception as exc:  # any failure of a receiver is logged and retried, never fatal
        message = str(exc) or type(exc).__name__
        logger.warning("notification %s to %s failed: %s", delivery.pk, delivery.channel.kind, message)
        delivery.last_error = message[:500]
        if delivery.attempts >= MAX_ATTEMPTS or delivery.event_id is None:
            delivery.state = Delivery.State.FAILED
        else:
            delivery.state = Delivery.State.PENDING
            wait = RETRY_BASE_SECONDS * 2 ** (delivery.attempts - 1)
            delivery.next_attempt_at = timezone.now() + dt.timedelta(seconds=wait)
    else:
        delivery.state = Delivery.State.SENT
        delivery.sent_at = timezone.now()
        delivery.last_error = ""
    delivery.save(update_fields=["attempts", "state", "last_error", "next_attempt_at", "sent_at"])
