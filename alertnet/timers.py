"""The timer worker: fires due escalation timers from the database, and expires silent incidents.

Timers live in the database, so they survive restarts; each is claimed under a lease and
marked fired in the same transaction as its decision, so it fires once even with several
processes. The worker sleeps until the next due time (at most a second), so a timer fires
within about a second of due.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from . import engine
from .metrics import Metrics
from .store import incidents as store
from .store.db import read, write

log = structlog.get_logger("alertnet.timers")
MAX_SLEEP_S = 1.0
LEASE_S = 60.0
BATCH = 50
EXPIRY_EVERY_S = 60.0


class TimerWorker:
    def __init__(
        self,
        db: AsyncEngine,
        *,
        clock: Callable[[], datetime],
        metrics: Metrics,
        expiry_s: int,
        notify_sender: Callable[[], None],
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.expiry = timedelta(seconds=expiry_s)
        self.notify_sender = notify_sender
        self.wake = asyncio.Event()
        self.next_expiry_check = 0.0
        self.stopping = False

    def notify(self) -> None:
        """A timer was set that may be due sooner than the worker's next look."""
        self.wake.set()

    async def stop(self) -> None:
        """Finish the timer in hand, then return: never cut a database call in half."""
        self.stopping = True
        self.wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            self.wake.clear()
            try:
                fired = await self._fire_due()
                if loop.time() >= self.next_expiry_check:
                    self.next_expiry_check = loop.time() + EXPIRY_EVERY_S
                    await self._expire_silent()
                if fired:
                    self.notify_sender()
                    continue
                delay = await self._until_next()
            except Exception:
                log.exception("timer_loop_failed")
                delay = MAX_SLEEP_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)

    async def _until_next(self) -> float:
        async with read(self.db) as conn:
            due = await store.next_due(conn)
        if due is None:
            return MAX_SLEEP_S
        return min(MAX_SLEEP_S, max(0.0, (due - self.clock()).total_seconds()))

    async def _fire_due(self) -> int:
        now = self.clock()
        async with write(self.db) as conn:
            due = await store.claim_due_timers(conn, now, BATCH, LEASE_S)
        for timer in due:
            if self.stopping:
                break  # the rest come back when their lease expires
            await self._fire_one(timer)
        return len(due)

    async def _fire_one(self, timer: dict[str, object]) -> None:
        now = self.clock()
        try:
            async with write(self.db) as conn:
                fired = await engine.fire_timer(conn, timer, now)
        except Exception:
            # Leave it leased: it comes back after the lease, and one bad timer never blocks the rest.
            log.exception("timer_failed", timer_id=timer["id"])
            return
        if not fired:
            log.info("timer_fired_elsewhere", timer_id=timer["id"])
            return
        due_at = timer["due_at"]
        assert isinstance(due_at, datetime)
        self.metrics.timer_lateness.observe(max(0.0, (now - due_at).total_seconds()))

    async def _expire_silent(self) -> None:
        now = self.clock()
        async with read(self.db) as conn:
            silent = await store.silent_since(conn, now - self.expiry)
        for incident_id in silent:
            async with write(self.db) as conn:
                await engine.close(conn, incident_id, now, "expired")
        if silent:
            log.info("incidents_expired", count=len(silent))
            self.notify_sender()
