"""Training prices: what a price is, how a table of them is written, and which entry a model takes.

Pure rules, no database: the settings (`FTDASH_TRAINING_PRICES`, `FTDASH_TRAINING_PRICES_FILE`),
the workspace price form and Token Factory's model information all read prices through
`parse_price`, so a value refused in one place is refused in every place with the same words.
Where the prices come from, in which order, and what a job costs is `jobs.costs`.

A price is USD per 1M training tokens, a `Decimal` (money is never a float here). A pattern is a
model name or a glob (`meta-llama/*`, `Qwen/Qwen3-*`), matched case-insensitively; the most
specific pattern that matches wins: an exact name before any glob, then the glob with the most
literal characters, then the one written first.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Over this is a typo (a price per token, or per 1K, pasted as per 1M), never a real price.
MAX_USD_PER_MILLION = Decimal(1000)
PATTERN_MAX_LENGTH = 300
WILDCARDS = "*?["


class PriceError(ValueError):
    """A price or a price table that cannot be used; the message says why, for a person."""


@dataclass(frozen=True)
class PriceEntry:
    pattern: str
    usd_per_million: Decimal

    @property
    def is_glob(self) -> bool:
        return any(char in self.pattern for char in WILDCARDS)

    def matches(self, model: str) -> bool:
        pattern, model = self.pattern.casefold(), model.casefold()
        return fnmatch.fnmatchcase(model, pattern) if self.is_glob else model == pattern

    @property
    def specificity(self) -> tuple[int, int]:
        """Larger is more specific: exact names first, then globs by their literal characters."""
        literal = sum(1 for char in self.pattern if char not in WILDCARDS)
        return (0 if self.is_glob else 1, literal)


def parse_price(value: object) -> Decimal:
    """`value` (text or a number) as USD per 1M tokens, or PriceError saying what is wrong.

    Zero is a price (a free model); negative, NaN, infinite, empty, non-numeric and anything
    over MAX_USD_PER_MILLION are refused."""
    if isinstance(value, bool) or value is None:
        raise PriceError("Enter a price in USD per 1M training tokens, such as 0.4.")
    text = str(value).strip().removeprefix("$").strip()
    if not text:
        raise PriceError("Enter a price in USD per 1M training tokens, such as 0.4.")
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise PriceError(f"“{text[:40]}” is not a number: enter USD per 1M training tokens, such as 0.4.") from None
    if not price.is_finite():
        raise PriceError("A price must be a finite number of USD per 1M training tokens.")
    if price < 0:
        raise PriceError("A price cannot be negative.")
    if price > MAX_USD_PER_MILLION:
        raise PriceError(
            f"{price} USD per 1M tokens is over the {MAX_USD_PER_MILLION} limit: is it a price per token or per 1K?"
        )
    return price.quantize(Decimal("0.0001")) if price.as_tuple().exponent < -4 else price


def price_text(value: Decimal | str | int) -> str:
    """A price as people read it: at least cents, at most the four decimals `parse_price` keeps,
    never an exponent: "0.40", "10.00", "0.125", "0.0035", "1,000.00". A rate, not a sum
    (`jobs.humanize.usd`), so never rounded to cents."""
    text = f"{Decimal(value):,.4f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def parse_pattern(value: object) -> str:
    """A model name or glob, stripped; PriceError when empty, too long or with spaces."""
    pattern = str(value or "").strip()
    if not pattern:
        raise PriceError("Enter a model name, such as meta-llama/Llama-3.1-8B-Instruct, or a pattern like Qwen/*.")
    if len(pattern) > PATTERN_MAX_LENGTH:
        raise PriceError(f"A model name or pattern is at most {PATTERN_MAX_LENGTH} characters.")
    if any(char.isspace() for char in pattern):
        raise PriceError("A model name or pattern has no spaces.")
    return pattern


def parse_price_table(text: str, *, separator: str) -> list[PriceEntry]:
    """Entries of `pattern=price` separated by `separator` (a comma, or a newline for a file,
    where blank lines and lines starting with # are skipped). PriceError names the entry."""
    entries: list[PriceEntry] = []
    for number, raw in enumerate(text.split(separator), start=1):
        item = raw.strip()
        if not item or (separator == "\n" and item.startswith("#")):
            continue
        where = f"line {number}" if separator == "\n" else f"entry {number}"
        pattern, equals, price = item.partition("=")
        if not equals:
            raise PriceError(f"{where} ({item[:60]!r}) is not pattern=price, e.g. Qwen/*=0.8.")
        try:
            entries.append(PriceEntry(parse_pattern(pattern), parse_price(price)))
        except PriceError as exc:
            raise PriceError(f"{where} ({item[:60]!r}): {exc}") from None
    return entries


def best_entry(model: str, entries: Iterable[PriceEntry]) -> PriceEntry | None:
    """The most specific entry whose pattern matches `model` (the first written on a tie)."""
    if not model:
        return None
    best: PriceEntry | None = None
    for entry in entries:
        if entry.matches(model) and (best is None or entry.specificity > best.specificity):
            best = entry
    return best


def matches_any(pattern: str, models: Iterable[str]) -> bool:
    entry = PriceEntry(pattern, Decimal(0))
    return any(entry.matches(model) for model in models if model)
