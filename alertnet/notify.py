"""Waking workers in every process at once (PostgreSQL LISTEN/NOTIFY); the poll stays as a safety net.

A NOTIFY sent inside a transaction is delivered when it commits, so a worker never wakes
to look for jobs that are not visible yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from . import keys

log = structlog.get_logger("alertnet.notify")
OUTBOX = "alertnet_outbox"
TIMERS = "alertnet_timers"
RECONNECT_S = 2.0


async def announce(conn: AsyncConnection, channel: str) -> None:
    """Tell every process, once this transaction commits, that there is work on `channel`."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_notify(channel, "")))


async def listener(app: web.Application) -> AsyncIterator[None]:
    """Listen on PostgreSQL for new outbox jobs and timers (cleanup context; nothing on SQLite)."""
    engine = app[keys.engine]
    if engine.dialect.name != "postgresql":
        yield
        return
    wake: dict[str, Callable[[], None]] = {OUTBOX: app[keys.sender].notify, TIMERS: app[keys.timers].notify}
    task = asyncio.create_task(_listen(app, wake), name="alertnet-listener")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _listen(app: web.Application, wake: dict[str, Callable[[], None]]) -> None:
    while True:
        try:
            async with app[keys.engine].connect() as conn:
                raw: Any = (await conn.get_raw_connection()).driver_connection
                lost = asyncio.Event()
                raw.add_termination_listener(lambda *_, lost=lost: lost.set())
                for channel, callback in wake.items():
                    await raw.add_listener(channel, lambda *_, callback=callback: callback())
                log.info("listening", channels=sorted(wake))
                await lost.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("listener_lost", exc_info=True, retry_in_s=RECONNECT_S)
        await asyncio.sleep(RECONNECT_S)
