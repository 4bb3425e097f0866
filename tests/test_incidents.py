"""Incident rules without a clock or a database: joining, flooding, repeats, transitions, recipients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertnet import incidents, recipients
from alertnet.incidents import Event, State, transition

T0 = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(("after_s", "joins"), [(0, True), (599, True), (600, True), (601, False)])
def test_signal_joins_within_window(after_s: int, joins: bool) -> None:
    """A signal within window_s of the last one joins its incident; later, a new incident opens."""
    assert incidents.joins(T0, T0 + timedelta(seconds=after_s), 600) is joins


@pytest.mark.parametrize(("recent", "flooding"), [(0, False), (4, False), (5, True), (50, True)])
def test_flood_limit(recent: int, flooding: bool) -> None:
    """The sixth signal in ten minutes is no longer fanned out."""
    assert incidents.is_flooding(recent) is flooding


@pytest.mark.parametrize(
    ("previous", "text", "after_s", "repeat"),
    [
        ("Man bij de schuur", "man  bij de SCHUUR", 30, True),
        ("Man bij de schuur", "Man bij de schuur", 61, False),
        ("Man bij de schuur", "Man bij het hek", 5, False),
        ("Brånd", "brand", 5, True),
    ],
)
def test_repeat_guard(previous: str, text: str, after_s: int, repeat: bool) -> None:
    """The same words within a minute are one signal, whatever the case, spacing or accents."""
    assert incidents.is_repeat(previous, T0, text, T0 + timedelta(seconds=after_s)) is repeat


@given(st.lists(st.sampled_from(list(Event)), max_size=12))
def test_nothing_leaves_resolved(events: list[Event]) -> None:
    """Once resolved, no event changes an incident; and every path keeps a valid state."""
    state = State.open
    for event in events:
        state = transition(state, event) or state
        if state == State.resolved:
            assert all(transition(state, e) is None for e in Event)


def test_ack_then_escalate() -> None:
    """An acknowledged incident can still escalate (e.g. an urgent word arrives)."""
    assert transition(State.acknowledged, Event.escalate) == State.escalated
    assert transition(State.escalated, Event.ally_ack) is None


def _member(phone: str, status: str = "active", role: str = "ally") -> dict[str, str]:
    return {"phone": phone, "status": status, "role": role}


def test_allies_exclude_sender_opted_out_and_duplicates() -> None:
    """Fan-out reaches every active ally once, never the sender, never who said STOP or waits."""
    members = [
        _member("+31600000001"),
        _member("+31600000002"),
        _member("+31600000002"),
        _member("+31600000003", "opted_out"),
        _member("+31600000004", "pending"),
        _member("+31600000005"),
    ]
    chosen = [m["phone"] for m in recipients.allies(members, sender_phone="+31600000001")]
    assert chosen == ["+31600000002", "+31600000005"]


def test_coordinators() -> None:
    """Only active coordinators are asked to approve joins."""
    members = [_member("+1", role="coordinator"), _member("+2", "opted_out", "coordinator"), _member("+3")]
    assert [m["phone"] for m in recipients.coordinators(members)] == ["+1"]
