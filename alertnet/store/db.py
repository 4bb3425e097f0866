"""The database engine: URL forms, transaction kinds, group commit, migrations (SQLite's own: `sqlite`)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import audit, sqlite

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: Any fixed number: all alertnet processes take this lock to migrate one at a time.
MIGRATION_LOCK = 0x616C6572


def async_url(url: str) -> sa.URL:
    """Map the contract's URL forms to SQLAlchemy's async drivers."""
    parsed = sa.make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "sqlite":
        return parsed.set(drivername=f"sqlite+{sqlite.DRIVER}")
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    return parsed


def create_engine(url: str) -> AsyncEngine:
    """An engine for the URL; on SQLite with WAL, a busy timeout and write-locking BEGINs."""
    target = async_url(url)
    if target.get_backend_name() != "sqlite":
        return create_async_engine(target, pool_size=10, max_overflow=10, pool_pre_ping=True)
    # check_same_thread off: a pooled connection may be closed by the garbage collector's thread.
    return sqlite.Engine(
        create_async_engine(
            target, pool_size=5, max_overflow=5, connect_args={"check_same_thread": False}
        ).sync_engine
    )


def sqlite_file(url: sa.URL) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL or a database in memory."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


@contextmanager
def checkpointing(engine: AsyncEngine) -> Iterator[None]:
    """For a serving process: on a SQLite file, its WAL is checkpointed on a thread of its own."""
    path = sqlite_file(engine.url)
    if path is None:
        yield
        return
    with sqlite.checkpointing(str(path)):
        yield


#: PostgreSQL's writers need no lock in this process: rows are locked where they are written.
_NO_LOCK = contextlib.nullcontext()
_WRITERS: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()
_BATCHES: weakref.WeakKeyDictionary[AsyncEngine, _Batches] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction, committed on exit.

    SQLite has one writer at a time: in this process writers queue on a lock instead of
    spinning in SQLite's busy handler, which keeps the slowest requests fast under load.
    Other processes still wait on SQLite's own lock (BEGIN IMMEDIATE, busy_timeout).
    """
    lock = _WRITERS.setdefault(engine, asyncio.Lock()) if engine.dialect.name == "sqlite" else _NO_LOCK
    async with lock, _transaction(engine, writes=True) as conn, _audited(conn):
        yield conn


#: The most write units one shared transaction takes (see `write_together`).
BATCH_MAX = 64
T = TypeVar("T")
Unit = Callable[[AsyncConnection], Awaitable[T]]


async def write_together(engine: AsyncEngine, unit: Unit[T]) -> T:
    """`unit` in a write transaction, shared with the units that queued up meanwhile (group commit).

    SQLite writes one transaction at a time anyway; units that arrive while one commits share the
    next, so they pay one BEGIN, one audit-chain head and one COMMIT between them, and each runs
    as it would alone, in arrival order. If one fails the batch rolls back and every unit runs
    again in a transaction of its own: the others still commit and the failing unit's caller gets
    its error. On PostgreSQL each unit has a transaction of its own: units lock groups in their own
    order, and two processes' batches could deadlock.
    """
    if engine.dialect.name != "sqlite":
        async with write(engine) as conn:
            return await unit(conn)
    return await _BATCHES.setdefault(engine, _Batches()).run(engine, unit)


def watch_batches(engine: AsyncEngine, observe: Callable[[int], None]) -> None:
    """Have `observe` told how many units each of the engine's shared transactions takes."""
    _BATCHES.setdefault(engine, _Batches()).observe = observe


class _Batches:
    """The units waiting for an engine's next shared transaction, and the task that runs them."""

    def __init__(self) -> None:
        self.observe: Callable[[int], None] = lambda _units: None
        self.waiting: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        self.draining = False
        #: Held so the running drain is not garbage-collected (the loop keeps only weak references).
        self.task: asyncio.Task[None] | None = None

    async def run(self, engine: AsyncEngine, unit: Unit[T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.waiting.append((unit, future))
        if not self.draining:
            self.draining = True
            self.task = asyncio.create_task(self._drain(engine), name="alertnet-group-commit")
        return await future

    async def _drain(self, engine: AsyncEngine) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:BATCH_MAX], self.waiting[BATCH_MAX:]
                self.observe(len(batch))
                await self._commit(engine, batch)
        finally:
            # Synchronously after the last look at `waiting`: a unit queued later starts a new drain.
            self.draining = False

    async def _commit(self, engine: AsyncEngine, batch: list[tuple[Unit[Any], asyncio.Future[Any]]]) -> None:
        try:
            async with write(engine) as conn:
                results = [await unit(conn) for unit, _ in batch]
        except Exception as error:
            if len(batch) > 1:
                for one in batch:
                    await self._commit(engine, [one])
            elif not batch[0][1].done():
                batch[0][1].set_exception(error)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


@asynccontextmanager
async def _audited(conn: AsyncConnection) -> AsyncIterator[None]:
    """Collect the transaction's audit events and write them, chained, last before the commit."""
    conn.info[audit.PENDING] = []
    try:
        yield
        await audit.flush(conn)
    finally:
        conn.info.pop(audit.PENDING, None)


@asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction: on SQLite it does not take the write lock."""
    async with _transaction(engine) as conn:
        yield conn


async def read_aside(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`work` in a read-only transaction that does not hold up the event loop: a long read, such
    as statistics over years. SQLite runs in the loop's thread, so there it runs on a thread (and
    a loop) of its own, and sqlite3 lets go of the GIL while SQLite reads. PostgreSQL's reads
    give the loop its turns anyway (and asyncpg's connections belong to one loop)."""

    async def run() -> T:
        async with read(engine) as conn:
            return await work(conn)

    if engine.dialect.name != "sqlite":
        return await run()
    return await asyncio.to_thread(asyncio.run, run())


@asynccontextmanager
async def _transaction(engine: AsyncEngine, *, writes: bool = False) -> AsyncIterator[AsyncConnection]:
    # Explicitly begun, so it ends inside this block: closing an autobegun connection ends its
    # transaction in a task of its own, after the loop has run other tasks, which would hold
    # SQLite's lock across them.
    async with engine.connect() as conn:
        conn.info[sqlite.WRITES] = writes  # how SQLite begins it (`sqlite.SQLiteDialect_inloop`)
        async with conn.begin():
            yield conn


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration; several processes may call this at once."""
    async with _transaction(engine, writes=True) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's migration revision, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    async with read(engine) as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
