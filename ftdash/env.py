"""Strict readers for ftdash's environment variables.

Every setting comes from the environment. A value that cannot be understood stops start-up
with a message naming the variable and what it accepts: a typo in a boolean must never
silently turn a security switch off.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: set it to true or false (or leave it unset).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_secret(name: str) -> str | None:
    """Read a secret from NAME, or from the file named by NAME_FILE (Docker/systemd secrets)."""
    value = os.environ.get(name, "").strip()
    file_name = os.environ.get(f"{name}_FILE", "").strip()
    if value and file_name:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}.") from None
    return value or None


def secret_from_data_dir(path: Path, generate) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) on first run.

    `generate` makes a new value; it is called only when the file does not exist yet.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate()
    # Written aside then hard-linked into place: if two processes start at once, exactly one
    # value wins and nobody ever reads a half-written file.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.chmod(tmp_name, 0o600)
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return path.read_text().strip()
    finally:
        os.unlink(tmp_name)
    return value


def env_prices(name: str) -> list:
    """Training prices from NAME (`pattern=price` pairs, comma-separated) followed by those of the
    file named by NAME_FILE (one `pattern = price` per line): `jobs.pricing.PriceEntry`s, the
    variable's own first, so on a tie it wins. A malformed entry stops start-up naming it."""
    from jobs.pricing import PriceError, parse_price_table

    entries = []
    raw = os.environ.get(name, "")
    try:
        entries += parse_price_table(raw, separator=",")
    except PriceError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None
    file_name = os.environ.get(f"{name}_FILE", "").strip()
    if file_name:
        try:
            text = Path(file_name).read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}.") from None
        try:
            entries += parse_price_table(text, separator="\n")
        except PriceError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r}, {exc}") from None
    return entries
