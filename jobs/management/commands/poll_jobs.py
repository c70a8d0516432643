"""The background worker: refresh due jobs and send notifications, so nobody has to watch.

Each round claims the due jobs, reads them from each token's job list where it can (see
`jobs.sync.list_refresh`) and asks for the rest one by one, all through one bounded thread pool.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.utils import timezone

from jobs import instrumentation, notifications, request_budget
from jobs.models import WorkerHeartbeat
from jobs.sync import costs, discovery, imports, list_refresh, refresh

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
        parser.add_argument(
            "--list-reads",
            action=argparse.BooleanOptionalAction,
            default=settings.FTDASH_WORKER_LIST_READS,
            help="Read a token's due jobs from its job list, one call per 100 jobs, rather than "
            "one call per job (default: FTDASH_WORKER_LIST_READS).",
        )

    def handle(self, *args, once: bool, concurrency: int, list_reads: bool, **options):
        self.stopping = threading.Event()
        request_budget.run_as_worker()  # people's calls go before this process's
        if not once:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
        name = f"{socket.gethostname()}:{os.getpid()}"
        logger.info(
            "worker %s started (concurrency %d, list reads %s)", name, concurrency, "on" if list_reads else "off"
        )
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ftdash-refresh") as pool:
            while True:
                started = time.monotonic()
                try:
                    # As Django does before each request: a connection that broke (the
                    # database restarted) or grew old is replaced, checked on first use.
                    close_old_connections()
                    self.round(pool, name=name, concurrency=concurrency, list_reads=list_reads)
                except Exception:
                    # An outage of the database (or anything else) must not end the worker;
                    # an outage is logged once, not each round (jobs.database_outage).
                    logger.exception("worker round failed; trying again")
                if once or self.stopping.is_set():
                    break
                pause = settings.FTDASH_WORKER_INTERVAL_SECONDS - (time.monotonic() - started)
                self.stopping.wait(max(0.0, pause))
                if self.stopping.is_set():
                    break
        if not once:
            # Gone for good; a --once run (from cron) keeps its check-in, so the footer can
            # still tell that rounds are happening.
            try:
                WorkerHeartbeat.objects.filter(name=name).delete()
            except Exception:
                # The database is gone: the check-in ages out, and the footer stops calling
                # this worker active.
                logger.exception("worker %s could not remove its check-in", name)
        logger.info("worker %s stopped", name)

    def _stop(self, signum, frame) -> None:
        logger.info("worker got signal %d; stopping after this round", signum)
        self.stopping.set()

    def round(self, pool: ThreadPoolExecutor, *, name: str, concurrency: int, list_reads: bool) -> None:
        WorkerHeartbeat.objects.update_or_create(name=name, defaults={"last_seen": timezone.now()})
        started = time.monotonic()
        one_by_one_limit = concurrency * 4
        if list_reads:
            # A list read takes a few calls in a row: a longer lease, so that no other worker
            # (nor a page) takes its jobs on before it is done.
            lease = refresh.lock_seconds() * 4
            claims = list_refresh.claim_round(one_by_one_limit=one_by_one_limit, lease_seconds=lease)
        else:
            lease = refresh.lock_seconds() * 2
            claims = list_refresh.RoundClaims(
                one_by_one=refresh.claim_due_jobs(limit=one_by_one_limit, lease_seconds=lease)
            )
        # Bounded: at most `concurrency` upstream calls at once, however many jobs are due.
        # Each job's and each list's failure stays its own (see the *_in_thread functions):
        # the round always goes on to the deliveries.
        pending = {pool.submit(_refresh_in_thread, job) for job in claims.one_by_one}
        lists = {pool.submit(_list_in_thread, token_id, jobs, lease) for token_id, jobs in claims.by_list.items()}
        pages = from_lists = one_by_one = 0
        one_by_one += len(claims.one_by_one)
        pending |= lists
        # Watched tokens due for a look, and job lists being read for "Import jobs".
        pending |= {
            pool.submit(_discover_in_thread, token) for token in discovery.claim_due_watches(lease_seconds=lease)
        }
        pending |= {pool.submit(_import_in_thread, run_pk) for run_pk in imports.claim_reading_runs()}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done & lists:
                read = future.result()
                pages += read.pages
                from_lists += read.stored
                one_by_one += len(read.fall_back)
                pending |= {pool.submit(_refresh_in_thread, job) for job in read.fall_back}
        if pages or one_by_one:
            logger.info(
                "round: %d jobs stored from %d list pages, %d handed to one-by-one refreshes, in %d ms",
                from_lists,
                pages,
                one_by_one,
                (time.monotonic() - started) * 1000,
            )
        # Jobs that ended before ftdash counted costs, or before a price was known.
        costs.freeze_ended_jobs()
        notifications.deliver_due()
        instrumentation.WORKER_ROUNDS.observe(time.monotonic() - started)


def _discover_in_thread(token) -> None:
    try:
        discovery.discover(token)
    except Exception:
        # Its claim runs out, and the next round looks again.
        logger.exception("watching token %s failed", token.pk)
    finally:
        connection.close()


def _import_in_thread(run_pk: int) -> None:
    try:
        imports.import_advance(run_pk, pages=imports.PAGES_PER_ROUND)
    except Exception:
        logger.exception("reading the job list of import %s failed", run_pk)
    finally:
        connection.close()


def _list_in_thread(token_id: int, jobs: list, lease: int) -> list_refresh.ListRead:
    try:
        return list_refresh.refresh_from_list(token_id=token_id, due=jobs, lease_seconds=lease)
    except Exception:
        # Asking for them one by one records what goes wrong per job; those already stored
        # from the list are no longer due, so they are not asked for twice.
        logger.exception("reading the job list of token %s failed", token_id)
        return list_refresh.ListRead(fall_back=jobs)
    finally:
        connection.close()


def _refresh_in_thread(job) -> None:
    try:
        refresh.refresh_claimed(job)
    except Exception:
        # refresh_claimed records what it can as the job's refresh error; this is what is left
        # (the job deleted mid-refresh, the database gone for a moment).
        logger.exception("refreshing job %s failed", job.job_id)
    finally:
        connection.close()  # each thread has its own connection; don't leak them
