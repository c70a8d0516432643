"""Telling people when a job finishes, fails, is cancelled or stalls: by email, webhook or Slack.

A job event creates one Delivery per subscribed channel (a unique constraint makes that
exactly one, even with several workers); `poll_jobs` sends due deliveries, retrying failures
with backoff a bounded number of times.

Webhook and Slack URLs are guarded against SSRF: http(s) only, no redirects, no proxy. The
host is resolved once, *before* any connection, and refused if any of its addresses is not a
public one (IPv6 forms that carry an IPv4 address are judged by that address); the connection
then goes to the address that was checked, so a second DNS answer cannot swap it. Nothing is
sent to a refused host, not even a TCP handshake, and every refusal reads the same whatever
the port, so an owner cannot use "Send test" to scan internal hosts.

Every attempt of a delivery carries the same id, in the `X-Ftdash-Delivery` header (webhook,
Slack and email) and as `delivery_id` in a webhook's body, so a receiver can drop a repeat: a
worker killed after sending but before recording the answer leaves the delivery claimed, and
once its lease runs out (`FTDASH_DELIVERY_LEASE_SECONDS`) another worker sends it again. Each
claim counts an attempt and only the current claim may record an outcome, so a worker that
comes back late cannot overwrite what its successor recorded.

Webhook URLs are credentials (a Slack URL is all it takes to post into a channel), so errors
and logs name the host, never the full URL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from jobs.models import Delivery, JobEvent, NotificationChannel, TrackedJob

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30
SEND_TIMEOUT = (3.05, 10)
DELIVERY_HEADER = "X-Ftdash-Delivery"

# Which job events each notification rule answers to.
RULES = {
    "succeeded": lambda event: event.kind == JobEvent.Kind.FINISHED and event.status == "succeeded",
    "failed": lambda event: event.kind == JobEvent.Kind.FINISHED and event.status == "failed",
    "cancelled": lambda event: event.kind == JobEvent.Kind.FINISHED and event.status in ("cancelled", "canceled"),
    "stalled": lambda event: event.kind == JobEvent.Kind.STALLED,
    "started": lambda event: event.kind == JobEvent.Kind.STARTED,
    "budget_80": lambda event: event.kind == JobEvent.Kind.BUDGET_80,
    "budget_100": lambda event: event.kind == JobEvent.Kind.BUDGET_100,
    "cost_projection": lambda event: event.kind == JobEvent.Kind.COST_PROJECTION,
    # Training-health alerts (jobs.sync.health), silenced while the job's alerts are muted.
    "overfitting": lambda event: event.kind == JobEvent.Kind.OVERFITTING,
    "diverged": lambda event: event.kind == JobEvent.Kind.DIVERGED,
    "eta_slipped": lambda event: event.kind == JobEvent.Kind.ETA_SLIPPED,
    "slow": lambda event: event.kind == JobEvent.Kind.SLOW,
}
ALERT_EVENTS = frozenset({"overfitting", "diverged", "eta_slipped", "slow"})
# Events named by their kind in a payload, not by the job's status.
EVENTS_NAMED_BY_KIND = frozenset(RULES) - {"succeeded", "failed", "cancelled"}
# Events whose message says what happened (a stall's duration, a budget's sums): in the summary.
EVENTS_EXPLAINED_BY_MESSAGE = frozenset({"stalled", "budget_80", "budget_100", "cost_projection"}) | ALERT_EVENTS
# Events about a workspace's month rather than one job (the job is the one whose snapshot tipped it).
EVENTS_ABOUT_THE_WORKSPACE = frozenset({"budget_80", "budget_100"})


class UnsafeDestination(Exception):
    """A webhook URL that ftdash refuses to call."""


# --- Where deliveries go, and what they carry ---------------------------------------------


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, compatible, NAT64, 6to4), if any."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in NAT64 or int(ip) >> 32 == 0:  # NAT64, or the deprecated ::a.b.c.d form
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(address: str) -> bool:
    if settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS:
        return True
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # The packets end up at the IPv4 address, so that is the one to judge.
            return _public(embedded)
    return _public(ip)


def _refusal(host: str) -> UnsafeDestination:
    # One message for every refusal of a host (private, loopback, unresolvable…), never
    # naming the address or the port: the answer must not tell an owner what is listening.
    return UnsafeDestination(
        f"ftdash does not send notifications to {host}: it is not a public internet address. "
        "An administrator can allow intranet webhooks with FTDASH_ALLOW_PRIVATE_WEBHOOKS=true."
    )


def resolve(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) for each address of `host`: the one DNS lookup a delivery makes."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys((family, sockaddr[0]) for family, _, _, _, sockaddr in infos))


def checked_addresses(host: str, port: int) -> list[tuple[int, str]]:
    """The host's addresses, if ftdash may connect to every one of them; else UnsafeDestination."""
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses or not all(address_allowed(address) for _, address in addresses):
        raise _refusal(host)
    return addresses


def check_webhook_url(url: str) -> str:
    """The URL if ftdash may post to it in principle (the host's addresses are checked on send)."""
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
        raise _refusal(parts.hostname)
    if parts.hostname.lower() in ("localhost",) or parts.hostname.lower().endswith(".localhost"):
        if not settings.FTDASH_ALLOW_PRIVATE_WEBHOOKS:
            raise _refusal(parts.hostname)
    return url.strip()


class _PinnedConnectionMixin:
    """Connects to an address checked by `checked_addresses`, never to a fresh DNS answer.

    Only the TCP connection is pinned: TLS still sends and verifies the URL's host name.
    """

    def _new_conn(self):
        host = self.host.rstrip(".")
        addresses = checked_addresses(host, self.port)
        try:
            for index, (_, address) in enumerate(addresses):
                self._dns_host = address  # a literal: create_connection makes no DNS query for it
                try:
                    return super()._new_conn()
                except (NewConnectionError, ConnectTimeoutError):
                    if index == len(addresses) - 1:
                        raise
        finally:
            self._dns_host = host


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": _PinnedHTTPConnection}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": _PinnedHTTPSConnection}),
        }


def webhook_session() -> requests.Session:
    """A session that only reaches public addresses (see the module docstring)."""
    session = requests.Session()
    session.trust_env = False  # a proxy would connect for us and hide the real address
    session.mount("http://", _PinnedAdapter(max_retries=0))
    session.mount("https://", _PinnedAdapter(max_retries=0))
    session.headers["User-Agent"] = "ftdash-notifications"
    return session


def post_json(url: str, body: dict, *, headers: dict[str, str] | None = None) -> None:
    """POST `body` to a webhook; raises with a message that names the host, never the URL."""
    host = urlsplit(url).hostname or "the receiver"
    try:
        with webhook_session() as session:
            response = session.post(url, json=body, headers=headers, timeout=SEND_TIMEOUT, allow_redirects=False)
    except requests.Timeout:
        raise RuntimeError(f"{host} did not answer in time") from None
    except requests.exceptions.SSLError:
        raise RuntimeError(f"the TLS handshake with {host} failed (is its certificate valid?)") from None
    except requests.RequestException:
        # requests' own messages quote the URL's path, which holds the webhook's secret.
        raise RuntimeError(f"could not connect to {host}") from None
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"the receiver answered HTTP {response.status_code}")


def slack_escape(text: str) -> str:
    """Slack reads &, < and > as markup (links, @channel); everything else is plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _absolute(path: str, query: str = "") -> str:
    site = settings.SITE_URL
    if site:
        return urlsplit(site)._replace(path=path, query=query, fragment="").geturl()
    return f"{path}?{query}" if query else path


def job_url(job: TrackedJob) -> str:
    return _absolute(reverse("job_detail", args=[job.pk]))


def spend_path() -> str:
    try:
        return reverse("spend")
    except NoReverseMatch:  # until the Spend page's route exists
        return "/spend/"


def spend_url(workspace_id: int) -> str:
    """A workspace's Spend page (where its owners set the budget and the expensive-job warning)."""
    return _absolute(spend_path(), f"workspace={workspace_id}")


def event_payload(event: JobEvent) -> dict:
    """What a webhook receives: the job, never a token."""
    job = event.job
    details = job.details
    payload = {
        "event": event.kind if event.kind in EVENTS_NAMED_BY_KIND else event.status,
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
    if payload["event"] in EVENTS_ABOUT_THE_WORKSPACE:
        payload["spend_url"] = spend_url(job.workspace_id)
    if details.error:
        payload["error"] = {"code": details.error.code, "message": details.error.message, "param": details.error.param}
    return payload


def _summary(payload: dict) -> str:
    name = payload.get("label") or payload.get("job_id")
    if payload.get("event") in EVENTS_ABOUT_THE_WORKSPACE:
        # A month's spend: the workspace is the subject, the job only the last one to change.
        return (
            f"ftdash: {payload.get('workspace')} — {payload.get('event')} ({payload.get('message')})\n"
            f"Spend: {payload.get('spend_url', '')}\n"
            f"Last job to change: {name} ({payload.get('model', '')}) {payload.get('url', '')}"
        )
    line = f"ftdash: {name} — {payload.get('event')}"
    if payload.get("error"):
        line += f" ({payload['error']['code']}: {payload['error']['message']})"
    elif payload.get("message") and payload.get("event") in EVENTS_EXPLAINED_BY_MESSAGE:
        line += f" ({payload['message']})"
    return f"{line}\n{payload.get('model', '')} {payload.get('suffix', '')}\n{payload.get('url', '')}".strip()


# --- Creating and sending deliveries ------------------------------------------------------


def channels_for(event: JobEvent) -> list[NotificationChannel]:
    rule = next((name for name, matches in RULES.items() if matches(event)), None)
    if rule is None or (rule in ALERT_EVENTS and event.job.alerts_muted_at is not None):
        return []  # muted: the alert stays on the page, nobody is told
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


def send(delivery: Delivery) -> None:
    """Make one attempt of a delivery now; raises on failure with a message fit for its log."""
    channel, payload = delivery.channel, delivery.payload
    delivery_id = str(delivery.delivery_id)
    headers = {DELIVERY_HEADER: delivery_id}
    if channel.kind == NotificationChannel.Kind.EMAIL:
        subject = _summary(payload).splitlines()[0]
        EmailMessage(subject, _summary(payload), settings.DEFAULT_FROM_EMAIL, [channel.target], headers=headers).send()
        return
    check_webhook_url(channel.target)
    if channel.kind == NotificationChannel.Kind.SLACK:
        # Slack documents only its message fields (text, blocks, attachments…) and nobody
        # reading the channel could use the id, so it travels in the header alone.
        post_json(channel.target, {"text": slack_escape(_summary(payload))}, headers=headers)
    else:
        post_json(channel.target, {**payload, "delivery_id": delivery_id}, headers=headers)


def send_test(channel: NotificationChannel) -> Delivery:
    payload = {
        "event": "test",
        "message": "A test notification from ftdash.",
        "job_id": "ftjob-test",
        "label": "Test notification",
        "workspace": channel.workspace.name,
        "status": "test",
        "model": "",
        "suffix": "",
        "url": settings.SITE_URL or "",
    }
    # Claimed from the start, like a worker's claim: no worker sends it as well.
    delivery = Delivery.objects.create(
        channel=channel,
        payload=payload,
        state=Delivery.State.SENDING,
        attempts=1,
        next_attempt_at=_lease_end(),
    )
    _attempt(delivery)
    return delivery


def _lease_end() -> dt.datetime:
    """Until when a claimed delivery is left to its sender, before another may send it again."""
    return timezone.now() + dt.timedelta(seconds=settings.FTDASH_DELIVERY_LEASE_SECONDS)


def deliver_due(*, limit: int = 50) -> int:
    """Send deliveries that are due; each is claimed first, so two workers never both send it."""
    now = timezone.now()
    # A delivery still "sending" past its lease lost its worker mid-send: it is due again, unless
    # that was its last attempt.
    abandoned = Q(state=Delivery.State.SENDING, next_attempt_at__lte=now)
    Delivery.objects.filter(abandoned, attempts__gte=MAX_ATTEMPTS).update(
        state=Delivery.State.FAILED,
        last_error="ftdash stopped before the receiver answered its last attempt; it may have arrived",
    )
    due = Delivery.objects.filter(Q(state=Delivery.State.PENDING, next_attempt_at__lte=now) | abandoned).order_by(
        "next_attempt_at"
    )
    sent = 0
    for delivery in due.select_related("channel")[:limit]:
        claimed = Delivery.objects.filter(
            pk=delivery.pk,
            state=delivery.state,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
        ).update(state=Delivery.State.SENDING, next_attempt_at=_lease_end(), attempts=F("attempts") + 1)
        if not claimed:
            continue
        delivery.state, delivery.attempts = Delivery.State.SENDING, delivery.attempts + 1
        try:
            _attempt(delivery)
        except Exception:
            # E.g. the database went away while it was sending: the other deliveries still go
            # out, and this one is due again when its lease runs out.
            logger.exception("notification %s could not be recorded", delivery.pk)
            continue
        sent += 1
    return sent


def _attempt(delivery: Delivery) -> None:
    """Send a claimed delivery and record the outcome, if the claim is still this one's."""
    try:
        send(delivery)
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
    # Each claim counts an attempt: a claim that ran out while this one was sending (and was
    # taken over by another worker) has a different count, and so records nothing here.
    recorded = Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.SENDING, attempts=delivery.attempts).update(
        state=delivery.state,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
        sent_at=delivery.sent_at,
    )
    if not recorded:
        logger.warning(
            "notification %s could not be recorded after attempt %d: another worker took it over, or it was deleted",
            delivery.pk,
            delivery.attempts,
        )
