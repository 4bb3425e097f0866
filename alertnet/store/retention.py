"""Erasing phone numbers that are no longer needed: of members who left, and after the retention period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..delivery import Purpose
from ..phones import mask_in_text
from .signals import insert_once
from .tables import deliveries, outbox, signals, sweeps

#: An erased recipient number reads as this prefix and who it was ("~m12": member 12; "~r3":
#: responder 3; "~d40": delivery 40), so an incident still counts the people it alerted.
ERASED = "~"
_NOT_ERASED = deliveries.c.recipient_phone.not_like(ERASED + "%")


def _erased(*keys: tuple[str, sa.ColumnElement[int]]) -> sa.ColumnElement[str]:
    """The first of the keys that is set, tagged ("~m12")."""
    tagged = [sa.literal(ERASED + tag) + sa.cast(key, sa.String) for tag, key in keys]
    return tagged[0] if len(tagged) == 1 else sa.func.coalesce(*tagged)


async def erase_members(conn: AsyncConnection, member_ids: Sequence[int]) -> None:
    """Forget the numbers of members who left or were removed, on their signals and messages, and
    in the pages about what they reported."""
    if not member_ids:
        return
    reported = sa.select(signals.c.incident_id).where(signals.c.member_id.in_(member_ids))
    await _mask_pages(conn, deliveries.c.incident_id.in_(reported))
    await conn.execute(
        signals.update().where(signals.c.member_id.in_(member_ids)).values(reporter_phone=None)
    )
    await conn.execute(
        deliveries.update()
        .where(deliveries.c.member_id.in_(member_ids), _NOT_ERASED)
        .values(recipient_phone=_erased(("m", deliveries.c.member_id)))
    )


#: How far before the retention boundary a sweep marks its rows done. On PostgreSQL a row is
#: given its id when written and seen by others when committed: no row from a day before the
#: boundary can still be on its way, so every id below the mark has been seen.
SETTLED = timedelta(days=1)


async def erase_older_than(conn: AsyncConnection, before: datetime) -> int:
    """Forget the numbers on signals and messages older than the retention period; returns how
    many. Each sweep goes on from where the last one ended (`sweeps`), up to the first row that is
    not old yet: it reads about a day's rows, not the whole history."""
    done = {name: after for name, after in (await conn.execute(sa.select(sweeps))).all()}
    messages, messages_done = await _sweep(
        conn, deliveries.c.id, deliveries.c.created_at, done.get("deliveries", 0), before
    )
    reports, reports_done = await _sweep(
        conn, signals.c.id, signals.c.received_at, done.get("signals", 0), before
    )
    pending = sa.select(outbox.c.delivery_id)
    old = (messages, deliveries.c.created_at < before, _NOT_ERASED, deliveries.c.id.not_in(pending))
    await _mask_pages(conn, *old)
    who = _erased(("m", deliveries.c.member_id), ("r", deliveries.c.responder_id), ("d", deliveries.c.id))
    erased = await conn.execute(deliveries.update().where(*old).values(recipient_phone=who))
    reported = await conn.execute(
        signals.update()
        .where(reports, signals.c.received_at < before, signals.c.reporter_phone.is_not(None))
        .values(reporter_phone=None)
    )
    # A message still queued keeps its number until it has gone: the next sweep reads it again.
    queued = await conn.scalar(sa.select(sa.func.min(outbox.c.delivery_id)))
    if queued is not None:
        messages_done = min(messages_done, max(done.get("deliveries", 0), int(queued) - 1))
    for name, after in (("deliveries", messages_done), ("signals", reports_done)):
        if not await insert_once(conn, sweeps, {"name": name, "after_id": after}):
            await conn.execute(sweeps.update().where(sweeps.c.name == name).values(after_id=after))
    return (erased.rowcount or 0) + (reported.rowcount or 0)


async def _sweep(
    conn: AsyncConnection, key: sa.Column[int], at: sa.Column[datetime], swept: int, before: datetime
) -> tuple[sa.ColumnElement[bool], int]:
    """The rows of a table to read (after `swept`, before the first row written at `before` or
    later), and the id up to which they are done (short of the first row within SETTLED of it)."""

    async def first(after: int, since: datetime) -> int | None:
        # In id order, stopping at the first match: the rows read are those this sweep erases.
        query = sa.select(key).where(key > after, at >= since).order_by(key).limit(1)
        found: int | None = await conn.scalar(query)
        return found

    settled = await first(swept, before - SETTLED)
    if settled is None:  # every row after `swept` is old, and long settled
        last = await conn.scalar(sa.select(sa.func.max(key)))
        return key > swept, swept if last is None else int(last)
    young = await first(settled - 1, before)  # read on from there, not again from `swept`
    rows = key > swept if young is None else key.between(swept + 1, young - 1)
    return rows, settled - 1


async def _mask_pages(conn: AsyncConnection, *where: sa.ColumnElement[bool]) -> None:
    """A page carries the reporter's number for the responder (`share_reporter_phone`): masked once
    the number must go, with any other number in the texts it quotes."""
    query = sa.select(deliveries.c.id, deliveries.c.body).where(
        deliveries.c.purpose == Purpose.escalation, *where
    )
    for delivery_id, body in (await conn.execute(query)).all():
        masked = mask_in_text(body)
        if masked != body:
            await conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(body=masked))
