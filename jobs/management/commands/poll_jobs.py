"""The background worker: refresh due jobs and send notifications, so nobody has to watch."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.utils import timezone

from jobs import notifications, refresh
from jobs.models import WorkerHeartbeat

logger = logging.getLogger("jobs.worker")


class Command(BaseCommand):
    help = (
        "Refresh every unfinished tracked job when it falls due and deliver notifications. "
        "Runs until SIGTERM/SIGINT, which end it after the current round; --once does one pass."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Do one round, then exit.")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.FTDASH_WORKER_CONCURRENCY,
            help="Upstream calls in flight at once (default: FTDASH_WORKER_CONCURRENCY).",
        )

    def handle(self, *args, once: bool, concurrency: int, **options):
        self.stopping = threading.Event()
        if not once:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
        name = f"{socket.gethostname()}:{os.getpid()}"
        logger.info("worker %s started (concurrency %d)", name, concurrency)
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ftdash-refresh") as pool:
            while True:
                started = time.monotonic()
                try:
                    self.round(pool, name=name, concurrency=concurrency)
                except Exception:
                    # An outage of the database (or anything else) must not end the worker.
                    logger.exception("worker round failed; trying again")
                    close_old_connections()
                if once or self.stopping.is_set():
                    break
                pause = settings.FTDASH_WORKER_INTERVAL_SECONDS - (time.monotonic() - started)
                self.stopping.wait(max(0.0, pause))
                if self.stopping.is_set():
                    break
        if not once:
            # Gone for good; a --once run (from cron) keeps its check-in, so the footer can
            # still tell that rounds are happening.
            WorkerHeartbeat.objects.filter(name=name).delete()
        logger.info("worker %s stopped", name)

    def _stop(self, signum, frame) -> None:
        logger.info("worker got signal %d; stopping after this round", signum)
        self.stopping.set()

    def round(self, pool: ThreadPoolExecutor, *, name: str, concurrency: int) -> None:
        WorkerHeartbeat.objects.update_or_create(name=name, defaults={"last_seen": timezone.now()})
        lease = refresh.lock_seconds() * 2
        jobs = refresh.claim_due_jobs(limit=concurrency * 4, lease_seconds=lease)
        # Bounded: at most `concurrency` upstream calls at once, however many jobs are due.
        # Each job's failure stays its own (see _refresh_in_thread): the round always goes on
        # to the deliveries.
        list(pool.map(_refresh_in_thread, jobs))
        notifications.deliver_due()


def _refresh_in_thread(job) -> None:
    try:
        refresh.refresh_claimed(job)
    except Exception:
        # refresh_claimed records what it can as the job's refresh error; this is what is left
        # (the job deleted mid-refresh, the database gone for a moment).
        logger.exception("refreshing job %s failed", job.job_id)
    finally:
        connection.close()  # each thread has its own connection; don't leak them
