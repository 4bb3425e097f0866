"""SMS text → command, as residents actually type it."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertnet.commands import (
    MAX_TEXT,
    STOP_WORDS,
    UNREADABLE,
    Ack,
    Help,
    Join,
    Leave,
    Resolve,
    SetLanguage,
    Signal,
    Start,
    Stop,
    Yes,
    fold,
    parse,
    said_in,
)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("STOP", Stop()),
        ("stop", Stop()),
        (" Stop. ", Stop()),
        ("STOPALL", Stop()),
        ("unsubscribe", Stop()),
        ("Afmelden", Stop()),
        ("START", Start()),
        ("unstop", Start()),
        ("HELP", Help("en")),
        ("hulp", Help("nl")),
        ("Info", Help()),
        ("JOIN molen", Join("MOLEN", said_in="en")),
        ("aanmelden Molen Ans de Vries", Join("MOLEN", "Ans de Vries", "nl")),
        ("AANMELDEN", Join(None, said_in="nl")),
        ("LEAVE molen", Leave("MOLEN", "en")),
        ("uitschrijven MOLEN", Leave("MOLEN", "nl")),
        ("ja", Yes()),
        # A bare YES is also Twilio's opt-in word, as START is.
        ("YES", Yes(twilio_opt_in=True)),
        ("Yes!", Yes(twilio_opt_in=True)),
        ("y", Yes()),
        ("YES 3", Yes(3)),
        ("JA 17", Yes(17)),
        ("TAAL EN", SetLanguage("en")),
        ("language Nederlands", SetLanguage("nl")),
        ("Taal: engels", SetLanguage("en")),
        ("taal is raar", Signal("taal is raar")),
        ("LANGUAGE EN please", Signal("LANGUAGE EN please")),
        ("ok", Ack()),
        ("OK 3", Ack(3)),
        ("OK #3", Ack(3)),
        ("Oké!", Ack()),
        ("ik kom", Ack()),
        ("IK KOM #12", Ack(12)),
        ("Onderweg 4", Ack(4)),
        ("ok ik ga", Ack()),
        ("OK 3 ik kom eraan", Ack(3, ("ik", "kom", "eraan"))),
        ("KLAAR 1 Banne", Resolve(1, ("Banne",))),
        ("Ok, er staat iemand bij de deur", Signal("Ok, er staat iemand bij de deur")),
        ("klaar", Resolve()),
        ("KLAAR #2", Resolve(2)),
        ("opgelost 2", Resolve(2)),
        ("Done", Resolve()),
        ("Verdachte man bij de fietsenstalling", Signal("Verdachte man bij de fietsenstalling")),
        ("stop de dief bij nummer 5", Signal("stop de dief bij nummer 5")),
        ("help er is brand", Signal("help er is brand")),
        ("ja er is iemand in de tuin", Signal("ja er is iemand in de tuin")),
        ("", Signal("")),
        # A number that cannot be an incident's names none, rather than the latest incident.
        ("KLAAR -1", Resolve(UNREADABLE)),
        ("OK 12345678901", Ack(UNREADABLE)),
        ("JA 99999999999", Yes(UNREADABLE)),
        ("OK 2e verdieping", Ack()),
        # A phone sends control characters now and then: they are spaces.
        ("Brand\x00 bij\r\nde flat", Signal("Brand bij de flat")),
        ("STOP\x00", Stop()),
    ],
)
def test_parse(text: str, command: object) -> None:
    """First word decides; STOP/START/HELP only as the whole message, like Twilio."""
    assert parse(text) == command


def test_fold_removes_accents_and_case() -> None:
    """Accents and case never hide a keyword."""
    assert fold("BRÅND Wápen") == "brand wapen"


@given(st.sampled_from(sorted(STOP_WORDS)), st.text(alphabet=" \t\n", max_size=3))
def test_stop_word_alone_always_stops(word: str, space: str) -> None:
    """Every opt-out word, any case, with whitespace around, is a STOP."""
    assert parse(space + word.upper() + space) == Stop()
    assert parse(word.capitalize()) == Stop()


@given(st.text(max_size=200))
def test_parse_never_fails(text: str) -> None:
    """Any text whatsoever parses to some command."""
    parse(text)


_SAID_IN = [
    ("JOIN MOLEN", "en"),
    ("aanmelden molen", "nl"),
    ("Help", "en"),
    ("HULP", "nl"),
    ("leave x", "en"),
]
_SAYS_NOTHING = [("INFO", None), ("ok", None), ("STOP", None), ("JA", None), ("Brand!", None)]


@pytest.mark.parametrize(("text", "language"), [*_SAID_IN, *_SAYS_NOTHING])
def test_said_in(text: str, language: str | None) -> None:
    """Only a word of one language tells a newcomer's language; INFO, OK or STOP tell nothing."""
    assert said_in(parse(text)) == language


def test_long_text_is_cut() -> None:
    """Twilio joins an SMS up to 1,600 characters; nothing longer is taken in, nor echoed whole."""
    assert parse("x" * 5000) == Signal("x" * MAX_TEXT)
    join = parse("JOIN " + "A" * 5000)
    assert join == Join("A" * 21, said_in="en")


@given(st.text(max_size=300))
def test_parsed_text_has_no_control_characters(text: str) -> None:
    """No command carries a control character onwards (PostgreSQL cannot store a NUL)."""
    command = parse(text)
    for value in vars(command).values():
        if isinstance(value, str):
            assert not [char for char in value if unicodedata.category(char) == "Cc"], value
