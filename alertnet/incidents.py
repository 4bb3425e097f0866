"""Incidents (pure): states and their one transition function, joining signals, flood and loop guards."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from .commands import fold

#: A sender's signals beyond this many within FLOOD_WINDOW join the incident but are not fanned out again.
FLOOD_LIMIT = 5
FLOOD_WINDOW = timedelta(minutes=10)
#: The same text from the same sender within this time is one signal (a phone or a person repeating).
REPEAT_WINDOW = timedelta(minutes=1)


class State(StrEnum):
    #: Signals came in; nobody has said they are going yet.
    open = "open"
    #: An ally answered OK: a neighbour is going.
    acknowledged = "acknowledged"
    #: A responder is being called in.
    escalated = "escalated"
    #: Over, by KLAAR, the API, or expiry.
    resolved = "resolved"


class Event(StrEnum):
    ally_ack = "ally_ack"
    escalate = "escalate"
    responder_ack = "responder_ack"
    resolve = "resolve"


_TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.open, Event.ally_ack): State.acknowledged,
    (State.open, Event.responder_ack): State.acknowledged,
    (State.open, Event.escalate): State.escalated,
    (State.acknowledged, Event.escalate): State.escalated,
    (State.escalated, Event.responder_ack): State.escalated,
    (State.open, Event.resolve): State.resolved,
    (State.acknowledged, Event.resolve): State.resolved,
    (State.escalated, Event.resolve): State.resolved,
}


def transition(state: State, event: Event) -> State | None:
    """The next state, or None when the event does not apply (e.g. anything after resolved)."""
    return _TRANSITIONS.get((state, event))


def joins(last_signal_at: datetime, now: datetime, window_s: int) -> bool:
    """Whether a new signal belongs to the open incident whose last signal came at `last_signal_at`."""
    return now - last_signal_at <= timedelta(seconds=window_s)


def is_flooding(recent_signals: int) -> bool:
    """`recent_signals`: the sender's signals to this group within FLOOD_WINDOW, before this one."""
    return recent_signals >= FLOOD_LIMIT


def is_repeat(previous_text: str, previous_at: datetime, text: str, now: datetime) -> bool:
    return now - previous_at <= REPEAT_WINDOW and " ".join(fold(previous_text).split()) == " ".join(
        fold(text).split()
    )
