"""The application factory: synchronous, no I/O; resources live in cleanup contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import structlog
from aiohttp import web

from . import keys, routes
from .metrics import Metrics
from .middleware import authenticate, errors, observe
from .settings import Settings
from .store import db

MAX_BODY_BYTES = 1024 * 1024
log = structlog.get_logger("alertnet.app")


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> web.Application:
    app = web.Application(middlewares=[observe, errors, authenticate], client_max_size=MAX_BODY_BYTES)
    app[keys.settings] = settings
    app[keys.clock] = clock
    app[keys.metrics] = Metrics()
    app.cleanup_ctx.append(database)
    routes.setup(app)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings]
    engine = db.create_engine(settings.database_url)
    if settings.migrate_on_start:
        await db.migrate(engine)
    app[keys.engine] = engine
    if settings.admin_token is None:
        log.info(
            "no_admin_token", hint="set ALERTNET_ADMIN_TOKEN or run `alertnet token create --role admin`"
        )
    yield
    await engine.dispose()
