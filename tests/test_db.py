"""The store's transactions on SQLite: statements in the loop's thread, readers never block writers."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from alertnet.store import db, tables


async def test_sqlite_runs_in_the_event_loops_thread(tmp_path: Path) -> None:
    # A thread hop per statement cost 0.2 ms each: a signal's 18 statements took 10 ms.
    engine = db.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    seen: list[int] = []

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _where(*_args: object) -> None:
        seen.append(threading.get_ident())

    try:
        await db.migrate(engine)
        async with db.write(engine) as conn:
            await conn.execute(sa.text("SELECT 1"))
        async with db.read(engine) as conn:
            await conn.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()
    assert engine.dialect.driver == "inloop"
    assert seen
    assert set(seen) == {threading.get_ident()}


async def test_an_open_read_does_not_hold_up_a_write(tmp_path: Path) -> None:
    # SQLite runs in the loop's thread: a reader holding the write lock across an await would
    # freeze the loop until busy_timeout (10 s) and then fail the writer.
    engine = db.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        await db.migrate(engine)
        reading = asyncio.Event()
        done = asyncio.Event()

        async def reader() -> None:
            async with db.read(engine) as conn:
                await conn.execute(sa.text("SELECT count(*) FROM groups"))
                reading.set()
                await done.wait()

        task = asyncio.create_task(reader())
        await reading.wait()
        async with asyncio.timeout(2), db.write(engine) as conn:
            await conn.execute(
                sa.insert(tables.neighbourhoods).values(
                    name="x", timezone="Europe/Amsterdam", language="nl", created_at=datetime.now(UTC)
                )
            )
        done.set()
        await task
        async with db.read(engine) as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM neighbourhoods"))).scalar() == 1
    finally:
        await engine.dispose()
