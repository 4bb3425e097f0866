"""Test databases: a fresh SQLite file or a fresh PostgreSQL database per test.

PostgreSQL comes from ALERTNET_TEST_DATABASE_URL when set, else from a throwaway cluster
started here (initdb in a temporary directory, as the `postgres` user when run as root, on
a free port, fsync off) and removed at the end of the session. Where no PostgreSQL binaries
exist, the PostgreSQL half of the suite is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa

from alertnet.store import db

from .ports import free_port

ENV_URL = "ALERTNET_TEST_DATABASE_URL"


T = TypeVar("T")


def run_in_thread(coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a loop of its own, away from any test's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine_factory()).result()


def pg_bin() -> Path | None:
    """The directory of the newest installed PostgreSQL server binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="alertnet-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self.as_postgres else list(args)

    def start(self) -> str:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            self._cmd(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
        )
        subprocess.run(
            self._cmd(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


async def connect(url: str) -> Any:
    """A plain asyncpg connection to the database at a SQLAlchemy-style URL."""
    parts = sa.make_url(url)
    return await asyncpg.connect(
        host=parts.host,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        database=parts.database,
        timeout=10,
    )


class Postgres:
    """One migrated database on a PostgreSQL server, emptied before each test.

    Cloning a database costs PostgreSQL about 0.3 s; deleting every row and restarting the
    sequences costs a few milliseconds. Data built once for many tests (the authorization
    matrix) is kept in a schema of its own and copied back before each of them.
    """

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"alertnet_test_{uuid.uuid4().hex[:8]}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="postgres-admin", daemon=True)
        self.thread.start()
        admin = self._call(connect(self.server_url))
        self._call(admin.execute(f'CREATE DATABASE "{self.name}"'))
        self._call(admin.close())
        self.url = str(sa.make_url(server_url).set(database=self.name).render_as_string(hide_password=False))
        run_in_thread(lambda: migrate_url(self.url))
        self.conn: Any = self._call(connect(self.url))
        self.tables: list[str] = self._call(self._tables())
        self.sequences: list[tuple[str, str]] = self._call(self._sequences())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    async def _tables(self) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        return sorted(row["tablename"] for row in rows)

    async def _sequences(self) -> list[tuple[str, str]]:
        """(table, sequence) for every table with a serial id: restarted so ids begin at 1."""
        rows = await self.conn.fetch(
            "SELECT table_name, pg_get_serial_sequence('public.' || table_name, 'id') AS seq "
            "FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'id'"
        )
        return [(row["table_name"], row["seq"]) for row in rows if row["seq"]]

    async def _reset(self, snapshot: str | None) -> None:
        async with self.conn.transaction():
            # Foreign keys are not checked while rows are deleted and copied back.
            await self.conn.execute("SET LOCAL session_replication_role = replica")
            for table in self.tables:
                await self.conn.execute(f'DELETE FROM public."{table}"')
                if snapshot is not None:
                    await self.conn.execute(
                        f'INSERT INTO public."{table}" SELECT * FROM "{snapshot}"."{table}"'
                    )
            for table, sequence in self.sequences:
                highest = f'SELECT max(id) FROM public."{table}"'
                await self.conn.execute(f"SELECT setval('{sequence}', COALESCE(({highest}), 0) + 1, false)")

    def new(self) -> str:
        """The test database, empty (but migrated)."""
        self._call(self._reset(None))
        return self.url

    def snapshot(self, key: str) -> None:
        """Keep the database's current rows under `key`."""

        async def work() -> None:
            await self.conn.execute(f'DROP SCHEMA IF EXISTS "{key}" CASCADE; CREATE SCHEMA "{key}"')
            for table in self.tables:
                await self.conn.execute(f'CREATE TABLE "{key}"."{table}" AS TABLE public."{table}"')

        self._call(work())

    def restore(self, key: str) -> str:
        """The test database with the rows kept under `key`."""
        self._call(self._reset(key))
        return self.url

    def close(self, drop: bool) -> None:
        self._call(self.conn.close())
        if drop:
            admin = self._call(connect(self.server_url))
            self._call(admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self._call(admin.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def migrate_url(url: str) -> None:
    engine = db.create_engine(url)
    try:
        await db.migrate(engine)
    finally:
        await engine.dispose()


class SqliteTemplate:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"
        run_in_thread(lambda: migrate_url(f"sqlite:///{self.path}"))

    def new(self, directory: Path) -> str:
        return sqlite_clone(f"sqlite:///{self.path}", directory)


def sqlite_clone(url: str, directory: Path) -> str:
    """A copy of a SQLite database file (and its WAL, should one be left)."""
    source = Path(url.removeprefix("sqlite:///"))
    target = directory / f"alertnet-{uuid.uuid4().hex[:8]}.db"
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
    return f"sqlite:///{target}"
