"""Erasing phone numbers that are no longer needed: of members who left, and after the retention period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..delivery import Purpose
from ..phones import mask_in_text
from .tables import deliveries, outbox, signals

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


async def erase_older_than(conn: AsyncConnection, before: datetime) -> int:
    """Forget the numbers on signals and messages older than the retention period; returns how many."""
    pending = sa.select(outbox.c.delivery_id)
    old = (deliveries.c.created_at < before, _NOT_ERASED, deliveries.c.id.not_in(pending))
    await _mask_pages(conn, *old)
    who = _erased(("m", deliveries.c.member_id), ("r", deliveries.c.responder_id), ("d", deliveries.c.id))
    done = await conn.execute(deliveries.update().where(*old).values(recipient_phone=who))
    reported = await conn.execute(
        signals.update()
        .where(signals.c.received_at < before, signals.c.reporter_phone.is_not(None))
        .values(reporter_phone=None)
    )
    return (done.rowcount or 0) + (reported.rowcount or 0)


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
