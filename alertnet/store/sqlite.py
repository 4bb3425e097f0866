"""SQLite for the async engine, run in the event loop's own thread: `sqlite+inloop://`.

aiosqlite runs each call on a thread of its own and wakes the event loop for every answer:
about 0.2 ms a statement, which made a signal's 18 statements cost 10 ms and held SQLite's one
write lock all that time. SQLAlchemy's async layer then adds a greenlet per statement and a
switch per driver call: 44 µs a statement against 20 µs for the same statement on its sync
engine. So this driver is the standard library's sqlite3 under SQLAlchemy's own sqlite3 dialect,
declared async so `AsyncEngine` accepts it, and its connections run each statement at once,
without a greenlet: a statement costs what SQLAlchemy and SQLite cost.

Blocking the loop is what a CPU-bound call does anyway: SQLite answers from memory and the page
cache. The one real wait is for another process's write lock (busy_timeout); alertnet serves
SQLite from a single process (scale out on PostgreSQL), and `store.db.write` queues this
process's writers before they reach SQLite.

Every call here completes without suspending, so a transaction that awaits only the database
runs to its end without yielding to the loop: two transactions of this process never interleave.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine as SyncEngine
from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

DRIVER = "inloop"


class SQLiteDialect_inloop(SQLiteDialect_pysqlite):
    driver = DRIVER
    #: For `AsyncEngine`'s check only: no call of this dialect ever awaits.
    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool


class Connection(AsyncConnection):
    """Runs a statement at once, in this thread; the rest (connect, begin, commit) as any
    `AsyncConnection` does. SQLAlchemy's own `execute` would refuse a driver that never awaits."""

    async def execute(self, statement: Any, parameters: Any = None, *, execution_options: Any = None) -> Any:
        return self._proxied.execute(statement, parameters, execution_options=execution_options)

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Any = None
    ) -> Any:
        return self._proxied.exec_driver_sql(statement, parameters, execution_options)


class Engine(AsyncEngine):
    """An `AsyncEngine` whose connections are `Connection`s."""

    __slots__ = ()
    _connection_cls = Connection

    @classmethod
    def _regenerate_proxy_for_target(cls, target: SyncEngine, **_kw: Any) -> Engine:
        return cls(target)


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inloop")
