"""Claiming work under a lease: each due timer and outbox job goes to one claimer, never more than asked."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alertnet.delivery import Purpose
from alertnet.store import claims, db, outbox, tables
from alertnet.store import incidents as incident_store

CLAIMERS = 8
LIMIT = 5
ROWS = 400


async def _claim_all(url: str, claim: Callable[[Any, datetime], Awaitable[list[int]]]) -> list[list[int]]:
    """Claimers at once, each on a connection of its own, until nothing is left."""
    engine = db.create_engine(url)
    batches: list[list[int]] = []

    async def claimer() -> None:
        while True:
            async with db.write(engine) as conn:
                got = await claim(conn, datetime.now(UTC))
            if not got:
                return
            batches.append(got)

    try:
        await asyncio.gather(*(claimer() for _ in range(CLAIMERS)))
    finally:
        await engine.dispose()
    return batches


def test_the_pick_runs_once() -> None:
    """As a plain IN (subquery ... LIMIT n FOR UPDATE SKIP LOCKED), a PostgreSQL plan that runs the
    subquery again for each candidate row claims more than n: the pick is a MATERIALIZED CTE."""
    due = sa.select(tables.timers.c.id).limit(LIMIT).with_for_update(skip_locked=True)
    query = tables.timers.update().where(claims.picked(tables.timers, due)).values(lease_until=None)
    sql = str(query.compile(dialect=postgresql.dialect()))
    assert sql.startswith("WITH timers_due AS MATERIALIZED")
    assert "FOR UPDATE SKIP LOCKED" in sql


def _check(batches: list[list[int]]) -> None:
    assert max(len(batch) for batch in batches) <= LIMIT
    claimed = Counter(item for batch in batches for item in batch)
    assert len(claimed) == ROWS
    assert set(claimed.values()) == {1}


async def test_each_timer_once_and_no_more_than_asked(database_url: str) -> None:
    """Eight workers claim at once (on PostgreSQL each skips what another locked): every timer is
    claimed once, and no claim takes more than its limit."""
    engine = db.create_engine(database_url)
    due = datetime.now(UTC) - timedelta(seconds=1)
    async with db.write(engine) as conn:
        await conn.execute(tables.timers.insert(), [{"kind": "ack_timeout", "due_at": due}] * ROWS)
    await engine.dispose()

    async def claim(conn: Any, now: datetime) -> list[int]:
        return [row["id"] for row in await incident_store.claim_due_timers(conn, now, LIMIT, 60)]

    _check(await _claim_all(database_url, claim))


async def test_each_outbox_job_once_and_no_more_than_asked(database_url: str) -> None:
    engine = db.create_engine(database_url)
    now = datetime.now(UTC) - timedelta(seconds=1)
    items = [outbox.NewDelivery(f"+316{n:08d}", "test", Purpose.notice) for n in range(ROWS)]
    async with db.write(engine) as conn:
        await outbox.enqueue(conn, items, now)
        assert await conn.scalar(sa.select(sa.func.count()).select_from(tables.outbox)) == ROWS
    await engine.dispose()

    async def claim(conn: Any, now: datetime) -> list[int]:
        return [job.id for job in await outbox.claim_due_jobs(conn, now, LIMIT, 60)]

    _check(await _claim_all(database_url, claim))
