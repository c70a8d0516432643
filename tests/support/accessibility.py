"""axe-core in the real browser: every page, light and dark, wide and at a phone's 390 px.

axe-core comes bundled in the ``axe-playwright-python`` package (a file on disk, never a CDN)
and runs with its default rule set, best practices included (``region``,
``landmark-one-main``…): any violation fails. An audit checks the page as it is loaded, in
each colour scheme and width, without reloading it, so a flash message shown once is audited
in every mode. All ``<details>`` are opened first so that what they hide (raw JSON, edit
forms) is checked too, and htmx polls are held back meanwhile so that the DOM does not change
under axe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from axe_playwright_python.sync_playwright import Axe

WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Colours do not depend on the width, so the phone width is checked in one scheme only.
MODES = [("light", WIDE), ("dark", WIDE), ("light", PHONE)]
# htmx polls (job cards, the job page's live parts), answered with an error while axe runs.
POLLS = re.compile(r"/(card|live)/")

_axe = Axe()


def _abort(route) -> None:
    route.abort()


@dataclass
class Audit:
    """Collects violations over many pages; `assert_clean` reports them all at once."""

    findings: list[str] = field(default_factory=list)
    audited: list[str] = field(default_factory=list)

    def check(self, page, name: str) -> None:
        page.route(POLLS, _abort)
        try:
            page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
            for scheme, viewport in MODES:
                # Reduced motion: the stylesheet then drops its colour transitions, which axe
                # would otherwise sample half-way from the light colours to the dark ones.
                page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
                page.set_viewport_size(viewport)
                # Let the browser lay out and paint the new scheme before axe reads colours.
                page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
                where = f"{name} [{scheme}, {viewport['width']}px] {page.url}"
                self._run_axe(page, where)
                if viewport is PHONE:
                    self._check_no_sideways_scroll(page, where)
            self.audited.append(name)
        finally:
            page.emulate_media(color_scheme="light", reduced_motion="no-preference")
            page.set_viewport_size(WIDE)
            page.unroute(POLLS, _abort)

    def _run_axe(self, page, where: str) -> None:
        # A fresh axe for every run: one kept across a colour-scheme switch reuses colours it
        # worked out before the switch.
        results = _axe.run(page)
        if any(violation["id"] == "color-contrast" for violation in results.response["violations"]):
            # On a loaded machine Chromium may not have repainted every element in the new
            # scheme yet (seen in CI: text in the light scheme's colour on the dark background).
            # A real contrast problem is still there a moment later; a repaint race is not.
            page.wait_for_timeout(500)
            page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
            results = _axe.run(page)
        for violation in results.response["violations"]:
            nodes = "\n".join(
                f"      {', '.join(map(str, node['target']))}: {node.get('failureSummary', '').splitlines()[-1].strip()}"
                for node in violation["nodes"][:6]
            )
            more = len(violation["nodes"]) - 6
            self.findings.append(
                f"{where}\n  {violation['id']} ({violation['impact']}): {violation['help']}\n{nodes}"
                + (f"\n      … and {more} more" if more > 0 else "")
            )

    def _check_no_sideways_scroll(self, page, where: str) -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide = page.evaluate(
                """(limit) => Array.from(document.querySelectorAll('body *'))
                    .filter((el) => el.getBoundingClientRect().right > limit + 0.5
                        || (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible'))
                    .slice(0, 5)
                    .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                         (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : ''))""",
                PHONE["width"],
            )
            self.findings.append(f"{where}\n  page is {width}px wide at 390px: {', '.join(wide)}")

    def assert_clean(self) -> None:
        assert not self.findings, (
            f"{len(self.findings)} accessibility problem(s) on {len(self.audited)} audited pages:\n\n"
            + "\n\n".join(self.findings)
        )
