"""Erasing phone numbers that are no longer needed: of members who left, and after the retention period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import deliveries, outbox, signals

#: What an erased recipient number reads as.
ERASED = ""


async def erase_members(conn: AsyncConnection, member_ids: Sequence[int]) -> None:
    """Forget the numbers of members who left or were removed, on their signals and messages."""
    if not member_ids:
        return
    await conn.execute(
        signals.update().where(signals.c.member_id.in_(member_ids)).values(reporter_phone=None)
    )
    await conn.execute(
        deliveries.update().where(deliveries.c.member_id.in_(member_ids)).values(recipient_phone=ERASED)
    )


async def erase_older_than(conn: AsyncConnection, before: datetime) -> int:
    """Forget the numbers on signals and messages older than the retention period; returns how many."""
    pending = sa.select(outbox.c.delivery_id)
    done = await conn.execute(
        deliveries.update()
        .where(
            deliveries.c.created_at < before,
            deliveries.c.recipient_phone != ERASED,
            deliveries.c.id.not_in(pending),
        )
        .values(recipient_phone=ERASED)
    )
    reported = await conn.execute(
        signals.update()
        .where(signals.c.received_at < before, signals.c.reporter_phone.is_not(None))
        .values(reporter_phone=None)
    )
    return (done.rowcount or 0) + (reported.rowcount or 0)
