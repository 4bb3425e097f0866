"""The pure escalation core, with a simulated clock: tables for each rule, properties for the invariants."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertnet.escalation import (
    AllyAck,
    Exhausted,
    Incident,
    Opened,
    Page,
    Resolve,
    ResponderAck,
    Schedule,
    SetState,
    SignalAdded,
    Skip,
    Stale,
    StepFailed,
    StopChain,
    TellAllies,
    TimerFired,
    TimerKind,
    Trigger,
    is_urgent,
    next_actions,
)
from alertnet.incidents import State
from alertnet.policy import ChainStep, EscalationPolicy

T0 = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
POLICY = EscalationPolicy(
    threshold_reporters=3,
    ack_timeout_s=300,
    chain=[ChainStep(responder_ids=[1], timeout_s=600), ChainStep(responder_ids=[2, 3, 2], timeout_s=600)],
    repeat=1,
)
EVERYONE = frozenset({1, 2, 3})
OPEN = Incident(state=State.open, reporters=1, version=0)


def pages(actions: list[object]) -> list[Page]:
    return [a for a in actions if isinstance(a, Page)]


class TestTriggers:
    def test_first_signal_schedules_the_ack_timeout(self) -> None:
        """A quiet first signal waits ack_timeout_s for an ally's OK."""
        assert next_actions(POLICY, OPEN, Opened(urgent=False), T0, EVERYONE) == [
            Schedule(TimerKind.ack_timeout, T0 + timedelta(seconds=300), 0)
        ]

    def test_urgent_first_signal_escalates_at_once(self) -> None:
        """An urgent word pages step 1 straight away, with its time-out."""
        actions = next_actions(POLICY, OPEN, Opened(urgent=True), T0, EVERYONE)
        assert actions == [
            SetState(State.escalated, Trigger.urgent),
            Page(0, 0, (1,), 1),
            Schedule(TimerKind.step_timeout, T0 + timedelta(seconds=600), 1, 0, 0),
        ]

    @pytest.mark.parametrize(("reporters", "escalates"), [(2, False), (3, True), (4, True)])
    def test_threshold(self, reporters: int, escalates: bool) -> None:
        """The third distinct reporter escalates."""
        actions = next_actions(POLICY, OPEN, SignalAdded(reporters=reporters, urgent=False), T0, EVERYONE)
        assert (SetState(State.escalated, Trigger.threshold) in actions) is escalates

    def test_ack_timeout_without_ok_escalates(self) -> None:
        """Nobody answered OK in time: the buurtregisseur is called."""
        actions = next_actions(POLICY, OPEN, TimerFired(TimerKind.ack_timeout, 0), T0, EVERYONE)
        assert actions[0] == SetState(State.escalated, Trigger.no_ack)
        assert pages(actions) == [Page(0, 0, (1,), 1)]

    def test_ack_timeout_after_an_ok_does_nothing(self) -> None:
        """An acknowledged incident does not escalate for silence."""
        acked = replace(OPEN, state=State.acknowledged, ally_acked=True)
        assert next_actions(POLICY, acked, TimerFired(TimerKind.ack_timeout, 0), T0, EVERYONE) == [
            Stale("incident is acknowledged")
        ]

    def test_acknowledged_incident_still_escalates_on_urgent_word(self) -> None:
        """A neighbour going does not stop a later 'wapen' from calling the police in."""
        acked = replace(OPEN, state=State.acknowledged, ally_acked=True)
        actions = next_actions(POLICY, acked, SignalAdded(reporters=2, urgent=True), T0, EVERYONE)
        assert actions[0] == SetState(State.escalated, Trigger.urgent)


class TestChain:
    ESCALATED = Incident(state=State.escalated, reporters=3, version=1, round=0, step=0)

    def test_step_timeout_pages_the_next_step_once_per_responder(self) -> None:
        """Step 2 lists responder 2 twice: paged once."""
        actions = next_actions(
            POLICY, self.ESCALATED, TimerFired(TimerKind.step_timeout, 1, 0, 0), T0, EVERYONE
        )
        assert pages(actions) == [Page(0, 1, (2, 3), 2)]

    def test_chain_repeats_then_is_exhausted(self) -> None:
        """After the last step the chain runs again `repeat` times, then the coordinators are told."""
        last = replace(self.ESCALATED, round=0, step=1, version=2)
        again = next_actions(POLICY, last, TimerFired(TimerKind.step_timeout, 2, 0, 1), T0, EVERYONE)
        assert pages(again) == [Page(1, 0, (1,), 3)]
        final = replace(self.ESCALATED, round=1, step=1, version=4)
        assert next_actions(POLICY, final, TimerFired(TimerKind.step_timeout, 4, 1, 1), T0, EVERYONE) == [
            Exhausted(5)
        ]

    def test_off_duty_step_is_skipped_at_once(self) -> None:
        """Responder 1 off duty: step 1 is skipped and step 2 paged now."""
        actions = next_actions(POLICY, OPEN, Opened(urgent=True), T0, frozenset({2, 3}))
        assert Skip(0, 0) in actions
        assert pages(actions) == [Page(0, 1, (2, 3), 1)]

    def test_nobody_on_duty_tells_the_coordinators(self) -> None:
        """No responder on duty anywhere: straight to 'nobody answered'."""
        actions = next_actions(POLICY, OPEN, Opened(urgent=True), T0, frozenset())
        assert pages(actions) == []
        assert isinstance(actions[-1], Exhausted)

    def test_empty_chain_tells_the_coordinators(self) -> None:
        """A group without responders still escalates: to its coordinators."""
        actions = next_actions(EscalationPolicy(), OPEN, Opened(urgent=True), T0, EVERYONE)
        assert actions == [SetState(State.escalated, Trigger.urgent), Exhausted(1)]

    def test_bounced_sms_moves_on_without_waiting(self) -> None:
        """Every SMS of the current step failed: the next step now."""
        actions = next_actions(POLICY, self.ESCALATED, StepFailed(0, 0), T0, EVERYONE)
        assert pages(actions) == [Page(0, 1, (2, 3), 2)]
        assert next_actions(POLICY, self.ESCALATED, StepFailed(0, 1), T0, EVERYONE) == [
            Stale("not the current step")
        ]

    def test_late_bounce_after_the_chain_ran_out_is_stale(self) -> None:
        """The last page bounces after its time-out ended the chain: the coordinators were told once."""
        done = replace(self.ESCALATED, round=1, step=1, exhausted=True)
        assert next_actions(POLICY, done, StepFailed(1, 1), T0, EVERYONE) == [Stale("the chain ran out")]

    def test_responder_ok_before_escalation_acknowledges(self) -> None:
        """A responder who is also a member answers OK to an open incident: acknowledged."""
        actions = next_actions(POLICY, OPEN, ResponderAck(), T0, EVERYONE)
        assert actions == [SetState(State.acknowledged), StopChain(1), TellAllies("responder_on_it")]

    def test_responder_ok_stops_the_chain(self) -> None:
        """A responder's OK invalidates the step timer and tells the allies."""
        actions = next_actions(POLICY, self.ESCALATED, ResponderAck(), T0, EVERYONE)
        assert actions == [StopChain(2), TellAllies("responder_on_it")]
        after = replace(self.ESCALATED, version=2, responder_acked=True)
        stale = next_actions(POLICY, after, TimerFired(TimerKind.step_timeout, 1, 0, 0), T0, EVERYONE)
        assert stale == [Stale("the incident moved on since this timer was set")]


class TestAnswers:
    def test_first_ally_ok_tells_the_others_once(self) -> None:
        """The first OK acknowledges and tells the allies; a second OK does not spam them."""
        assert next_actions(POLICY, OPEN, AllyAck(), T0, EVERYONE) == [
            SetState(State.acknowledged),
            TellAllies("ally_going"),
        ]
        acked = replace(OPEN, state=State.acknowledged, ally_acked=True)
        assert next_actions(POLICY, acked, AllyAck(), T0, EVERYONE) == []

    def test_resolve_closes_the_loop(self) -> None:
        """KLAAR resolves, stops every timer, and everyone alerted hears the outcome."""
        assert next_actions(POLICY, OPEN, Resolve(), T0, EVERYONE) == [
            SetState(State.resolved),
            StopChain(1),
            TellAllies("outcome"),
        ]


@pytest.mark.parametrize(
    ("text", "urgent"),
    [
        ("Er is BRAND bij de flat", True),
        ("brånd!", True),
        ("Bel 112", True),
        ("man met een mes", True),
        ("brandweer is er al", False),
        ("messen slijpen", False),
        ("verdachte man", False),
        ("wapen.", True),
    ],
)
def test_urgent_keywords_are_whole_words(text: str, urgent: bool) -> None:
    """Keywords match whole words in any case, with or without accents; 'brandweer' is not 'brand'."""
    assert is_urgent(text, POLICY.urgent_keywords) is urgent


# Properties: drive a simulated incident with random events and a simulated clock.

EVENTS = st.sampled_from(
    ["signal", "urgent", "ally_ack", "responder_ack", "resolve", "timer", "bounce", "stale_timer"]
)


def _apply(incident: Incident, actions: list[object], timers: list[Schedule]) -> Incident:
    for action in actions:
        match action:
            case SetState(state=state):
                incident = replace(incident, state=state)
            case Page(round=r, step=s, version=v):
                incident = replace(incident, round=r, step=s, version=v)
            case StopChain(version=v):
                incident = replace(incident, version=v)
            case Exhausted(version=v):
                incident = replace(incident, version=v, exhausted=True)
            case Schedule():
                timers.append(action)
            case TellAllies(news="ally_going"):
                incident = replace(incident, ally_acked=True)
            case TellAllies(news="responder_on_it"):
                incident = replace(incident, responder_acked=True)
    return incident


@settings(max_examples=300)
@given(st.lists(EVENTS, max_size=25), st.frozensets(st.sampled_from([1, 2, 3])))
def test_invariants_hold_for_any_event_sequence(events: list[str], on_duty: frozenset[int]) -> None:
    """Never a page after resolve or a responder's OK; never an off-duty responder; steps in chain
    order; the coordinators hear at most once that the chain ran out."""
    incident, timers, now = OPEN, [], T0
    actions = next_actions(POLICY, incident, Opened(urgent=False), now, on_duty)
    incident = _apply(incident, actions, timers)
    paged_positions: list[tuple[int, int]] = []
    exhausted = 0
    reporters = 1
    for name in events:
        now += timedelta(seconds=61)
        event: object
        if name in ("signal", "urgent"):
            reporters += 1
            event = SignalAdded(reporters, name == "urgent")
        elif name == "timer" and timers:
            timer = timers.pop(0)
            event = TimerFired(timer.kind, timer.version, timer.round, timer.step)
        elif name == "stale_timer":
            event = TimerFired(
                TimerKind.step_timeout, incident.version - 1, incident.round or 0, incident.step or 0
            )
        elif name == "bounce" and incident.step is not None:
            event = StepFailed(incident.round or 0, incident.step)
        else:
            event = {"ally_ack": AllyAck(), "responder_ack": ResponderAck(), "resolve": Resolve()}.get(
                name, AllyAck()
            )
        before = incident
        actions = next_actions(POLICY, before, event, now, on_duty)  # type: ignore[arg-type]
        for page in pages(actions):
            assert before.state != State.resolved
            assert not before.responder_acked
            assert set(page.responder_ids) <= on_duty
            assert len(page.responder_ids) == len(set(page.responder_ids))
            if paged_positions:
                assert (page.round, page.step) > paged_positions[-1]
            paged_positions.append((page.round, page.step))
        if before.state == State.resolved:
            assert all(isinstance(a, Stale) for a in actions)
        exhausted += sum(isinstance(a, Exhausted) for a in actions)
        assert exhausted <= 1
        incident = _apply(incident, actions, timers)


def test_escalation_after_a_responder_ok_pages_nobody() -> None:
    """Found by the property test: a responder already on it is not paged again by a later threshold."""
    on_it = replace(OPEN, responder_acked=True, version=1)
    actions = next_actions(POLICY, on_it, SignalAdded(reporters=3, urgent=False), T0, EVERYONE)
    assert actions == [SetState(State.escalated, Trigger.threshold)]
