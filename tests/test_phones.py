"""Phone numbers: one form in the database, a masked form everywhere else."""

from __future__ import annotations

import pytest

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


def test_mask_in_text() -> None:
    """Free text keeps its words and loses its numbers."""
    assert phones.mask_in_text("bel 0612345678 nu") == "bel +31 6 •• •• 56 78 nu"


def test_provider_numbers_accepted_as_given() -> None:
    """A sender in E.164 is taken as is, even in a range the metadata does not know yet."""
    assert phones.from_provider("+31699999999") == "+31699999999"
    assert phones.from_provider("0612345678") == "+31612345678"
    with pytest.raises(phones.InvalidPhone):
        phones.from_provider("ALERTNET")
