"""The README keeps up with the code: every setting in its configuration table, every module in
its Layout table. A new setting or module without its line fails here, naming it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, flags=re.M | re.S)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def _first_cells(section: str) -> list[str]:
    return [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]


def _documented_variables() -> set[str]:
    """Names in the first column; `FTDASH_SMTP_HOST`, `_PORT` stands for FTDASH_SMTP_PORT too."""
    names: set[str] = set()
    for cell in _first_cells(_section("Configuration")):
        full = re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)
        for name in full:
            names.add(name)
        if full:
            prefix = full[0].rsplit("_", 1)[0]
            names.update(prefix + short for short in re.findall(r"`(_[A-Z0-9_]+)`", cell))
    return names


def _variables_read_by_the_code() -> set[str]:
    pattern = re.compile(r"""\benv_\w+\(\s*["']([A-Z][A-Z0-9_]+)["']""")
    found: set[str] = set()
    for path in [*ROOT.glob("ftdash/*.py"), *ROOT.glob("jobs/**/*.py")]:
        found.update(pattern.findall(path.read_text()))
    return {name for name in found if name.startswith("FTDASH_")}


def test_every_setting_the_code_reads_is_in_the_configuration_table():
    missing = _variables_read_by_the_code() - _documented_variables()
    assert not missing, f"add these to the README's Configuration table: {sorted(missing)}"


def _modules() -> set[str]:
    """jobs/ and ftdash/ modules and packages as the Layout table names them."""
    names: set[str] = set()
    for path in ROOT.glob("jobs/**/*.py"):
        relative = path.relative_to(ROOT)
        if "migrations" in relative.parts or path.name == "__init__.py":
            continue
        names.add(relative.as_posix())
    return names


def test_every_module_of_the_app_is_named_in_the_layout_table():
    layout = _section("Layout")
    named = set(re.findall(r"`([\w/]+\.py)`", layout))
    packages = set(re.findall(r"`([\w/]+/)`", layout))

    def covered(module: str) -> bool:
        # A module is named itself, or its package is named with its modules listed beside it.
        return module in named or module.rsplit("/", 1)[-1] in named_in_package.get(module.rsplit("/", 1)[0] + "/", ())

    named_in_package: dict[str, set[str]] = {}
    for line in layout.splitlines():
        cells = line.split("|")
        if len(cells) > 2:
            for package in re.findall(r"`([\w/]+/)`", cells[1]):
                named_in_package[package] = set(re.findall(r"`(\w+\.py)`", line)) | {
                    name + ".py" for name in re.findall(r"`(\w+)`", cells[2])
                }
    missing = sorted(module for module in _modules() if not covered(module))
    assert packages, "the Layout table names no package"
    assert not missing, f"add these to the README's Layout table: {missing}"
