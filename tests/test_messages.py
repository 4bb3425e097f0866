"""Texts: both languages complete, GSM-7 always, segments counted right."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertnet import gsm, messages


@pytest.mark.parametrize("key", sorted(messages.TEXTS))
def test_every_text_in_both_languages_is_gsm(key: str) -> None:
    """Each text exists in Dutch and English and stays in the GSM-7 alphabet."""
    assert set(messages.TEXTS[key]) == set(messages.LANGUAGES)
    for template in messages.TEXTS[key].values():
        assert gsm.is_gsm(template), template


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Geëmigreerde ‘buurman’ – „daar”", "Geemigreerde 'buurman' - \"daar\""),
        ("café", "café"),
        ("naïef", "naief"),
        ("fire 🔥", "fire ?"),
    ],
)
def test_sanitize(text: str, expected: str) -> None:
    """Dutch accents and curly quotes become their GSM-7 look-alikes; é stays (it is GSM-7)."""
    assert gsm.sanitize(text) == expected


@given(st.text(max_size=400))
def test_sanitized_is_always_gsm(text: str) -> None:
    """Whatever a resident types, what we send is GSM-7."""
    assert gsm.is_gsm(gsm.sanitize(text))


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("ë" * 70, 1),
        ("ë" * 71, 2),
        ("", 1),
    ],
)
def test_segments(text: str, parts: int) -> None:
    """160/153 for GSM-7 (extension characters count twice), 70/67 for UCS-2."""
    assert gsm.segments(text) == parts


def test_fanout_carries_group_number_text_and_hint_without_phone() -> None:
    """The alert names group and #n, passes the text on, says how to respond."""
    body = messages.fanout("nl", group="Molenwijk", number=3, text="Man  bij\nde schuur", first_name="Ans")
    assert body.startswith("[Molenwijk #3] Man bij de schuur - Ans\n")
    assert "geen geweld" in body
    assert body.endswith("OK 3")
    english = messages.fanout("en", group="Molenwijk", number=3, text="Man", first_name=None)
    assert "never use force" in english
    assert " - " not in english.split("\n")[0]


def test_long_signal_is_shortened_at_a_word() -> None:
    """A very long text is cut at a word with an ellipsis, so one alert stays affordable."""
    body = messages.fanout("nl", group="G", number=1, text=" ".join(["woord"] * 200), first_name=None)
    first_line = body.split("\n")[0]
    assert first_line.endswith("woord...")
    assert len(first_line) <= messages.SIGNAL_CHARS + len("[G #1] ")


@given(st.sampled_from(sorted(messages.TEXTS)), st.sampled_from(["nl", "en", "tr", None]))
def test_render_fills_every_placeholder(key: str, lang: str | None) -> None:
    """Every template renders with its values and no braces left over."""
    fields = {name for _, name, _, _ in string.Formatter().parse(messages.TEXTS[key]["nl"]) if name}
    text = messages.render(key, lang, **{name: "x" for name in fields})
    assert "{" not in text
    assert gsm.is_gsm(text)


def test_escalation_page_holds_every_signal_and_the_caller() -> None:
    """A responder's page: group, #n, reporters, the signals, the caller if shared, how to answer."""
    body = messages.escalation(
        "nl",
        group="Molenwijk",
        number=4,
        reporters=2,
        texts=["Man bij schuur", "Hij heeft een mes"],
        caller="+31612345678",
    )
    first_line = "ALARM Molenwijk #4: 2 melder(s). Man bij schuur / Hij heeft een mes Melder: +31612345678"
    assert body.startswith(first_line)
    assert body.endswith("Antwoord OK 4. Opgelost: KLAAR 4")
    long = messages.escalation("en", group="G", number=1, reporters=9, texts=["word " * 100], caller=None)
    assert "..." in long
    assert "Reporter" not in long
    assert gsm.segments(long) <= 3
