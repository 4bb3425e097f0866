"""SQLite for the async engine without a thread hop per statement: `sqlite+inloop://`.

aiosqlite runs each call on a thread of its own and wakes the event loop for every answer:
about 0.2 ms a statement, which made a signal's 18 statements cost 10 ms and held SQLite's one
write lock all that time. This driver offers aiosqlite's interface, so SQLAlchemy's aiosqlite
dialect drives it unchanged, but runs each call with the standard library's sqlite3 in the
event loop's own thread: a statement costs what SQLite costs (microseconds).

Blocking the loop is what a CPU-bound call does anyway: SQLite answers from memory and the page
cache. The one real wait is for another process's write lock (busy_timeout); alertnet serves
SQLite from a single process (scale out on PostgreSQL), and `store.db.write` queues this
process's writers before they reach SQLite.

Every coroutine here completes without suspending, so a transaction that awaits only the
database runs to its end without yielding to the loop: two transactions of this process never
interleave.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Generator, Iterable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi, SQLiteDialect_aiosqlite
from sqlalchemy.engine.url import URL

DRIVER = "inloop"
__version__ = "1"

# What SQLAlchemy's aiosqlite adapter reads from the driver module.
DatabaseError = sqlite3.DatabaseError
Error = sqlite3.Error
IntegrityError = sqlite3.IntegrityError
NotSupportedError = sqlite3.NotSupportedError
OperationalError = sqlite3.OperationalError
ProgrammingError = sqlite3.ProgrammingError
sqlite_version = sqlite3.sqlite_version
sqlite_version_info = sqlite3.sqlite_version_info


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Now:
    """Stands in for aiosqlite's request queue: runs a request at once, in this thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def put_nowait(self, request: tuple[Any, Callable[[], Any]]) -> None:
        future, function = request
        try:
            future.set_result(function())
        except Exception as error:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(error)


class Connection:
    def __init__(self, database: str, **kwargs: Any) -> None:
        self._database = database
        self._kwargs = kwargs
        self._connection: sqlite3.Connection | None = None
        self._thread = SimpleNamespace(daemon=True)  # aiosqlite has one; SQLAlchemy marks it daemon

    def __await__(self) -> Generator[Any, None, Connection]:
        # check_same_thread off: a pooled connection may be closed by the garbage collector's thread.
        self._connection = sqlite3.connect(self._database, **{**self._kwargs, "check_same_thread": False})
        self._tx = _Now(self._connection)
        return self
        yield  # a generator: awaiting it never suspends

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> Cursor:
        return Cursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level


def connect(database: str, **kwargs: Any) -> Connection:
    return Connection(database, **kwargs)


class SQLiteDialect_inloop(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return AsyncAdapt_aiosqlite_dbapi(sys.modules[__name__], sqlite3)

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inloop")
