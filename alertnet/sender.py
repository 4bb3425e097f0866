"""The sender: claims due outbox jobs, hands them to the provider at the configured pace, records outcomes.

A slot is held from the moment a job is sent until its outcome is committed, so after a
crash at most `concurrency` messages can have gone out without a record: those, and only
those, may be sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import delivery
from .delivery import VALIDITY_S, GiveUp
from .metrics import Metrics
from .phones import mask
from .providers import Outgoing, Provider, SendFailed
from .store import db, outbox, pace

log = structlog.get_logger("alertnet.sender")
#: Default lease on a claimed job (ALERTNET_OUTBOX_LEASE_S).
LEASE_S = 120.0
POLL_S = 1.0
#: How far ahead the sender books send times at the shared pace.
BOOK_AHEAD_S = 2.0
#: On stop, how long sends in flight may take to finish and be recorded (within the app's 30 s).
DRAIN_S = 20.0
#: Called in the recording transaction for each message that failed for good:
#: (connection, delivery id, phone, provider error code, now).
FailureHook = Callable[[AsyncConnection, int, str, str | None, datetime], Awaitable[None]]


class Sender:
    def __init__(
        self,
        engine: AsyncEngine,
        provider: Provider,
        *,
        rate: float,
        concurrency: int,
        public_url: str,
        clock: Callable[[], datetime],
        metrics: Metrics,
        on_failure: FailureHook | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.lease_s = lease_s
        self.engine = engine
        self.provider = provider
        self.interval_s = 1.0 / rate
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.public_url = public_url
        self.clock = clock
        self.metrics = metrics
        self.on_failure = on_failure
        self.wake = asyncio.Event()
        self.outcomes: list[outbox.Outcome] = []
        self.have_outcomes = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        # Claim no more than the pace lets go out well within the lease.
        self.claim_limit = max(1, min(4 * concurrency, int(rate * lease_s / 4)))
        # Book only a little ahead: a page claimed later must not wait behind a fan-out whose send
        # times are already booked (at 1 SMS a second, half a lease would be a minute).
        self.window_s = min(lease_s / 2, BOOK_AHEAD_S)

    def notify(self) -> None:
        """New jobs were committed: look now rather than at the next poll."""
        self.wake.set()

    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_loop(), name="alertnet-recorder")
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                jobs = await self._claim()
                for job, send_at in jobs:
                    await self.slots.acquire()
                    task = asyncio.create_task(self._attempt(job, send_at))
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
                if not jobs:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), POLL_S)
        finally:
            await self._drain(recorder)

    async def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def _drain(self, recorder: asyncio.Task[None]) -> None:
        """Let sends in flight finish and their outcomes commit, so a restart sends nothing twice.

        A slot comes back only once its outcome is committed, so holding every slot means the
        recorder is idle: only then is it safe to cancel.
        """

        async def every_slot() -> None:
            for _ in range(self.concurrency):
                await self.slots.acquire()

        try:
            await asyncio.wait_for(every_slot(), timeout=DRAIN_S)
        except TimeoutError:
            log.error("outbox_drain_incomplete", unrecorded=len(self.outcomes), in_flight=len(self.in_flight))
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)

    async def _claim(self) -> list[tuple[outbox.Job, datetime]]:
        """Claim what the shared pace lets go out within half the lease, and book its send times."""
        now = self.clock()
        try:
            async with db.write(self.engine) as conn:
                start = await pace.next_free(conn, now)
                room = (now + timedelta(seconds=self.window_s) - start).total_seconds() / self.interval_s
                limit = max(0, min(self.claim_limit, int(room)))
                jobs = await outbox.claim_due_jobs(conn, now, limit, self.lease_s) if limit else []
                units = [max(1, job.segments) for job in jobs]
                if jobs:
                    await pace.book(conn, start, sum(units) * self.interval_s)
        except Exception:
            log.exception("outbox_claim_failed")
            await asyncio.sleep(POLL_S)
            return []
        timed, offset = [], 0
        for job, cost in zip(jobs, units, strict=True):
            timed.append((job, start + timedelta(seconds=offset * self.interval_s)))
            offset += cost
            if job.unrecorded_attempt:
                # The last attempt's outcome was lost in a crash: this send may be a duplicate.
                self.metrics.possible_duplicates.inc()
        return timed

    def _callback(self, job: outbox.Job) -> str | None:
        return f"{self.public_url}/sms/status?d={job.delivery_id}" if self.provider.calls_back else None

    async def _attempt(self, job: outbox.Job, send_at: datetime) -> None:
        outcome: outbox.Outcome
        skip = job.skip_reason(self.clock())
        if skip is not None:
            log.info("sms_not_sent", delivery_id=job.delivery_id, reason=skip)
            self.metrics.sms.labels(job.purpose, skip).inc()
            self.outcomes.append(outbox.Failed(job, skip, None))
            self.have_outcomes.set()
            return
        try:
            wait_s = (send_at - self.clock()).total_seconds()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), wait_s)
            if self.stopping.is_set() or self._lease_too_short(job):
                # Stopping: what has not gone out yet is handed back, for a restart (or another
                # process) to send at once rather than after the lease. A job that waited for a
                # slot or its turn until too little of its lease was left: another worker may
                # claim it while we send.
                log.info("sms_handed_back", delivery_id=job.delivery_id, stopping=self.stopping.is_set())
                self.outcomes.append(outbox.Released(job))
                self.have_outcomes.set()
                return
            started = time.perf_counter()
            # What is left of its validity: a message that waited must not arrive later than that.
            validity_s = max(1, math.ceil(self._expires_in_s(job)))
            message = Outgoing(job.to, job.body, self._callback(job), validity_s)
            accepted = await self.provider.send(message)
            self.metrics.send_latency.observe(time.perf_counter() - started)
            status = delivery.PROVIDER_STATUS.get(accepted.status, delivery.Status.queued)
            outcome = outbox.Sent(job, accepted.sid, status, accepted.segments)
            self.metrics.sms.labels(job.purpose, "accepted").inc()
            self.metrics.segments.labels(job.purpose).inc(accepted.segments)
        except SendFailed as exc:
            outcome = self._failed(job, exc)
        except Exception as exc:  # a provider bug must not lose the job: retry it later
            log.exception("provider_error", delivery_id=job.delivery_id)
            outcome = self._failed(job, SendFailed(type(exc).__name__, permanent=False))
        self.outcomes.append(outcome)
        self.have_outcomes.set()

    def _lease_too_short(self, job: outbox.Job) -> bool:
        """Less of the lease is left than a request may take (the providers' time-out is a third)."""
        if job.lease_until is None:
            return False
        return self.clock() + timedelta(seconds=self.lease_s / 3) > job.lease_until

    def _expires_in_s(self, job: outbox.Job) -> float:
        return VALIDITY_S[job.purpose] - (self.clock() - job.created_at).total_seconds()

    def _failed(self, job: outbox.Job, exc: SendFailed) -> outbox.Failed:
        decision = delivery.after_failure(
            attempts=job.attempts,
            permanent=exc.permanent,
            retry_after_s=exc.retry_after_s,
            jitter=random.random(),
            expires_in_s=self._expires_in_s(job),
        )
        if isinstance(decision, GiveUp):
            self.metrics.sms.labels(job.purpose, "failed").inc()
            log.warning(
                "sms_failed",
                delivery_id=job.delivery_id,
                code=exc.code,
                reason=decision.reason,
                to=mask(job.to),
                attempts=job.attempts,
            )
            return outbox.Failed(job, exc.code, None)
        self.metrics.sms.labels(job.purpose, "retried").inc()
        if exc.uncertain:  # the provider may have taken it: the retry may be a duplicate
            self.metrics.possible_duplicates.inc()
        return outbox.Failed(job, exc.code, self.clock() + timedelta(seconds=decision.delay_s))

    async def _record_loop(self) -> None:
        while True:
            await self.have_outcomes.wait()
            self.have_outcomes.clear()
            batch, self.outcomes = self.outcomes, []
            if not batch:
                continue
            try:
                await self._record(batch)
            except Exception:
                log.exception("outbox_record_failed", outcomes=len(batch))
                self.outcomes = batch + self.outcomes
                await asyncio.sleep(0.5)
                self.have_outcomes.set()
                continue
            for _ in batch:
                self.slots.release()

    async def _record(self, batch: list[outbox.Outcome]) -> None:
        now = self.clock()
        unused = sum(max(1, o.job.segments) for o in batch if isinstance(o, outbox.Released))
        async with db.write(self.engine) as conn:
            failed = await outbox.record_outcomes(conn, batch, now)
            if unused:
                await pace.give_back(conn, unused * self.interval_s, now)
            if self.on_failure is not None:
                for outcome in failed:
                    await self.on_failure(conn, outcome.job.delivery_id, outcome.job.to, outcome.code, now)
