"""The application factory: synchronous, no I/O; resources live in cleanup contexts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from aiohttp import web

from . import engine, keys, notify, providers, routes
from .metrics import Metrics
from .middleware import authenticate, errors, observe
from .sender import Sender
from .settings import Settings
from .store import db, retention
from .store import signals as signal_store
from .timers import TimerWorker

MAX_BODY_BYTES = 1024 * 1024
log = structlog.get_logger("alertnet.app")


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> web.Application:
    app = web.Application(middlewares=[observe, errors, authenticate], client_max_size=MAX_BODY_BYTES)
    app[keys.settings] = settings
    app[keys.clock] = clock
    app[keys.metrics] = Metrics()
    app[keys.budgets] = {}
    app[keys.audit_check] = asyncio.Lock()
    app.cleanup_ctx.extend([database, provider, sender, timer_worker, notify.listener, housekeeping])
    routes.setup(app)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings]
    engine = db.create_engine(settings.database_url)
    if settings.migrate_on_start:
        await db.migrate(engine)
    app[keys.engine] = engine
    db.watch_batches(engine, app[keys.metrics].units_per_transaction.observe)
    if settings.admin_token is None:
        log.info(
            "no_admin_token", hint="set ALERTNET_ADMIN_TOKEN or run `alertnet token create --role admin`"
        )
    with db.checkpointing(engine):
        yield
    await engine.dispose()


async def provider(app: web.Application) -> AsyncIterator[None]:
    """The SMS provider, created inside the running loop (its HTTP session binds to it)."""
    settings = app[keys.settings]
    app[keys.provider] = providers.create(settings)
    if settings.twilio_auth_token is None:
        log.warning(
            "inbound_unsigned",
            detail="no ALERTNET_TWILIO_AUTH_TOKEN: /sms/inbound and /sms/status accept unsigned requests",
        )
    if settings.sms_provider == "console" and settings.twilio_account_sid:
        log.warning(
            "console_provider_with_twilio_account",
            detail="ALERTNET_SMS_PROVIDER is console: SMS are printed here, not sent through Twilio",
        )
    yield
    await app[keys.provider].close()


async def sender(app: web.Application) -> AsyncIterator[None]:
    """The outbox worker; on shutdown it finishes and records what is in flight."""
    settings = app[keys.settings]
    worker = Sender(
        app[keys.engine],
        app[keys.provider],
        rate=settings.send_rate,
        concurrency=settings.send_concurrency,
        public_url=settings.effective_public_url,
        clock=app[keys.clock],
        metrics=app[keys.metrics],
        on_failure=engine.delivery_failed,
        lease_s=settings.outbox_lease_s,
    )
    app[keys.sender] = worker
    async with _running(worker, "alertnet-sender"):
        yield


async def timer_worker(app: web.Application) -> AsyncIterator[None]:
    """Escalation timers from the database; pages it makes are sent at once."""
    worker = TimerWorker(
        app[keys.engine],
        clock=app[keys.clock],
        metrics=app[keys.metrics],
        expiry_s=app[keys.settings].incident_expiry_s,
        notify_sender=app[keys.sender].notify,
    )
    app[keys.timers] = worker
    async with _running(worker, "alertnet-timers"):
        yield


class _Worker(Protocol):
    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@asynccontextmanager
async def _running(worker: _Worker, name: str) -> AsyncIterator[None]:
    """Run a worker as a task; on exit ask it to stop and let it finish what it has in hand."""
    task = asyncio.create_task(worker.run(), name=name)
    try:
        yield
    finally:
        await worker.stop()
        try:
            await asyncio.wait_for(task, timeout=30)
        except asyncio.CancelledError:
            pass
        except TimeoutError:
            # Stopping must not fail the process: what is unfinished returns when its lease ends.
            log.error("worker_did_not_stop", worker=name)


#: How long inbound MessageSids are remembered: far beyond any Twilio retry.
MESSAGE_SID_TTL = timedelta(days=30)
HOUSEKEEPING_EVERY_S = 3600


async def housekeeping(app: web.Application) -> AsyncIterator[None]:
    """Forget what is no longer needed: old idempotency keys, join hints, MessageSids, phone numbers."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)
            try:
                now = app[keys.clock]()
                async with db.write(app[keys.engine]) as conn:
                    await signal_store.purge_before(conn, now - timedelta(days=1), now - MESSAGE_SID_TTL)
                    retention_days = app[keys.settings].retention_days
                    await retention.erase_older_than(conn, now - timedelta(days=retention_days))
            except Exception:
                log.exception("housekeeping_failed")

    task = asyncio.create_task(loop(), name="alertnet-housekeeping")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
