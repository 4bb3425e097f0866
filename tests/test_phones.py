"""Phone numbers: one form in the database, a masked form everywhere else."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertnet import phones


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("0612345678", "+31612345678"),
        ("06-12345678", "+31612345678"),
        ("+31 6 1234 5678", "+31612345678"),
        ("0031612345678", "+31612345678"),
        (" +31612345678 ", "+31612345678"),
        ("020 555 1234", "+31205551234"),
        ("+32 470 12 34 56", "+32470123456"),
    ],
)
def test_normalize(typed: str, e164: str) -> None:
    """Every way a Dutch resident writes a number gives one E.164 form (NL by default)."""
    assert phones.normalize(typed) == e164


@pytest.mark.parametrize("bad", ["hello", "", "12", "+31612", "06123456789012", "+999123456789"])
def test_invalid(bad: str) -> None:
    """What cannot receive an SMS is refused."""
    with pytest.raises(phones.InvalidPhone):
        phones.normalize(bad)


def test_mask_keeps_country_and_last_four() -> None:
    """A masked number is recognisable to its owner and useless to anyone else."""
    assert phones.mask("+31612345678") == "+31 6 •• •• 56 78"
    assert phones.mask("+32470123456") == "+32 4 •• •• 34 56"


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+14155550123", "+1 4 •• •• 01 23"),
        ("+353851234567", "+353 8 •• •• 45 67"),
        ("+999123456789", "9 •• •• 67 89"),  # no such country: digits only
    ],
)
def test_mask_finds_the_country_code_of_any_length(e164: str, masked: str) -> None:
    assert phones.mask(e164) == masked


@given(st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True))
def test_a_masked_number_shows_at_most_country_first_and_last_four(e164: str) -> None:
    masked = phones.mask(e164)
    country, _, rest = masked.partition(" ") if masked.startswith("+") else ("", "", masked)
    shown = re.sub(r"\D", "", rest)
    assert e164.startswith(country)
    assert len(shown) <= 5
    assert e164.endswith(shown[-4:])


def test_mask_in_text() -> None:
    """Free text keeps its words and loses its numbers."""
    assert phones.mask_in_text("bel 0612345678 nu") == "bel +31 6 •• •• 56 78 nu"


def test_provider_numbers_accepted_as_given() -> None:
    """A sender in E.164 is taken as is, even in a range the metadata does not know yet."""
    assert phones.from_provider("+31699999999") == "+31699999999"
    assert phones.from_provider("0612345678") == "+31612345678"
    with pytest.raises(phones.InvalidPhone):
        phones.from_provider("ALERTNET")
