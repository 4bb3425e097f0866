"""A throwaway PostgreSQL server for the benchmark, and a fresh database on it per measurement.

The server is tests/databases.py's Cluster: initdb in a temporary directory (as the `postgres`
user when run as root), on a free port of 127.0.0.1, fsync off; stopped and removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import asyncpg
import sqlalchemy as sa

from tests.databases import Cluster, pg_bin

__all__ = ["Postgres", "pg_bin"]

_TICKS = os.sysconf("SC_CLK_TCK")


class Postgres:
    #: Every server started, so a last `stop_all` leaves none behind whatever happened.
    started: ClassVar[list[Postgres]] = []

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.cluster = Cluster(bin_dir)
        self.server_url = ""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bench-postgres")
        self._start: Future[str] | None = None
        Postgres.started.append(self)

    async def start(self) -> str:
        """initdb and pg_ctl start (bounded by the Cluster's own time-outs); the server's URL."""
        self._start = self._pool.submit(self.cluster.start)
        self.server_url = await asyncio.wrap_future(self._start)
        return self.server_url

    async def version(self) -> str:
        conn = await asyncpg.connect(self.server_url, timeout=10)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    async def database(self, name: str, template: str | None = None) -> str:
        """A new database, its URL: empty (alertnet migrates it on start), or a copy of the database
        at `template` (a URL), which nobody may be connected to."""
        source = f' TEMPLATE "{sa.make_url(template).database}"' if template else ""
        conn = await asyncpg.connect(self.server_url, timeout=10)
        try:
            for attempt in range(20):
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"{source}')
                    break
                except asyncpg.ObjectInUseError:
                    # A session of the process that made the template is still ending.
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.25)
        finally:
            await conn.close()
        return str(sa.make_url(self.server_url).set(database=name).render_as_string(hide_password=False))

    def cpu(self) -> float:
        """CPU seconds of the server so far: the postmaster, the children it reaped (backends that
        ended) and those alive now (backends, background workers)."""
        try:
            leader = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            pid = int(stat.parent.name)
            if pid == leader:
                ticks += sum(int(value) for value in fields[11:15])
            elif int(fields[1]) == leader:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / _TICKS

    @classmethod
    def cpu_all(cls) -> float:
        return sum(server.cpu() for server in cls.started)

    def stop(self) -> None:
        """Stop the server (pg_ctl stop -m immediate) and remove its files; a start still running
        (the run was cut short) is waited for first, so nothing is left behind."""
        if self in Postgres.started:
            Postgres.started.remove(self)
        if self._start is not None:
            with contextlib.suppress(Exception):
                self._start.result(timeout=240)
        self.cluster.stop()
        self._pool.shutdown(wait=False)

    @classmethod
    def stop_all(cls) -> None:
        for server in list(cls.started):
            server.stop()
