"""The store's transactions on SQLite: statements in the loop's thread, readers never block writers."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util.concurrency import in_greenlet

from alertnet.delivery import Priority, Purpose
from alertnet.store import db, outbox, sqlite, tables

from .loop import turns_while, until


async def test_sqlite_runs_in_the_event_loops_thread(tmp_path: Path) -> None:
    # A thread hop per statement cost 0.2 ms each: a signal's 18 statements took 10 ms. A greenlet
    # per statement (SQLAlchemy's async way) cost another 0.02 ms each.
    engine = db.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    seen: list[tuple[int, bool]] = []

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _where(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement == "SELECT 1":
            seen.append((threading.get_ident(), in_greenlet()))

    try:
        await db.migrate(engine)
        async with db.write(engine) as conn:
            await conn.execute(sa.text("SELECT 1"))
        async with db.read(engine) as conn:
            await conn.exec_driver_sql("SELECT 1")
    finally:
        await engine.dispose()
    assert engine.dialect.driver == "inloop"
    assert seen == [(threading.get_ident(), False)] * 2


async def test_a_write_takes_sqlites_write_lock_before_its_first_statement(tmp_path: Path) -> None:
    # Two writers that both read first would otherwise both hold read locks, and the second to
    # write would fail with SQLITE_BUSY at once instead of waiting its turn.
    path = tmp_path / "a.db"
    engine = db.create_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)

    def other_writer_may_begin() -> bool:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        other.execute("ROLLBACK")
        return True

    try:
        await db.migrate(engine)
        async with db.read(engine) as conn:
            settings = [
                await conn.scalar(sa.text(f"PRAGMA {name}")) for name in ("journal_mode", "foreign_keys")
            ]
            assert other_writer_may_begin()
        async with db.write(engine) as conn:
            assert not other_writer_may_begin()
        assert other_writer_may_begin()
    finally:
        other.close()
        await engine.dispose()
    assert settings == ["wal", 1]


async def test_a_serving_process_checkpoints_the_wal_on_a_thread_of_its_own(tmp_path: Path) -> None:
    # Left to SQLite, the commit that takes the WAL past its threshold copies it into the database
    # file and fsyncs it in the event loop's thread. The migration's WAL is far below the
    # threshold: only the checkpointing thread moves it into the file.
    path = tmp_path / "a.db"
    engine = db.create_engine(f"sqlite:///{path}")
    try:
        await db.migrate(engine)
        before = path.stat().st_size
        with sqlite.checkpointing(str(path), every_s=0.01) as thread:
            await until(lambda: path.stat().st_size > before, timeout_s=5)
        assert not thread.is_alive()
        async with db.write(engine) as conn:
            assert await conn.scalar(sa.text("PRAGMA wal_autocheckpoint")) == sqlite.AUTOCHECKPOINT_PAGES
    finally:
        await engine.dispose()


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
        async with asyncio.timeout(5), db.write(engine) as conn:  # not the 10 s busy timeout
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


async def _neighbourhood(conn: AsyncConnection, name: str) -> int:
    values = {"name": name, "timezone": "Europe/Amsterdam", "language": "nl", "created_at": datetime.now(UTC)}
    return int(
        (await conn.execute(sa.insert(tables.neighbourhoods).values(**values))).inserted_primary_key[0]
    )


async def _names(engine: AsyncEngine) -> list[str]:
    async with db.read(engine) as conn:
        query = sa.select(tables.neighbourhoods.c.name).order_by(tables.neighbourhoods.c.id)
        return list((await conn.execute(query)).scalars())


async def test_units_that_queue_up_share_one_transaction(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    begins: list[str] = []

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _count(_conn: object) -> None:
        begins.append("begin")

    sizes: list[int] = []
    db.watch_batches(engine, sizes.append)
    try:
        await db.migrate(engine)
        begins.clear()
        names = [f"n{i}" for i in range(20)]
        ids = await asyncio.gather(
            *(db.write_together(engine, lambda conn, name=name: _neighbourhood(conn, name)) for name in names)
        )
        assert await _names(engine) == names  # in arrival order
        assert ids == sorted(ids)
        assert len(set(ids)) == 20  # each caller got its own unit's answer
        assert len(begins) <= 3  # the first unit alone, then the rest together (and one read)
        assert sum(sizes) == 20  # what /metrics shows as alertnet_db_units_per_transaction
        assert max(sizes) >= 19
    finally:
        await engine.dispose()


async def test_a_failing_unit_costs_the_others_nothing(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'a.db'}")

    async def broken(conn: AsyncConnection) -> int:
        await _neighbourhood(conn, "half-written")
        raise RuntimeError("this unit fails")

    try:
        await db.migrate(engine)
        units = [lambda conn, i=i: _neighbourhood(conn, f"n{i}") for i in range(6)]
        units.insert(3, broken)
        results = await asyncio.gather(
            *(db.write_together(engine, unit) for unit in units), return_exceptions=True
        )
        assert isinstance(results[3], RuntimeError)
        assert all(isinstance(result, int) for i, result in enumerate(results) if i != 3)
        assert await _names(engine) == [f"n{i}" for i in range(6)]
    finally:
        await engine.dispose()


async def test_enqueue_gives_each_delivery_one_job(database_url: str) -> None:
    """Deliveries of two purposes, after others: each delivery has exactly one job, at its priority."""
    engine = db.create_engine(database_url)
    now = datetime.now(UTC)

    def items(batch: int, purpose: Purpose, n: int) -> list[outbox.NewDelivery]:
        return [
            outbox.NewDelivery(to=f"+3161000{k:04d}", body=f"{batch} {purpose} {k}", purpose=purpose)
            for k in range(n)
        ]

    try:
        async with db.write(engine) as conn:
            await outbox.enqueue(conn, items(1, Purpose.fanout, 3), now)
        async with db.write(engine) as conn:
            await outbox.enqueue(conn, items(2, Purpose.fanout, 4) + items(2, Purpose.escalation, 2), now)
        async with db.read(engine) as conn:
            query = sa.select(tables.deliveries.c.body, tables.outbox.c.priority).outerjoin(
                tables.outbox, tables.outbox.c.delivery_id == tables.deliveries.c.id
            )
            jobs = sorted(tuple(row) for row in await conn.execute(query))
    finally:
        await engine.dispose()
    made = [(1, Purpose.fanout, 3), (2, Purpose.fanout, 4), (2, Purpose.escalation, 2)]
    assert jobs == sorted((f"{b} {p} {k}", Priority[p]) for b, p, n in made for k in range(n))


async def test_the_migrations_build_the_schema_the_code_declares(database_url: str) -> None:
    # store/tables.py is what the code relies on; the migrations are what a deployment has.
    engine = db.create_engine(database_url)
    try:
        async with db.read(engine) as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), tables.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


def test_timestamps_bound_again_are_converted_once_and_right() -> None:
    # Bound values are remembered one at a time, per column: the next value must never get the last's.
    noon = datetime(2026, 11, 25, 12, tzinfo=UTC)
    later = noon + timedelta(seconds=1)
    amsterdam = noon.astimezone(ZoneInfo("Europe/Amsterdam"))
    on_sqlite = sqlite_dialect.dialect()
    bind = tables.UTCDateTime().dialect_impl(on_sqlite).bind_processor(on_sqlite)
    assert bind is not None
    got = [bind(noon), bind(noon), bind(later), bind(amsterdam), bind(None), bind(None), bind(noon)]
    assert got == [
        "2026-11-25 12:00:00.000000",
        "2026-11-25 12:00:00.000000",
        "2026-11-25 12:00:01.000000",
        "2026-11-25 12:00:00.000000",
        None,
        None,
        "2026-11-25 12:00:00.000000",
    ]
    for _ in range(2):
        with pytest.raises(ValueError, match="naive"):
            bind(datetime(2026, 11, 25, 12))
    on_postgresql = postgresql.asyncpg.dialect()
    bind = tables.UTCDateTime().dialect_impl(on_postgresql).bind_processor(on_postgresql)
    assert bind is not None
    assert [bind(amsterdam), bind(amsterdam), bind(later)] == [noon, noon, later]


@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.timezones()
    )
)
def test_sqlite_timestamps_are_written_and_read_as_sqlalchemy_does(moment: datetime) -> None:
    """UTCDateTime's one-step SQLite text (isoformat, fromisoformat) is SQLAlchemy's DATETIME format."""
    on_sqlite = sqlite_dialect.dialect()
    ours = tables.UTCDateTime().dialect_impl(on_sqlite)
    stock = sa.DateTime().dialect_impl(on_sqlite)
    stock_bind, stock_read = stock.bind_processor(on_sqlite), stock.result_processor(on_sqlite, None)
    bind, read = ours.bind_processor(on_sqlite), ours.result_processor(on_sqlite, None)
    assert bind is not None
    assert read is not None
    assert stock_bind is not None
    assert stock_read is not None
    utc = moment.astimezone(UTC)
    text = bind(moment)
    assert text == stock_bind(utc.replace(tzinfo=None))
    assert read(text) == utc == stock_read(text).replace(tzinfo=UTC)
    for shorter in (text[:19], text[:10]):  # what raw SQL may have written: no fraction, a date
        assert read(shorter) == stock_read(shorter).replace(tzinfo=UTC)


async def test_a_long_read_aside_leaves_the_event_loop_free(database_url: str) -> None:
    """Statistics over years take the database a while; SQLite runs in the loop's thread, so
    `read_aside` moves such a read off it, and the service goes on meanwhile."""
    engine = db.create_engine(database_url)
    count = sa.text(
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000)"
        " SELECT count(*) FROM c"
    )

    async def long_read(conn: AsyncConnection) -> tuple[int, int]:
        return int(await conn.scalar(count) or 0), threading.get_ident()

    try:
        (counted, thread), turns = await turns_while(db.read_aside(engine, long_read), pause_s=0.001)
    finally:
        await engine.dispose()
    assert counted == 1_000_000
    if engine.dialect.name == "sqlite":
        assert thread != threading.get_ident()
    assert turns >= 10
