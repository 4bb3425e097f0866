"""SQLite for the async engine, run in the event loop's own thread: `sqlite+inloop://`.

aiosqlite runs each call on a thread of its own and wakes the event loop for every answer:
about 0.2 ms a statement, which made a signal's 18 statements cost 10 ms and held SQLite's one
write lock all that time. SQLAlchemy's async layer then adds a greenlet per statement and a
switch per driver call: 44 µs a statement against 20 µs for the same statement on its sync
engine. So this driver is the standard library's sqlite3 under SQLAlchemy's own sqlite3 dialect,
declared async so `AsyncEngine` accepts it, and its connections run each statement at once,
without a greenlet. A statement run more than once runs as a prepared plan (`prepared`), which
skips SQLAlchemy's per-execution work too: it then costs little more than SQLite itself.

Blocking the loop is what a CPU-bound call does anyway: SQLite answers from memory and the page
cache. The one real wait is for another process's write lock (busy_timeout); alertnet serves
SQLite from a single process (scale out on PostgreSQL), and `store.db.write` queues this
process's writers before they reach SQLite.

Every call here completes without suspending, so a transaction that awaits only the database
runs to its end without yielding to the loop: two transactions of this process never interleave.
The dialect also sets each connection up (WAL, foreign keys, busy timeout) and begins its
transactions itself: a writer's with BEGIN IMMEDIATE.

The one slow thing SQLite does in a commit is the WAL checkpoint: by default the commit that
takes the write-ahead log past 1,000 pages copies them into the database file and fsyncs it,
in the loop's thread (about 8 % of ingest's CPU, and a stall of up to tens of milliseconds on a
slow disk). A serving process checkpoints on a thread of its own instead (`checkpointing`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import Connection as SyncConnection
from sqlalchemy import Engine as SyncEngine
from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import prepared

DRIVER = "inloop"
#: A connection checkpoints by itself only past this many WAL pages (about 16 MB): a backstop for
#: when no `checkpointing` thread runs (the CLI's commands) or it falls behind.
AUTOCHECKPOINT_PAGES = 4000
CHECKPOINT_EVERY_S = 0.5
log = structlog.get_logger("alertnet.store")


#: Every connection's settings. WAL: readers never block the writer, nor it them.
PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    "busy_timeout=10000",
    f"wal_autocheckpoint={AUTOCHECKPOINT_PAGES}",
)
#: `Connection.info` key: whether the transaction about to begin writes.
WRITES = "alertnet_writes"


class SQLiteDialect_inloop(SQLiteDialect_pysqlite):
    driver = DRIVER
    #: For `AsyncEngine`'s check only: no call of this dialect ever awaits.
    is_async = True
    supports_statement_cache = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plans = prepared.Plans(self)

    def on_connect(self) -> Callable[[Any], None]:
        inherited = super().on_connect()

        def setup(dbapi_connection: Any) -> None:
            inherited(dbapi_connection)
            # sqlite3 must not begin transactions of its own: `do_begin` does.
            dbapi_connection.isolation_level = None
            for pragma in PRAGMAS:
                dbapi_connection.execute(f"PRAGMA {pragma}")

        return setup

    def do_begin(self, dbapi_connection: Any) -> None:
        # A write transaction takes the write lock up front: two writers that both read first
        # and then write would otherwise fail with SQLITE_BUSY at once instead of waiting their
        # turn. Anything else only reads (WAL: never blocked). Done here rather than in a
        # "begin" event: any engine event costs every statement a round of event dispatch.
        dbapi_connection.execute("BEGIN IMMEDIATE" if dbapi_connection.info.get(WRITES) else "BEGIN")

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool


class Connection(AsyncConnection):
    """Runs a statement at once, in this thread, as a prepared plan where it can; the rest
    (connect, begin, commit) as any `AsyncConnection` does. SQLAlchemy's own `execute` would
    refuse a driver that never awaits."""

    async def execute(self, statement: Any, parameters: Any = None, *, execution_options: Any = None) -> Any:
        sync = self._proxied
        if execution_options is None and sync.in_transaction() and not _observed(sync):
            ran = _run_planned(sync, statement, parameters)
            if ran is not None:
                return ran
        return sync.execute(statement, parameters, execution_options=execution_options)

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Any = None
    ) -> Any:
        return self._proxied.exec_driver_sql(statement, parameters, execution_options)


def _observed(sync: SyncConnection) -> bool:
    """Events are listened for, or options set: SQLAlchemy must run every statement."""
    return bool(sync._has_events or sync.engine._has_events or sync._execution_options)


def _run_planned(sync: SyncConnection, statement: Any, parameters: Any) -> prepared.Result | None:
    """The statement run by its plan; None when it has none (SQLAlchemy runs it then)."""
    kind = type(parameters)
    if parameters is None:
        parameters, kind = {}, dict
    elif kind is list and len(parameters) == 1:
        parameters, kind = parameters[0], type(parameters[0])
    if kind is dict:
        keys, many = tuple(parameters), False
    elif kind is list and parameters and type(parameters[0]) is dict:
        keys, many = tuple(parameters[0]), True
    else:
        return None
    dialect = sync.dialect
    assert isinstance(dialect, SQLiteDialect_inloop)
    plan = dialect.plans.get(statement, keys, many)
    if plan is None:
        return None
    dbapi_connection = sync.connection.dbapi_connection
    assert isinstance(dbapi_connection, sqlite3.Connection)
    try:
        return plan.run(dbapi_connection, parameters)
    except KeyError:  # an executemany's rows differ in their names: SQLAlchemy sorts that out
        return None


class Engine(AsyncEngine):
    """An `AsyncEngine` whose connections are `Connection`s."""

    __slots__ = ()
    _connection_cls = Connection

    @classmethod
    def _regenerate_proxy_for_target(cls, target: SyncEngine, **_kw: Any) -> Engine:
        return cls(target)


@contextmanager
def checkpointing(path: str, every_s: float = CHECKPOINT_EVERY_S) -> Iterator[threading.Thread]:
    """Checkpoint the database's WAL from a thread of its own while in the block.

    PASSIVE never waits for this process's readers or writer, and sqlite3 lets go of the GIL
    while SQLite copies and fsyncs, so the event loop runs on meanwhile.
    """
    stopping = threading.Event()

    def run() -> None:
        connection = sqlite3.connect(path, check_same_thread=False)
        try:
            while not stopping.wait(every_s):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:
                    log.warning("wal_checkpoint_failed", error=str(error))
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="alertnet-wal-checkpoint", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stopping.set()
        thread.join()


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inloop")
