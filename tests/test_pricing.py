"""jobs.pricing's rules (what a price is, how a table of them is written, which entry a model
takes) and the instance's defaults read from FTDASH_TRAINING_PRICES / FTDASH_TRAINING_PRICES_FILE
(ftdash.env.env_prices); tests/processes/test_production_settings.py shows a bad value stopping
start-up."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from ftdash.env import env_prices
from jobs.pricing import (
    PriceEntry,
    PriceError,
    best_entry,
    matches_any,
    parse_pattern,
    parse_price,
    parse_price_table,
    price_text,
)

# --- parse_price ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.4", Decimal("0.4")),
        (" 0.4 ", Decimal("0.4")),
        ("$0.4", Decimal("0.4")),
        ("0", Decimal(0)),
        (0, Decimal(0)),
        (0.4, Decimal("0.4")),
        (3, Decimal(3)),
        ("1000", Decimal(1000)),
        ("1e2", Decimal(100)),
        ("0.000012345", Decimal("0.0000")),  # kept to the table's four decimals
        ("0.00355", Decimal("0.0036")),
    ],
)
def test_parse_price_reads_usd_per_million(value, expected):
    assert parse_price(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Enter a price"),
        ("", "Enter a price"),
        ("  ", "Enter a price"),
        ("$", "Enter a price"),
        (True, "Enter a price"),
        ("-0.01", "cannot be negative"),
        (-1, "cannot be negative"),
        ("NaN", "finite number"),
        ("sNaN", "finite number"),
        (float("nan"), "finite number"),
        ("inf", "finite number"),
        ("-Infinity", "finite number"),
        (float("inf"), "finite number"),
        ("cheap", "is not a number"),
        ("0,4", "is not a number"),
        ("0.4 USD", "is not a number"),
        ("1000.0001", "over the 1000 limit"),
        ("5000", "over the 1000 limit"),
        ("1e9", "over the 1000 limit"),
    ],
)
def test_parse_price_refuses_what_is_not_a_price(value, message):
    with pytest.raises(PriceError, match=message):
        parse_price(value)


def test_a_refused_price_names_at_most_40_characters_of_it():
    with pytest.raises(PriceError) as raised:
        parse_price("x" * 500)
    assert "x" * 40 in str(raised.value) and "x" * 41 not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.4000"), "0.40"),
        (Decimal("10.0000"), "10.00"),
        (Decimal("0.125"), "0.125"),
        (Decimal("0.0035"), "0.0035"),
        (Decimal(0), "0.00"),
        (Decimal(1000), "1,000.00"),
    ],
)
def test_price_text_writes_a_price_as_people_do(value, text):
    assert price_text(value) == text


# --- parse_pattern ------------------------------------------------------------------------------


def test_parse_pattern_strips_and_refuses_empty_spaced_or_long_patterns():
    assert parse_pattern("  Qwen/*  ") == "Qwen/*"
    for bad, message in (("", "Enter a model name"), (None, "Enter a model name"), ("a b", "no spaces")):
        with pytest.raises(PriceError, match=message):
            parse_pattern(bad)
    assert parse_pattern("x" * 300)
    with pytest.raises(PriceError, match="at most 300"):
        parse_pattern("x" * 301)


# --- parse_price_table ------------------------------------------------------------------------


def test_a_comma_separated_table():
    entries = parse_price_table(" meta-llama/Llama-3.1-8B-Instruct=0.4 , Qwen/*=0.8,,", separator=",")
    assert entries == [
        PriceEntry("meta-llama/Llama-3.1-8B-Instruct", Decimal("0.4")),
        PriceEntry("Qwen/*", Decimal("0.8")),
    ]


def test_a_file_of_lines_with_comments_and_blank_lines():
    text = "# training prices\n\nmeta-llama/* = 0.4\n   # indented comment\nQwen/Qwen3-4B =0.35\r\n"
    assert parse_price_table(text, separator="\n") == [
        PriceEntry("meta-llama/*", Decimal("0.4")),
        PriceEntry("Qwen/Qwen3-4B", Decimal("0.35")),
    ]


def test_an_empty_table_is_no_entries():
    assert parse_price_table("", separator=",") == []
    assert parse_price_table("\n# nothing\n", separator="\n") == []


@pytest.mark.parametrize(
    ("text", "separator", "message"),
    [
        ("Qwen/*=0.8,meta-llama/*", ",", "entry 2 ('meta-llama/*') is not pattern=price"),
        ("Qwen/*=-1", ",", "entry 1 ('Qwen/*=-1'): A price cannot be negative."),
        ("a=1,b=NaN", ",", "entry 2 ('b=NaN'): A price must be a finite number"),
        ("=0.4", ",", "entry 1 ('=0.4'): Enter a model name"),
        ("Qwen 3=0.4", ",", "no spaces"),
        ("# prices\nQwen/* = 0.8\nmeta-llama/* = 2000\n", "\n", "line 3 ('meta-llama/* = 2000')"),
        ("a = 1\n# b = x\nc: 2\n", "\n", "line 3 ('c: 2') is not pattern=price"),
        ("a = 1,5\n", "\n", "line 1 ('a = 1,5'): “1,5” is not a number"),
    ],
)
def test_a_malformed_entry_is_named(text, separator, message):
    with pytest.raises(PriceError) as raised:
        parse_price_table(text, separator=separator)
    assert message in str(raised.value)


# --- best_entry and matches_any ------------------------------------------------------------------


ENTRIES = [
    PriceEntry("meta-llama/*", Decimal(1)),
    PriceEntry("meta-llama/Llama-3.1-*", Decimal("0.5")),
    PriceEntry("meta-llama/Llama-3.1-8B-Instruct", Decimal("0.3")),
    PriceEntry("*", Decimal(9)),
]


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),  # exact over any glob
        ("META-LLAMA/llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct"),  # not case-sensitive
        ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-*"),  # more literal characters
        ("meta-llama/llama-3.1-70b", "meta-llama/Llama-3.1-*"),
        ("meta-llama/Llama-3.2-1B", "meta-llama/*"),
        ("Qwen/Qwen3-4B", "*"),
    ],
)
def test_the_most_specific_entry_wins(model, pattern):
    assert best_entry(model, ENTRIES).pattern == pattern
    assert best_entry(model, list(reversed(ENTRIES))).pattern == pattern  # whatever the order written


def test_on_a_tie_the_first_written_wins_and_no_match_is_none():
    first, second = PriceEntry("Qwen/*", Decimal(1)), PriceEntry("qwen/*", Decimal(2))
    assert best_entry("Qwen/Qwen3-4B", [first, second]) is first
    assert best_entry("Qwen/Qwen3-4B", [second, first]) is second
    assert best_entry("Qwen/Qwen3-4B", [PriceEntry("meta-llama/*", Decimal(1))]) is None
    assert best_entry("", ENTRIES) is None
    assert best_entry("Qwen/Qwen3-4B", []) is None


def test_glob_characters_and_exact_names():
    assert best_entry("Qwen/Qwen3-4B", [PriceEntry("Qwen/Qwen3-?B", Decimal(1))]) is not None
    assert best_entry("Qwen/Qwen3-14B", [PriceEntry("Qwen/Qwen3-?B", Decimal(1))]) is None
    assert best_entry("Qwen/Qwen3-4B", [PriceEntry("Qwen/Qwen3-[0-9]B", Decimal(1))]) is not None
    # An exact name is not a prefix: "Qwen/Qwen3-4B" does not price "Qwen/Qwen3-4B-Base".
    assert best_entry("Qwen/Qwen3-4B-Base", [PriceEntry("Qwen/Qwen3-4B", Decimal(1))]) is None


def test_matches_any():
    models = ["Qwen/Qwen3-4B", "", "meta-llama/Llama-3.1-8B-Instruct"]
    assert matches_any("qwen/*", models)
    assert matches_any("META-LLAMA/LLAMA-3.1-8B-INSTRUCT", models)
    assert not matches_any("mistralai/*", models)
    assert not matches_any("Qwen/*", [])


# --- the instance's defaults --------------------------------------------------------------------


def test_env_prices_reads_the_variable_then_the_file(monkeypatch, tmp_path):
    path = tmp_path / "prices.txt"
    path.write_text("# defaults\nQwen/* = 0.9\nmistralai/* = 1.2\n")
    monkeypatch.setenv("FTDASH_TRAINING_PRICES", "meta-llama/Llama-3.1-8B-Instruct=0.4,Qwen/*=0.8")
    monkeypatch.setenv("FTDASH_TRAINING_PRICES_FILE", str(path))
    entries = env_prices("FTDASH_TRAINING_PRICES")
    assert [(e.pattern, e.usd_per_million) for e in entries] == [
        ("meta-llama/Llama-3.1-8B-Instruct", Decimal("0.4")),
        ("Qwen/*", Decimal("0.8")),
        ("Qwen/*", Decimal("0.9")),
        ("mistralai/*", Decimal("1.2")),
    ]
    assert best_entry("Qwen/Qwen3-4B", entries).usd_per_million == Decimal("0.8")  # the variable's, on a tie


def test_env_prices_unset_is_no_prices(monkeypatch):
    monkeypatch.delenv("FTDASH_TRAINING_PRICES", raising=False)
    monkeypatch.delenv("FTDASH_TRAINING_PRICES_FILE", raising=False)
    assert env_prices("FTDASH_TRAINING_PRICES") == []


@pytest.mark.parametrize(
    ("value", "file_text", "message"),
    [
        ("Qwen/*=cheap", None, "FTDASH_TRAINING_PRICES: entry 1 ('Qwen/*=cheap'): “cheap” is not a number"),
        ("Qwen/*", None, "FTDASH_TRAINING_PRICES: entry 1 ('Qwen/*') is not pattern=price"),
        ("a=1,b=-2", None, "FTDASH_TRAINING_PRICES: entry 2 ('b=-2'): A price cannot be negative."),
        ("", "Qwen/* = 0.8\nmeta-llama/* = NaN\n", "FTDASH_TRAINING_PRICES_FILE='{path}', line 2"),
        ("", "Qwen/* 0.8\n", "FTDASH_TRAINING_PRICES_FILE='{path}', line 1 ('Qwen/* 0.8') is not pattern=price"),
    ],
)
def test_env_prices_refuses_a_malformed_value_naming_the_variable(monkeypatch, tmp_path, value, file_text, message):
    path = tmp_path / "prices.txt"
    monkeypatch.setenv("FTDASH_TRAINING_PRICES", value)
    if file_text is None:
        monkeypatch.delenv("FTDASH_TRAINING_PRICES_FILE", raising=False)
    else:
        path.write_text(file_text)
        monkeypatch.setenv("FTDASH_TRAINING_PRICES_FILE", str(path))
    with pytest.raises(ImproperlyConfigured) as raised:
        env_prices("FTDASH_TRAINING_PRICES")
    assert message.format(path=path) in str(raised.value)


def test_env_prices_refuses_an_unreadable_file(monkeypatch, tmp_path):
    monkeypatch.delenv("FTDASH_TRAINING_PRICES", raising=False)
    monkeypatch.setenv("FTDASH_TRAINING_PRICES_FILE", str(tmp_path / "missing.txt"))
    with pytest.raises(ImproperlyConfigured, match="FTDASH_TRAINING_PRICES_FILE='.*missing.txt' cannot be read"):
        env_prices("FTDASH_TRAINING_PRICES")
