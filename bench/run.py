"""Run every benchmark of issue 9 and write the figures into BENCHMARKS.md (`make bench`).

Each measurement is its own script, runnable alone; this runs them one after the other (never
two at once: they would measure each other), collects each one's report and its figures against
their targets, and writes them between the markers of BENCHMARKS.md, leaving the prose around
them as it is. A script that crashes is reported as such and the others still run.

Usage: .venv/bin/python bench/run.py [--smoke] [--only polls,soak,…] [--output FILE] [--note TEXT]
`--smoke` runs each script's tiny run and prints the report instead of writing BENCHMARKS.md
(unless --output is given); the test suite runs it so that the scripts keep working.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    browser_polls,
    dashboard_size,
    metrics_scrape,
    polls,
    soak,
    token_budget,
    upstream_calls,
    upstream_limits,
    worker_rounds,
)
from bench.harness import ROOT, Figure, Section, command_line, machine, table  # noqa: E402

BEGIN = "<!-- bench:begin (written by bench/run.py; edit the prose outside these markers) -->"
END = "<!-- bench:end -->"

# In the order they run: the short ones first, the five-minute soak last.
SCRIPTS = {
    "polls": (("P2", "P3", "P4"), polls.main),
    "upstream_calls": (("P1",), upstream_calls.main),
    "upstream_limits": (("P11",), upstream_limits.main),
    "dashboard_size": (("P6",), dashboard_size.main),
    "metrics_scrape": (("P12",), metrics_scrape.main),
    "browser_polls": (("P5",), browser_polls.main),
    "worker_rounds": (("P7",), worker_rounds.section),
    "token_budget": (("P10",), token_budget.main),
    "soak": (("P8", "P9"), soak.main),
}


def run_all(names: list[str], smoke: bool) -> tuple[list[Section], list[str]]:
    sections: list[Section] = []
    crashed = []
    for name in names:
        keys, main = SCRIPTS[name]
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            made = main(["--smoke"] if smoke else [])
        except Exception:
            crashed.append(name)
            trace = traceback.format_exc()
            print(trace, file=sys.stderr)
            made = [
                Section(
                    keys[0],
                    f"bench/{name}.py crashed",
                    f"```\n{trace[-3000:]}\n```",
                    [
                        Figure(key, f"bench/{name}.py", "—", "the script crashed (see its section)", False)
                        for key in keys
                    ],
                )
            ]
        sections += made if isinstance(made, list) else [made]
        print(f"bench: {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return sections, crashed


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def render(
    sections: list[Section], *, command: str, started: dt.datetime, seconds: float, note: str, smoke: bool
) -> str:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = len([line for line in _git("status", "--porcelain").splitlines() if line.strip()])
    figures = sorted((f for s in sections for f in s.figures), key=lambda f: (int(f.key[1:]), 0))
    missed = [f for f in figures if f.met is False]
    lines = [
        f"Recorded {started:%Y-%m-%d %H:%M} UTC by `{command}` in {seconds / 60:.1f} min"
        + (" — a **smoke** run: tiny sizes, the figures mean nothing." if smoke else "."),
        "",
        f"- Machine: {machine()} (at the end of the run).",
        f"- Code: commit `{commit}`" + (f", with {dirty} files changed in the working tree." if dirty else "."),
    ]
    if note:
        lines.append(f"- Note: {note}")
    lines += [
        "",
        "### Summary",
        "",
        table(
            ["#", "measure", "target", "measured", "verdict"],
            [[f.key, f.measure, f.target, f.measured, f.verdict] for f in figures],
        ),
        "",
        (
            "Every target is met."
            if not missed
            else "Targets **not met**: " + ", ".join(sorted({f.key for f in missed}, key=lambda k: int(k[1:]))) + "."
        ),
    ]
    for section in sorted(sections, key=lambda s: int(s.key[1:].split("–")[0])):
        lines += ["", f"### {section.key}: {section.title}", "", section.markdown]
    return "\n".join(lines)


DEFAULT_PROSE = """# Benchmarks

What issue 9 asks of live updates, measured by `make bench` (bench/run.py). See bench/ for
how each figure is measured.

"""


def write(path: Path, body: str) -> None:
    """Replace what is between the markers of `path` (creating the file or the markers if need be)."""
    text = path.read_text() if path.exists() else DEFAULT_PROSE
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
    else:
        head, tail = text.rstrip("\n") + "\n\n", "\n"
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="each script's tiny run; prints instead of writing")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(SCRIPTS)}")
    parser.add_argument(
        "--output", type=Path, help="the Markdown file to write (default: BENCHMARKS.md, or none with --smoke)"
    )
    parser.add_argument("--note", default="", help="a line about the circumstances, written with the figures")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",")] if args.only else list(SCRIPTS)
    unknown = [name for name in names if name not in SCRIPTS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    output = args.output or (None if args.smoke else ROOT / "BENCHMARKS.md")

    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    sections, crashed = run_all(names, args.smoke)
    body = render(
        sections,
        command=command_line("bench/run.py", argv),
        started=started,
        seconds=time.monotonic() - clock,
        note=args.note,
        smoke=args.smoke,
    )
    if output is None:
        print(body)
    else:
        write(output, body)
        print(f"bench: wrote {output}", file=sys.stderr)
    if crashed:
        print(f"bench: crashed: {', '.join(crashed)}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
