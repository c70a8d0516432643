"""P11: what a huge or a dribbling answer of the API costs the process that asks.

Each measured call is made by a fresh process (`--call`: ftdash's settings, as a gunicorn
worker or `poll_jobs` has them; one `TokenFactoryClient.get_job`), against the fake Token
Factory on loopback scripted to misbehave:

- (a) a 400 MiB answer, sent with its Content-Length, chunked without one, and gzipped (a few
  hundred KB on the wire, 400 MB decoded): the process's peak resident memory (VmHWM of
  /proc/self/status) once it has refused the answer. Target ≤ 150 MB.
- (b) an answer sent one byte every 2 s, from its status line on and only in its body: the
  seconds until the call gives up, with the default FTDASH_API_TOTAL_TIMEOUT (15 s). Target
  ≤ the total timeout + 1 s.

Usage: .venv/bin/python bench/upstream_limits.py [--smoke] [--size-mb 400] [--every 2]
`--smoke` is a tiny run (a 20 MiB answer, a 2 s total timeout, a byte every 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from bench.harness import Figure, Section, command_line, machine, table  # noqa: E402
from tests.support.fake_tokenfactory import FakeTokenFactory  # noqa: E402

SECRET = "sk-bench-limits-0123456789"
SIZE_KINDS = {
    "huge": "with Content-Length",
    "huge_chunked": "chunked, no Content-Length",
    "huge_gzip": "gzipped (chunked)",
}
SLOW_KINDS = {"dribble_headers": "status line and headers dribbled", "dribble_body": "body dribbled"}


def peak_resident_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB (10^6 bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmHWM in /proc/self/status")


def call_once(job_id: str) -> dict:
    """In the `--call` process: one get_job as ftdash makes it; how it ended, how long it took,
    and the peak resident memory."""
    import django

    django.setup()
    from django.conf import settings

    from jobs.tokenfactory import TokenFactoryClient, TokenFactoryError

    started = time.monotonic()
    try:
        TokenFactoryClient(SECRET).get_job(job_id)
        error, message = None, ""
    except TokenFactoryError as exc:
        error, message = type(exc).__name__, exc.message
    return {
        "error": error,
        "message": message,
        "seconds": time.monotonic() - started,
        "peak_rss_mb": peak_resident_mb(),
        "total_timeout": settings.FTDASH_API_TOTAL_TIMEOUT,
    }


def call_in_fresh_process(api_url: str, job_id: str, **settings: str) -> dict:
    """Run `call_once` in a new process with ftdash's settings (and `settings` on top)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FTDASH_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    with tempfile.TemporaryDirectory(prefix="ftdash-bench-p11-") as data_dir:
        env = {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "ftdash.settings",
            "FTDASH_DATA_DIR": data_dir,
            "FTDASH_SECRET_KEY": secrets.token_urlsafe(50),
            "FTDASH_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "FTDASH_API_BASE_URL": api_url,
            "FTDASH_LOG_LEVEL": "ERROR",
            **settings,
        }
        result = subprocess.run(
            [sys.executable, __file__, "--call", job_id], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
    if result.returncode:
        raise RuntimeError(f"the --call process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(*, size_mb: int, every: float, total_timeout: float | None, command: str) -> Section:
    settings = {} if total_timeout is None else {"FTDASH_API_TOTAL_TIMEOUT": str(total_timeout)}
    with FakeTokenFactory() as api:
        api.add_token(SECRET)
        job_id = api.add_job(token=SECRET)["id"]
        sized, slow = {}, {}
        for kind in SIZE_KINDS:
            api.fail_next(kind, size=size_mb * 1024 * 1024)
            sized[kind] = call_in_fresh_process(api.url, job_id, **settings)
        for kind in SLOW_KINDS:
            # Dribbled for far longer than any total timeout: a call without one would show.
            api.fail_next(kind, delay=every, dribble_for=120)
            slow[kind] = call_in_fresh_process(api.url, job_id, **settings)
    timeout_used = slow["dribble_body"]["total_timeout"]
    worst_rss = max(result["peak_rss_mb"] for result in sized.values())
    worst_seconds = max(result["seconds"] for result in slow.values())
    refused = all(result["error"] == "AnswerTooLarge" for result in sized.values())
    gave_up = all(result["error"] == "ApiUnavailable" for result in slow.values())
    rows = [
        [
            f"{size_mb} MiB answer, {SIZE_KINDS[kind]}",
            result["error"] or "accepted (!)",
            result["message"],
            f"{result['seconds']:.2f} s",
            f"{result['peak_rss_mb']:.0f} MB",
        ]
        for kind, result in sized.items()
    ]
    rows += [
        [
            f"a byte every {every:g} s, {SLOW_KINDS[kind]}",
            result["error"] or "accepted (!)",
            result["message"],
            f"{result['seconds']:.2f} s",
            f"{result['peak_rss_mb']:.0f} MB",
        ]
        for kind, result in slow.items()
    ]
    markdown = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"One fresh process per call (ftdash's settings, FTDASH_API_TOTAL_TIMEOUT {timeout_used:g} s, "
            "FTDASH_API_MAX_ANSWER_BYTES at its default of 8 MiB), the fake Token Factory on loopback.",
            "",
            table(["answer", "outcome", "message shown", "call took", "peak resident (VmHWM)"], rows),
        ]
    )
    return Section(
        "P11",
        "Huge and dribbling answers (bench/upstream_limits.py)",
        markdown,
        [
            Figure(
                "P11",
                f"a {size_mb} MiB answer: peak resident memory of the process that refuses it",
                "≤ 150 MB",
                f"{worst_rss:.0f} MB (worst of {len(sized)} ways of sending it)",
                refused and worst_rss <= 150,
            ),
            Figure(
                "P11",
                f"an answer of one byte every {every:g} s: seconds until the call gives up",
                f"≤ the total timeout + 1 s ({timeout_used + 1:g} s)",
                f"{worst_seconds:.2f} s (worst of headers and body dribbled)",
                gave_up and worst_seconds <= timeout_used + 1,
            ),
        ],
    )


def main(argv: list[str] | None = None) -> Section:
    parser = argparse.ArgumentParser(prog="bench/upstream_limits.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 20 MB, 2 s total timeout, 0.5 s a byte")
    parser.add_argument("--size-mb", type=int, default=400, help="the size of the huge answer, in MiB")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between the bytes of a dribbled answer")
    parser.add_argument("--total-timeout", type=float, help="FTDASH_API_TOTAL_TIMEOUT (default: ftdash's own)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size_mb, args.every, args.total_timeout = 20, 0.5, 2.0
    return run(
        size_mb=args.size_mb,
        every=args.every,
        total_timeout=args.total_timeout,
        command=command_line("bench/upstream_limits.py", argv),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--call"]:
        print(json.dumps(call_once(sys.argv[2])))
    else:
        print(main().markdown)
