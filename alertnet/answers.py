"""Answers to an incident: OK and KLAAR by SMS, and resolving from the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from . import messages
from .auth import Actor, resident
from .commands import fold
from .engine import Context, Who, decide
from .engine import audit_incident as _audit
from .escalation import AllyAck, Resolve, ResponderAck
from .incidents import State
from .store import incidents as store

Row = dict[str, Any]


async def resolve(
    conn: AsyncConnection,
    incident: Row,
    now: datetime,
    *,
    who: Who,
    resolution: str,
    exclude_phone: str | None = None,
    outcome: str | None = None,
    false_alarm: bool = False,
    **answered_by: Any,
) -> None:
    await store.add_answer(conn, incident["id"], "resolve", now, **answered_by)
    context = Context(
        who=who, exclude_phone=exclude_phone, resolution=resolution, outcome=outcome, false_alarm=false_alarm
    )
    await decide(conn, incident, Resolve(), now, context)


async def answer(
    conn: AsyncConnection,
    phone: str,
    memberships: list[Row],
    number: int | None,
    resolving: bool,
    lang: str,
    now: datetime,
    words: tuple[str, ...] = (),
) -> str:
    """OK or KLAAR by SMS, about #number or the latest open incident the sender was alerted about.

    Every group numbers its own incidents: when two open ones the sender may answer have the
    number, `words` must name the group, or the sender is asked which.
    """
    active = [m for m in memberships if m["status"] == "active"]
    responders = await store.responders_by_phone(conn, phone)
    hoods = {r["neighbourhood_id"] for r in responders}
    groups = {m["group_id"] for m in active}
    candidates = [
        row
        for row in await store.answerable(conn, phone, [m["id"] for m in active], number)
        if row["group_id"] in groups or row["neighbourhood_id"] in hoods
    ]
    open_ = [row for row in candidates if row["state"] != State.resolved]
    if number is not None and len(open_) > 1:
        open_ = _named(open_, words) or open_
        if len(open_) > 1:
            word = "KLAAR" if resolving else "OK"
            return messages.render(
                "which_incident",
                lang,
                n=number,
                groups=", ".join(row["group_name"] for row in open_),
                example=f"{word} {number} {_distinct_word(open_)}",
            )
    found = open_[0] if open_ else (candidates[0] if candidates else None)
    if found is None:
        return messages.render("no_incident", lang)
    if found["state"] == State.resolved:
        return messages.render("already_resolved", lang, n=found["number"])
    # One signal from a member of several groups opens an incident in each at the same moment, and
    # pages the buurtregisseur for each: a bare OK or KLAAR answers that one situation everywhere
    # (answering one, the other's chain would page on). In id order: two such answers at once
    # lock the incidents in the same order.
    same = [row for row in open_ if number is None and row["last_signal_at"] == found["last_signal_at"]]
    replies = []
    for row in sorted(same or [found], key=lambda row: row["id"]):
        replies.append(await _answer_one(conn, row, phone, responders, active, resolving, lang, now))
    return " ".join(dict.fromkeys(replies))  # "#1" in two groups: one thanks


async def _answer_one(
    conn: AsyncConnection,
    found: Row,
    phone: str,
    responders: list[Row],
    active: list[Row],
    resolving: bool,
    lang: str,
    now: datetime,
) -> str:
    incident = await store.get(conn, found["id"], lock=True)
    assert incident is not None
    if incident["state"] == State.resolved:  # closed by someone else while we waited for the lock
        return messages.render("already_resolved", lang, n=incident["number"])
    responder = next((r for r in responders if r["neighbourhood_id"] == incident["neighbourhood_id"]), None)
    member = next((m for m in active if m["group_id"] == incident["group_id"]), None)
    if resolving:
        return await _resolve_by_sms(conn, incident, phone, responder, member, lang, now)
    if responder is not None:
        return await _responder_ok(conn, incident, responder, lang, now)
    if member is None:
        return messages.render("no_incident", lang)
    if await store.reported_by(conn, incident["id"], member["id"]):
        # "OK" from the reporter is no neighbour going to look: it must not stop the ack time-out.
        return messages.render("reporter_ok", member["language"], n=incident["number"])
    await store.add_answer(conn, incident["id"], "ally_ack", now, member_id=member["id"])
    who = resident(member["id"], member["role"])
    await decide(conn, incident, AllyAck(), now, Context(who=who, exclude_phone=phone))
    return messages.render("ack_thanks", member["language"], n=incident["number"])


def _named(incidents: list[Row], words: tuple[str, ...]) -> list[Row]:
    """The incidents whose group name has one of `words` (any case and accents)."""
    wanted = {fold(word) for word in words}
    return [row for row in incidents if wanted & set(fold(row["group_name"]).split())]


def _distinct_word(incidents: list[Row]) -> str:
    """A word of the first group's name that names it alone, for the example in the question."""
    others = {word for row in incidents[1:] for word in fold(row["group_name"]).split()}
    words: list[str] = incidents[0]["group_name"].split()
    return next((word for word in reversed(words) if fold(word) not in others), words[-1])


async def _responder_ok(
    conn: AsyncConnection, incident: Row, responder: Row, lang: str, now: datetime
) -> str:
    await store.add_answer(conn, incident["id"], "responder_ack", now, responder_id=responder["id"])
    who = Actor(f"responder:{responder['id']}", "responder")
    await decide(conn, incident, ResponderAck(), now, Context(who=who, exclude_phone=responder["phone"]))
    if incident["responder_ack_at"] is None:
        await store.update(conn, incident["id"], responder_ack_at=now)
        await _audit(conn, incident, "incident.responder_ack", now, who)
    return messages.render("responder_thanks", responder["language"], n=incident["number"])


async def _resolve_by_sms(
    conn: AsyncConnection,
    incident: Row,
    phone: str,
    responder: Row | None,
    member: Row | None,
    lang: str,
    now: datetime,
) -> str:
    if responder is not None:
        who: Who = Actor(f"responder:{responder['id']}", "responder")
        by: Row = {"responder_id": responder["id"]}
        lang = responder["language"]
    elif member is not None and member["role"] == "coordinator":
        who, by = resident(member["id"], "coordinator"), {"member_id": member["id"]}
    else:
        return messages.render("not_allowed_to_resolve", lang)
    await resolve(conn, incident, now, who=who, resolution="klaar", exclude_phone=phone, **by)
    return messages.render("resolved_thanks", lang, n=incident["number"])
