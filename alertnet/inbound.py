"""One inbound SMS, start to finish, in the caller's transaction: claim, parse, act, reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from . import answers, commands, membership, messages, signals
from .auth import resident
from .commands import Ack, Help, Join, Leave, Resolve, SetLanguage, Signal, Start, Stop, Yes
from .schemas import MemberStatus
from .store import incidents as incident_store
from .store import signals as store

Row = dict[str, Any]
#: An unknown number gets the join instructions at most this often.
JOIN_HINT_EVERY_S = 24 * 3600


@dataclass(frozen=True)
class Sms:
    sid: str
    sender: str
    to: str
    body: str


@dataclass(frozen=True)
class Received:
    reply: str | None
    #: False for a retry or replay of a MessageSid we already handled: nothing was done again.
    fresh: bool
    command: str


async def receive(conn: AsyncConnection, sms: Sms, now: datetime) -> Received:
    """Handle an SMS exactly once per MessageSid; a retry gets the first answer again."""
    command = commands.parse(sms.body)
    fresh, stored = await store.claim_message(conn, sms.sid, now)
    if not fresh:
        return Received(stored, False, type(command).__name__.lower())
    reply = await _handle(conn, sms, command, now)
    await store.save_reply(conn, sms.sid, reply)
    return Received(reply, True, type(command).__name__.lower())


async def _handle(conn: AsyncConnection, sms: Sms, command: commands.Command, now: datetime) -> str | None:
    rows = await store.memberships(conn, sms.sender)
    lang = rows[0]["language"] if rows else commands.said_in(command) or messages.DEFAULT_LANGUAGE
    if isinstance(command, Stop):
        return await membership.stop(conn, sms.sender, rows, lang, now)
    if isinstance(command, Start):
        return await membership.start(conn, sms.sender, rows, lang, now)
    if await _silenced(conn, sms.sender, rows):
        if isinstance(command, Yes) and command.twilio_opt_in:
            # Twilio lifts its block on YES too, and tells the resident so: otherwise they would
            # believe they get alerts and get none.
            return await membership.start(conn, sms.sender, rows, lang, now)
        return None  # after STOP: nothing until START
    return await _dispatch(conn, sms, command, rows, lang, now)


async def _silenced(conn: AsyncConnection, phone: str, rows: list[Row]) -> bool:
    """Whether the number texted STOP and not START since: as a member, or as a number that is none."""
    if rows:
        return all(r["status"] == MemberStatus.opted_out for r in rows)
    return await store.opted_out(conn, phone)


async def _dispatch(
    conn: AsyncConnection, sms: Sms, command: commands.Command, rows: list[Row], lang: str, now: datetime
) -> str | None:
    # JOIN, LEAVE and HELP are answered each time: idempotent, so a second LEAVE says "no member".
    if (
        not rows
        and not isinstance(command, Join | Leave | Help)
        and not await _answers_as_responder(conn, sms, command)
    ):
        return await _stranger(conn, sms.sender, lang, now)
    match command:
        case Join(code=code, name=name, said_in=said_in):
            return await membership.join(conn, sms.sender, rows, code, name, lang, said_in, now)
        case Leave(code=code):
            return await membership.leave(conn, rows, code, lang, now)
        case Help():
            return await _help(conn, sms.sender, rows, lang)
        case SetLanguage(language=language):
            return await membership.set_language(conn, sms.sender, rows, language, now)
        case Yes(number=None):
            done = await membership.consent(conn, rows, now)
            return done or messages.render("nothing_to_confirm", lang)
        case Yes(number=int(number)):
            return await membership.approve(conn, rows, number, lang, now)
        case Ack(number=number, words=words) | Resolve(number=number, words=words):
            resolves = isinstance(command, Resolve)
            return await answers.answer(conn, sms.sender, rows, number, resolves, lang, now, words)
        case Signal(text=text):
            return await _signal(conn, sms, rows, text, lang, now)
    return None


async def _help(conn: AsyncConnection, phone: str, rows: list[Row], lang: str) -> str:
    """How it works, for whoever asks: a member, a responder (who answers OK and KLAAR), or a
    number in neither (who needs to know how to join)."""
    if rows:
        return messages.render("help", lang)
    responding = await incident_store.responders_by_phone(conn, phone)
    if responding:
        return messages.render("responder_help", responding[0]["language"])
    return messages.render("join_instructions", lang)


async def _answers_as_responder(conn: AsyncConnection, sms: Sms, command: commands.Command) -> bool:
    """A responder is in no group, but answers OK and KLAAR, and chooses their language."""
    return isinstance(command, Ack | Resolve | SetLanguage) and bool(
        await incident_store.responders_by_phone(conn, sms.sender)
    )


async def _stranger(conn: AsyncConnection, phone: str, lang: str, now: datetime) -> str | None:
    """A number in no group reaches nobody, and hears how to join at most once a day, whatever it
    texts (JOIN, LEAVE and HELP aside): a stranger cannot make the service answer without end."""
    hint = await store.claim_join_hint(conn, phone, now, JOIN_HINT_EVERY_S)
    return messages.render("join_instructions", lang) if hint else None


async def _signal(
    conn: AsyncConnection, sms: Sms, rows: list[Row], text: str, lang: str, now: datetime
) -> str | None:
    active = [r for r in rows if r["status"] == MemberStatus.active]
    if not active:
        return messages.render("still_pending", lang)
    if not text.strip():
        return messages.render("empty", lang)
    intakes = []
    # Groups are locked in one global order, so two senders in the same groups cannot deadlock.
    for row in sorted(active, key=lambda r: r["group_id"]):
        group = await store.lock_member_group(conn, row)
        if group is None:
            continue
        intakes.append(
            await signals.accept(
                conn,
                group=group,
                member=row,
                reporter_phone=sms.sender,
                text=text,
                channel="sms",
                urgent=False,
                now=now,
                who=resident(row["id"], row["role"]),
            )
        )
    return _signal_reply(intakes, lang)


def _signal_reply(intakes: list[signals.Intake], lang: str) -> str | None:
    if not intakes:
        return None
    first = intakes[0]
    if first.repeat:
        return messages.render("duplicate", lang, n=first.number)
    if first.limited:
        return messages.render("flood_limited", lang, n=first.number)
    count = sum(intake.recipients for intake in intakes)
    key = "signal_sent" if first.new_incident else "signal_joined"
    reply = messages.render(key, lang, n=first.number, count=count)
    return reply + messages.render("call_112", lang) if first.new_incident else reply
