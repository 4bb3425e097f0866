"""Appending to and reading the hash-chained audit log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import audit
from ..auth import Actor, Principal
from .tables import audit_events as t

#: Taken by every appender on PostgreSQL, so the chain stays one line under concurrent writers.
AUDIT_LOCK = 0x61756474
#: Events read and checked at a time (about 10 ms of the event loop's time each).
_VERIFY_BATCH = 500


#: Where a write transaction keeps its audit events until it commits (see `store.db.write`).
PENDING = "alertnet.audit_pending"


async def append(
    conn: AsyncConnection,
    *,
    who: Principal | Actor,
    type: str,
    at: datetime,
    subject: str | None = None,
    neighbourhood_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Add an event to the caller's transaction; it is chained and written just before the commit.

    Writing all of a transaction's events at its very end keeps the chain's lock (SQLite's write
    lock is held anyway; on PostgreSQL an advisory lock) held for two statements, not the whole
    transaction, so concurrent writers in several processes do not queue behind each other.
    """
    pending: list[dict[str, Any]] | None = conn.info.get(PENDING)
    if pending is None:
        raise RuntimeError("audit events are written by a transaction opened with store.db.write")
    pending.append(
        {
            "at": at,
            "actor": who.actor,
            "actor_role": str(who.role),
            "type": type,
            "subject": subject,
            "neighbourhood_id": neighbourhood_id,
            "data": data or {},
        }
    )


async def flush(conn: AsyncConnection) -> None:
    """Chain and write the transaction's queued events (called by `store.db.write` before commit)."""
    pending: list[dict[str, Any]] = conn.info.get(PENDING) or []
    if not pending:
        return
    seq, prev_hash = await _head(conn)
    rows = []
    for event in pending:
        event = {"seq": seq, **event}
        digest = audit.chain_hash(prev_hash, event)
        rows.append({**event, "prev_hash": prev_hash, "hash": digest})
        seq, prev_hash = seq + 1, digest
    await conn.execute(_INSERT, rows)
    pending.clear()


_INSERT = t.insert()
_LOCK = sa.select(sa.func.pg_advisory_xact_lock(AUDIT_LOCK))
_HEAD = sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)


async def _head(conn: AsyncConnection) -> tuple[int, str]:
    """The next seq and the hash to link to, under the chain's lock until the transaction ends."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK)
    last = (await conn.execute(_HEAD)).first()
    return (last.seq + 1, last.hash) if last else (1, audit.GENESIS)


async def page(
    conn: AsyncConnection, *, after: int, limit: int, neighbourhood_id: int | None
) -> list[dict[str, Any]]:
    """Events after a seq, oldest first; only one neighbourhood's when it is given."""
    query = sa.select(t).where(t.c.seq > after).order_by(t.c.seq).limit(limit)
    if neighbourhood_id is not None:
        query = query.where(t.c.neighbourhood_id == neighbourhood_id)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def _all(conn: AsyncConnection) -> AsyncIterator[dict[str, Any]]:
    after = 0
    while True:
        rows = (
            await conn.execute(sa.select(t).where(t.c.seq > after).order_by(t.c.seq).limit(_VERIFY_BATCH))
        ).all()
        for row in rows:
            yield dict(row._mapping)
        if len(rows) < _VERIFY_BATCH:
            return
        after = rows[-1].seq
        # SQLite runs in the event loop's thread, so its reads never give the loop a turn: without
        # this, checking five years' chain (100,000 events, 2.3 s) held up every SMS meanwhile.
        await asyncio.sleep(0)


async def verify(
    conn: AsyncConnection, neighbourhood_id: int | None = None, anchor: audit.Anchor | None = None
) -> audit.Verdict:
    """Walk the whole chain in batches; stop at the first break. Counts only the given scope."""
    checker = audit.ChainChecker(neighbourhood_id, anchor)
    async for event in _all(conn):
        if not checker.feed(event):
            break
    return checker.verdict()
