"""Escalation in the database: events become decisions (`escalation.next_actions`), applied in the
caller's transaction: incident state, responder pages, timers, news for the allies, audit events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from . import membership, messages, recipients, schedules
from .auth import SYSTEM, Actor, Principal
from .delivery import OPT_OUT_CODES, Purpose, Status
from .escalation import (
    Action,
    EventType,
    Exhausted,
    Incident,
    Opened,
    Page,
    Resolve,
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
    is_urgent,
    next_actions,
)
from .incidents import State
from .policy import EscalationPolicy
from .schedules import DutyWindow
from .store import audit, outbox, retention
from .store import incidents as store
from .store import signals as signal_store

Row = dict[str, Any]
Who = Principal | Actor


@dataclass(frozen=True)
class Context:
    """What an event brings beyond the decision itself."""

    who: Who = SYSTEM
    #: Left out of the news (the one who answered already knows).
    exclude_phone: str | None = None
    resolution: str | None = None
    outcome: str | None = None
    false_alarm: bool = False


def policy_of(incident: Row) -> EscalationPolicy:
    return EscalationPolicy.model_validate(incident["policy"])


def view(incident: Row) -> Incident:
    return Incident(
        state=State(incident["state"]),
        reporters=incident["reporters"],
        version=incident["version"],
        round=incident["escalation_round"],
        step=incident["escalation_step"],
        responder_acked=incident["responder_ack_at"] is not None,
        ally_acked=incident["acknowledged_at"] is not None,
        exhausted=incident["exhausted_at"] is not None,
    )


async def on_duty(
    conn: AsyncConnection, policy: EscalationPolicy, zone: str, now: datetime
) -> frozenset[int]:
    """The chain's responders on duty now, by their weekly schedules in the neighbourhood's zone."""
    found = await store.responders_by_id(conn, policy.responder_ids())
    return frozenset(rid for rid, row in found.items() if schedules.on_duty(_duty(row), zone, now))


def _duty(responder: Row) -> list[DutyWindow] | None:
    """A responder's weekly duty hours (None: always); none at all after their STOP."""
    if responder["opted_out_at"] is not None:
        return []
    raw = responder["schedule"]
    return None if raw is None else [DutyWindow.model_validate(window) for window in raw]


async def coverage_gaps(conn: AsyncConnection, policy: EscalationPolicy) -> list[dict[str, str]]:
    """The week's hours when no step of the chain has a responder on duty."""
    found = await store.responders_by_id(conn, policy.responder_ids())
    steps = [[_duty(found[rid]) for rid in step.responder_ids if rid in found] for step in policy.chain]
    return schedules.coverage_gaps(steps)


async def on_signal(
    conn: AsyncConnection,
    incident: Row,
    signal_id: int,
    *,
    new: bool,
    urgent: bool,
    text: str,
    now: datetime,
    who: Who,
) -> None:
    """Note the signal's time, count reporters, look for urgent words, and let the policy decide.

    `incident` is as `store.get(..., lock=True)` gives it.
    """
    policy = policy_of(incident)
    urgent = urgent or is_urgent(text, policy.urgent_keywords)
    values = {"last_signal_at": now, "urgent": incident["urgent"] or urgent}
    reporters = await store.note_signal(conn, incident["id"], signal_id, **values)
    incident.update(values, reporters=reporters)
    event = Opened(urgent) if new else SignalAdded(reporters, urgent)
    await decide(conn, incident, event, now, Context(who=who), policy)


async def decide(
    conn: AsyncConnection,
    incident: Row,
    event: EventType,
    now: datetime,
    context: Context,
    policy: EscalationPolicy | None = None,
) -> list[Action]:
    """Decide about one event and apply the actions; `incident` is kept current as they apply.

    `policy` is the incident's, when the caller has parsed it already.
    """
    if policy is None:
        policy = policy_of(incident)
    duty = await on_duty(conn, policy, incident["timezone"], now)
    actions = next_actions(policy, view(incident), event, now, duty)
    for action in actions:
        await _APPLY[type(action)](conn, incident, action, now, context)
    return actions


async def audit_incident(
    conn: AsyncConnection, incident: Row, kind: str, now: datetime, who: Who, **data: Any
) -> None:
    await audit.append(
        conn,
        who=who,
        type=kind,
        at=now,
        subject=f"incident:{incident['id']}",
        neighbourhood_id=incident["neighbourhood_id"],
        data={"number": incident["number"], **data},
    )


async def _set_state(
    conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context
) -> None:
    state: State = action.state
    values: Row = {"state": state}
    if state == State.escalated:
        values |= {"escalated_at": now, "escalation_trigger": action.trigger}
    elif state == State.acknowledged:
        values["acknowledged_at"] = incident["acknowledged_at"] or now
    elif state == State.resolved:
        values |= {
            "resolved_at": now,
            "resolution": context.resolution,
            "outcome": context.outcome,
            "false_alarm": context.false_alarm,
        }
    await store.update(conn, incident["id"], **values)
    incident.update(values)
    data: Row = {"trigger": str(action.trigger)} if action.trigger else {}
    if state == State.resolved:
        data = {"resolution": context.resolution, "false_alarm": context.false_alarm}
    await audit_incident(conn, incident, f"incident.{state}", now, context.who, **data)


async def _page(conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context) -> None:
    page: Page = action
    found = await store.responders_by_id(conn, set(page.responder_ids))
    signals = await store.signal_rows(conn, incident["id"])
    caller = next((s["reporter_phone"] for s in signals if s["reporter_phone"]), None)
    texts = [s["text"] for s in signals]
    items = [
        outbox.NewDelivery(
            to=found[rid]["phone"],
            purpose=Purpose.escalation,
            incident_id=incident["id"],
            group_id=incident["group_id"],
            responder_id=rid,
            escalation_round=page.round,
            escalation_step=page.step,
            body=messages.escalation(
                found[rid]["language"],
                group=incident["group_name"],
                number=incident["number"],
                reporters=incident["reporters"],
                texts=texts,
                caller=caller if incident["share_reporter_phone"] else None,
            ),
        )
        for rid in page.responder_ids
        if rid in found
    ]
    await outbox.enqueue(conn, items, now)
    moved = {"version": page.version, "escalation_round": page.round, "escalation_step": page.step}
    await store.update(conn, incident["id"], **moved)
    incident.update(moved)
    await audit_incident(
        conn,
        incident,
        "escalation.paged",
        now,
        SYSTEM,
        round=page.round,
        step=page.step,
        responder_ids=list(page.responder_ids),
    )


async def _skip(conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context) -> None:
    skip: Skip = action
    await audit_incident(
        conn,
        incident,
        "escalation.skipped",
        now,
        SYSTEM,
        round=skip.round,
        step=skip.step,
        reason="nobody on duty",
    )


async def _schedule_timer(
    conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context
) -> None:
    timer: Schedule = action
    await store.add_timer(
        conn,
        incident["id"],
        kind=timer.kind,
        due_at=timer.due_at,
        version=timer.version,
        round=timer.round,
        step=timer.step,
    )


async def _exhausted(
    conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context
) -> None:
    done: Exhausted = action
    await store.update(conn, incident["id"], version=done.version, exhausted_at=now)
    incident.update(version=done.version, exhausted_at=now)
    coordinators = recipients.coordinators(await signal_store.group_members(conn, incident["group_id"]))
    await _send(
        conn, incident, "nobody_answered", [_as_recipient(c) for c in coordinators], Purpose.notice, now
    )
    await audit_incident(
        conn, incident, "escalation.exhausted", now, SYSTEM, coordinators_told=len(coordinators)
    )


async def _stop_chain(
    conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context
) -> None:
    stop: StopChain = action
    await store.update(conn, incident["id"], version=stop.version)
    incident["version"] = stop.version


def _as_recipient(member: Mapping[str, Any]) -> Row:
    return {
        "recipient_phone": member["phone"],
        "member_id": member["id"],
        "responder_id": None,
        "language": member["language"],
    }


async def _tell_allies(
    conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context
) -> None:
    news: str = action.news
    people = await store.alerted(conn, incident["id"], (Purpose.fanout,))
    if news == "ally_going" and incident["acknowledged_at"] is None:
        await store.update(conn, incident["id"], acknowledged_at=now)
        incident["acknowledged_at"] = now
    people += await store.reporting_members(conn, incident["id"])
    if news == "outcome":
        people += await store.alerted(conn, incident["id"], (Purpose.escalation,))
    if context.resolution == "group_deleted":
        # The members' numbers are erased with the group, in this transaction: only the
        # responders can still be told (their chain stops); the coordinator tells the allies.
        people = [p for p in people if p["responder_id"] is not None]
    unique = {p["recipient_phone"]: p for p in people if p["recipient_phone"] != context.exclude_phone}
    await _send(conn, incident, news, list(unique.values()), Purpose.update, now, context)


#: What the people alerted hear when the system closed an incident.
_OUTCOMES = {"expired": "outcome_expired", "group_deleted": "outcome_group_deleted"}


def _outcome_text(lang: str, context: Context) -> str:
    if context.outcome:
        return context.outcome.rstrip(".") + "."
    if context.false_alarm:
        return messages.render("outcome_false_alarm", lang)
    return messages.render(_OUTCOMES.get(context.resolution or "", "outcome_default"), lang)


async def _send(
    conn: AsyncConnection,
    incident: Row,
    key: str,
    people: list[Row],
    purpose: Purpose,
    now: datetime,
    context: Context | None = None,
) -> None:
    def body(lang: str) -> str:
        outcome = _outcome_text(lang, context or Context()) if key == "outcome" else ""
        return messages.render(key, lang, group=incident["group_name"], n=incident["number"], outcome=outcome)

    await outbox.enqueue(
        conn,
        [
            outbox.NewDelivery(
                to=p["recipient_phone"],
                body=body(p["language"]),
                purpose=purpose,
                incident_id=incident["id"],
                group_id=incident["group_id"],
                member_id=p["member_id"],
                responder_id=p["responder_id"],
            )
            for p in people
        ],
        now,
    )


async def _stale(conn: AsyncConnection, incident: Row, action: Any, now: datetime, context: Context) -> None:
    stale: Stale = action
    await audit_incident(conn, incident, "escalation.stale_event", now, SYSTEM, reason=stale.reason)


_APPLY: dict[type, Callable[[AsyncConnection, Row, Any, datetime, Context], Awaitable[None]]] = {
    SetState: _set_state,
    Page: _page,
    Skip: _skip,
    Schedule: _schedule_timer,
    Exhausted: _exhausted,
    StopChain: _stop_chain,
    TellAllies: _tell_allies,
    Stale: _stale,
}


# Events the workers report


async def fire_timer(conn: AsyncConnection, timer: Row, now: datetime) -> bool:
    """A due timer: mark it fired, then decide, in one transaction. False when it had fired
    already: a worker whose lease ran out while it fired may find it claimed again by another,
    and marking first (a row lock on PostgreSQL) lets only one of them decide."""
    if not await store.mark_fired(conn, timer["id"], now):
        return False
    incident = await store.get(conn, timer["incident_id"], lock=True) if timer["incident_id"] else None
    if incident is not None:
        event = TimerFired(TimerKind(timer["kind"]), timer["version"], timer["round"], timer["step"])
        await decide(conn, incident, event, now, Context())
    return True


async def delivery_failed(
    conn: AsyncConnection, delivery_id: int, phone: str, code: str | None, now: datetime
) -> None:
    """A message failed for good: a carrier STOP opts the member out; a bounced page moves the chain on."""
    if code in OPT_OUT_CODES and not phone.startswith(retention.ERASED):  # erased: nobody to opt out
        await membership.carrier_opt_out(conn, phone, now)
    row = await outbox.get_delivery(conn, delivery_id)
    if row is None or row["purpose"] != Purpose.escalation or row["incident_id"] is None:
        return
    # The incident first: two bounces of one step committing at once each saw only their own.
    incident = await store.get(conn, row["incident_id"], lock=True)
    statuses = await store.step_deliveries(
        conn, row["incident_id"], row["escalation_round"], row["escalation_step"]
    )
    if incident is not None and statuses and all(s in (Status.failed, Status.undelivered) for s in statuses):
        await decide(
            conn, incident, StepFailed(row["escalation_round"], row["escalation_step"]), now, Context()
        )


async def close(
    conn: AsyncConnection, incident_id: int, now: datetime, resolution: str, who: Who = SYSTEM
) -> None:
    """Resolve an incident that nobody closed (silent too long, its group deleted); everyone alerted
    hears why, and its chain stops."""
    incident = await store.get(conn, incident_id, lock=True)
    if incident is not None and incident["state"] != State.resolved:
        await decide(conn, incident, Resolve(), now, Context(who=who, resolution=resolution))
