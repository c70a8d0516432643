"""P5: requests per minute from one dashboard tab with 50 running jobs, visible and hidden.

A real browser: Playwright drives headless Chromium (/usr/bin/chromium, the test suite's launch
arguments) signed in to ftdash under gunicorn, with `manage.py poll_jobs` refreshing the 50
running jobs so that cards really change. Every request the page sends to `/live/cards/` is
counted:

1. visible: for 60 s, from the moment the page's first poll went out;
2. hidden: for 60 s from the moment the page is hidden;
3. visible again: how long until the next poll (live.js catches up at once).

Headless Chromium has no way to hide a page of its own (no CDP method hides a tab; freezing it
with Page.setWebLifecycleState stops its timers altogether, which is not what a hidden tab does).
So the page is hidden the way its script sees it: `document.visibilityState` is overridden to
"hidden" and a `visibilitychange` event dispatched, and back to "visible" in step 3.

Usage: .venv/bin/python bench/browser_polls.py [--smoke] [--jobs 50] [--window 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Figure, Section, command_line, machine, seed, serve, table  # noqa: E402
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.fake_tokenfactory import FakeTokenFactory  # noqa: E402

SECRET = "sk-bench-browser-0123456789"
SET_VISIBILITY = (
    "state => { Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});"
    " document.dispatchEvent(new Event('visibilitychange')); }"
)


def run(*, jobs: int, window: float, interval: int, workers: int | None, command: str) -> Section:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="ftdash-bench-p5-") as tmp, FakeTokenFactory() as api:
        api.add_token(SECRET)
        bodies = api.add_jobs(jobs, token=SECRET, steps_per_second=1, trained_steps=10, total_steps=1_000_000)
        with serve(Path(tmp), api_url=api.url, workers=workers, FTDASH_REFRESH_SECONDS=str(interval)) as server:
            (team,) = seed(server, [{"secret": SECRET, "jobs": bodies}])
            worker = server.start_poll_jobs(Path(tmp) / "poll_jobs.log")
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                    try:
                        counts = _count(browser, server, team.sessions[0], jobs=jobs, window=window, interval=interval)
                    finally:
                        browser.close()
            finally:
                worker.terminate()
                worker.wait(timeout=60)
            workers_used = server.workers

    visible, hidden, catch_up, statuses = counts
    per_minute = 60 / window
    visible_rate, hidden_rate = visible * per_minute, hidden * per_minute
    visible_target, hidden_target = 60 / interval, 1
    markdown = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"gunicorn: {workers_used} sync workers; `poll_jobs` running; headless Chromium; one dashboard tab showing "
            f"{jobs} running jobs; refresh interval {interval} s; each window {window:g} s. Hidden by overriding "
            "`document.visibilityState` and dispatching `visibilitychange` (headless Chromium cannot hide a tab).",
            "",
            table(
                ["tab", "requests to /live/cards/ in the window", "per minute"],
                [
                    ["visible", visible, f"{visible_rate:g}"],
                    ["hidden", hidden, f"{hidden_rate:g}"],
                    [
                        "visible again: first poll after",
                        f"{catch_up * 1000:.0f} ms" if catch_up is not None else "none",
                        "",
                    ],
                ],
            ),
            "",
            "Answers seen: " + ", ".join(f"{count} × {status}" for status, count in sorted(statuses.items())) + ".",
        ]
    )
    return Section(
        "P5",
        "One tab's requests, visible and hidden (bench/browser_polls.py)",
        markdown,
        [
            Figure(
                "P5",
                f"requests per minute, one dashboard tab with {jobs} running jobs: visible / hidden",
                f"≤ {visible_target:g} / ≤ {hidden_target}",
                f"{visible_rate:g} / {hidden_rate:g}",
                visible_rate <= visible_target and hidden_rate <= hidden_target,
            ),
        ],
    )


def _count(browser, server, session: str, *, jobs: int, window: float, interval: int):
    context = browser.new_context(base_url=server.url)
    context.add_cookies([{"name": "ftdash_session", "value": session, "url": server.url}])
    page = context.new_page()
    polls: list[float] = []
    statuses: dict[int, int] = {}

    def on_request(request):
        if "/live/cards/" in request.url:
            polls.append(time.monotonic())

    def on_response(response):
        if "/live/cards/" in response.url:
            statuses[response.status] = statuses.get(response.status, 0) + 1

    page.on("request", on_request)
    page.on("response", on_response)
    page.goto("/")
    live = page.locator("[data-live-active]").count()
    if live != jobs:
        raise RuntimeError(f"the dashboard shows {live} live cards, not {jobs}")

    def wait_until(deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            page.wait_for_timeout(min(left, 1.0) * 1000)

    deadline = time.monotonic() + interval + 30
    while not polls:  # the window opens with the page's first poll
        if time.monotonic() > deadline:
            raise RuntimeError("the dashboard never polled")
        page.wait_for_timeout(50)
    start = polls[0]
    wait_until(start + window)
    visible = len([t for t in polls if start < t <= start + window])

    page.evaluate(SET_VISIBILITY, "hidden")
    hidden_at = time.monotonic()
    wait_until(hidden_at + window)
    hidden = len([t for t in polls if hidden_at < t <= hidden_at + window])

    before = len(polls)
    page.evaluate(SET_VISIBILITY, "visible")
    shown_at = time.monotonic()
    while len(polls) == before and time.monotonic() < shown_at + interval + 5:
        page.wait_for_timeout(20)
    catch_up = polls[before] - shown_at if len(polls) > before else None
    context.close()
    return visible, hidden, catch_up, statuses


def main(argv: list[str] | None = None) -> Section:
    parser = argparse.ArgumentParser(prog="bench/browser_polls.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 5 jobs, 1 s interval, 3 s windows")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--window", type=float, default=60, help="seconds counted visible, then hidden")
    parser.add_argument("--interval", type=int, default=5, help="FTDASH_REFRESH_SECONDS (the visible poll interval)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: what make serve starts)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.interval, args.window, args.workers = 5, 1, 3, args.workers or 2
    return run(
        jobs=args.jobs,
        window=args.window,
        interval=args.interval,
        workers=args.workers,
        command=command_line("bench/browser_polls.py", argv),
    )


if __name__ == "__main__":
    print(main().markdown)
