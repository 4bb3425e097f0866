"""Escalation decisions (pure): given a policy, an incident, an event and the time, what happens next.

No I/O and no clock: the engine passes `now` and the responders on duty, then applies the
returned actions in one transaction. Every chain position carries a version; a timer that
does not carry the incident's current version is stale and does nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .commands import fold
from .incidents import Event as StateEvent
from .incidents import State, transition
from .policy import EscalationPolicy


class Trigger(StrEnum):
    #: `threshold_reporters` distinct neighbours reported.
    threshold = "threshold"
    #: An urgent word in a signal, or `"urgent": true` from the API.
    urgent = "urgent"
    #: No ally answered OK within `ack_timeout_s`.
    no_ack = "no_ack"


class TimerKind(StrEnum):
    #: Fires `ack_timeout_s` after the incident opened.
    ack_timeout = "ack_timeout"
    #: Fires a step's `timeout_s` after its responders were paged.
    step_timeout = "step_timeout"


@dataclass(frozen=True)
class Incident:
    """What the decision needs to know about an incident."""

    state: State
    reporters: int
    version: int
    #: The chain position last paged, or None before escalation.
    round: int | None = None
    step: int | None = None
    responder_acked: bool = False
    ally_acked: bool = False
    #: The chain ran out and the coordinators were told.
    exhausted: bool = False


# Events


@dataclass(frozen=True)
class Opened:
    """The incident's first signal."""

    urgent: bool


@dataclass(frozen=True)
class SignalAdded:
    """A later signal; `reporters` counts distinct reporters including this one."""

    reporters: int
    urgent: bool


@dataclass(frozen=True)
class TimerFired:
    kind: TimerKind
    version: int
    round: int = 0
    step: int = 0


@dataclass(frozen=True)
class AllyAck:
    pass


@dataclass(frozen=True)
class ResponderAck:
    pass


@dataclass(frozen=True)
class StepFailed:
    """Every SMS to the responders of this step bounced: do not wait for the time-out."""

    round: int
    step: int


@dataclass(frozen=True)
class Resolve:
    pass


EventType = Opened | SignalAdded | TimerFired | AllyAck | ResponderAck | StepFailed | Resolve


# Actions


@dataclass(frozen=True)
class SetState:
    state: State
    trigger: Trigger | None = None


@dataclass(frozen=True)
class Page:
    """SMS these responders (each at most once per step) and move the chain here."""

    round: int
    step: int
    responder_ids: tuple[int, ...]
    version: int


@dataclass(frozen=True)
class Skip:
    """A step passed over because none of its responders is on duty (by schedule, or after their STOP)."""

    round: int
    step: int


@dataclass(frozen=True)
class Schedule:
    kind: TimerKind
    due_at: datetime
    version: int
    round: int = 0
    step: int = 0


@dataclass(frozen=True)
class Exhausted:
    """Nobody in the whole chain (and its repeats) answered: tell the coordinators."""

    version: int


@dataclass(frozen=True)
class StopChain:
    """Invalidate every outstanding timer."""

    version: int


@dataclass(frozen=True)
class TellAllies:
    """Close the loop: 'a neighbour is going', 'the buurtregisseur is on it', or the outcome."""

    news: str


@dataclass(frozen=True)
class Stale:
    reason: str


Action = SetState | Page | Skip | Schedule | Exhausted | StopChain | TellAllies | Stale


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", fold(text))) + " "


#: The policies' urgent keywords, folded once each (signal texts are not kept).
_keyword = functools.lru_cache(maxsize=1024)(_words)


def is_urgent(text: str, keywords: Iterable[str]) -> bool:
    """Whether the text holds an urgent keyword as whole words, any case, with or without accents."""
    words = _words(text)
    return any(_keyword(keyword) in words for keyword in keywords if keyword.strip())


def walk(
    policy: EscalationPolicy, round_: int, step: int, now: datetime, on_duty: frozenset[int], version: int
) -> list[Action]:
    """Page the first step from (round, step) on that has someone on duty; else the chain is exhausted."""
    skipped: list[Action] = []
    while round_ <= policy.repeat and policy.chain:
        while step < len(policy.chain):
            current = policy.chain[step]
            paged = tuple(r for r in dict.fromkeys(current.responder_ids) if r in on_duty)
            if paged:
                due = now + timedelta(seconds=current.timeout_s)
                return [
                    *skipped,
                    Page(round_, step, paged, version),
                    Schedule(TimerKind.step_timeout, due, version, round_, step),
                ]
            skipped.append(Skip(round_, step))
            step += 1
        round_, step = round_ + 1, 0
    return [*skipped, Exhausted(version)]


def _escalate(
    policy: EscalationPolicy, incident: Incident, trigger: Trigger, now: datetime, on_duty: frozenset[int]
) -> list[Action]:
    if transition(incident.state, StateEvent.escalate) is None:
        return []
    if incident.responder_acked:
        # A responder already said they are on it: record the escalation, page nobody.
        return [SetState(State.escalated, trigger)]
    return [SetState(State.escalated, trigger), *walk(policy, 0, 0, now, on_duty, incident.version + 1)]


def _on_signal(
    policy: EscalationPolicy,
    incident: Incident,
    event: Opened | SignalAdded,
    now: datetime,
    on_duty: frozenset[int],
) -> list[Action]:
    reporters = 1 if isinstance(event, Opened) else event.reporters
    trigger = None
    if event.urgent:
        trigger = Trigger.urgent
    elif reporters >= policy.threshold_reporters:
        trigger = Trigger.threshold
    if trigger is not None:
        return _escalate(policy, incident, trigger, now, on_duty)
    if isinstance(event, Opened):
        due = now + timedelta(seconds=policy.ack_timeout_s)
        return [Schedule(TimerKind.ack_timeout, due, incident.version)]
    return []


def _on_timer(
    policy: EscalationPolicy, incident: Incident, event: TimerFired, now: datetime, on_duty: frozenset[int]
) -> list[Action]:
    if event.version != incident.version:
        return [Stale("the incident moved on since this timer was set")]
    if event.kind == TimerKind.ack_timeout:
        if incident.state != State.open:
            return [Stale(f"incident is {incident.state}")]
        return _escalate(policy, incident, Trigger.no_ack, now, on_duty)
    if incident.state != State.escalated or incident.responder_acked:
        return [Stale("a responder answered or the incident is over")]
    return walk(policy, event.round, event.step + 1, now, on_duty, incident.version + 1)


def _on_responder_ack(incident: Incident) -> list[Action]:
    if incident.responder_acked:
        return []
    # Before any escalation (a responder who is also a member): acknowledged, as by an ally.
    acked = transition(incident.state, StateEvent.responder_ack)
    state = [SetState(acked)] if acked not in (None, incident.state) else []
    return [*state, StopChain(incident.version + 1), TellAllies("responder_on_it")]


def _on_step_failed(
    policy: EscalationPolicy, incident: Incident, event: StepFailed, now: datetime, on_duty: frozenset[int]
) -> list[Action]:
    current = (incident.round, incident.step) == (event.round, event.step)
    if incident.state != State.escalated or incident.responder_acked or not current:
        return [Stale("not the current step")]
    if incident.exhausted:  # a late bounce of the last page: the coordinators know already
        return [Stale("the chain ran out")]
    return walk(policy, event.round, event.step + 1, now, on_duty, incident.version + 1)


def next_actions(
    policy: EscalationPolicy, incident: Incident, event: EventType, now: datetime, on_duty: frozenset[int]
) -> list[Action]:
    """What to do about `event`. Never pages about a resolved incident; an ack stops the chain."""
    if incident.state == State.resolved:
        return [Stale("incident is resolved")]
    match event:
        case Opened() | SignalAdded():
            return _on_signal(policy, incident, event, now, on_duty)
        case TimerFired():
            return _on_timer(policy, incident, event, now, on_duty)
        case AllyAck():
            next_state = transition(incident.state, StateEvent.ally_ack)
            actions: list[Action] = [SetState(next_state)] if next_state else []
            return actions if incident.ally_acked else [*actions, TellAllies("ally_going")]
        case ResponderAck():
            return _on_responder_ack(incident)
        case StepFailed():
            return _on_step_failed(policy, incident, event, now, on_duty)
        case Resolve():
            return [SetState(State.resolved), StopChain(incident.version + 1), TellAllies("outcome")]
    return []
