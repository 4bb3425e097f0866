"""The send pace in the database: every process books its sends, so the rate holds for all together."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .signals import insert_once
from .tables import send_pace

OUTBOX = "outbox"


async def next_free(conn: AsyncConnection, now: datetime, name: str = OUTBOX) -> datetime:
    """When the next send may go; locks the pace for this transaction (each process books in turn)."""
    query = sa.select(send_pace.c.next_at).where(send_pace.c.name == name).with_for_update()
    booked: datetime | None = await conn.scalar(query)
    if booked is None:
        await insert_once(conn, send_pace, {"name": name, "next_at": now})
        booked = await conn.scalar(query)
    return max(booked or now, now)


async def book(conn: AsyncConnection, start: datetime, seconds: float, name: str = OUTBOX) -> None:
    """Take `seconds` of sending time from `start` on."""
    until = start + timedelta(seconds=seconds)
    await conn.execute(send_pace.update().where(send_pace.c.name == name).values(next_at=until))


async def give_back(conn: AsyncConnection, seconds: float, now: datetime, name: str = OUTBOX) -> None:
    """Return booked sending time that went unused (jobs handed back), never before `now`."""
    booked = await next_free(conn, now, name)
    await book(conn, max(now, booked - timedelta(seconds=seconds)), 0, name)
