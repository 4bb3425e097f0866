"""Operational endpoints: health, readiness, metrics, the API document, the landing page."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from . import keys
from .store import db, incidents, outbox

log = structlog.get_logger("alertnet.ops")
#: Readiness and metrics answer even while the database hangs (a probe or a scrape gives up soon).
DATABASE_TIMEOUT_S = 2.0
T = TypeVar("T")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _probe(app: web.Application, read: Callable[[AsyncConnection], Awaitable[T]]) -> T | None:
    """`read` in a read transaction that gives up after DATABASE_TIMEOUT_S; None if it failed."""
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S), db.read(app[keys.engine]) as conn:
            return await read(conn)
    except Exception as exc:  # any failure is the answer: the database is not there for us
        log.warning("database_unreachable", error=type(exc).__name__)
        return None


async def readyz(request: web.Request) -> web.Response:
    if await _probe(request.app, lambda conn: conn.execute(sa.text("SELECT 1"))) is None:
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    await _backlog(request.app)
    body = request.app[keys.metrics].render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def _waited_s(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


async def _backlog(app: web.Application) -> None:
    """What an operator is paged on: alerts waiting to go out, escalations waiting to fire. NaN
    while the database does not answer (the counters still do; /readyz says what is wrong)."""
    now = app[keys.clock]()

    async def read(conn: AsyncConnection) -> tuple[int, datetime | None, datetime | None]:
        jobs, oldest_job = await outbox.backlog(conn, now)
        return jobs, oldest_job, await incidents.oldest_due_timer(conn, now)

    found = await _probe(app, read)
    if found is None:
        app[keys.metrics].backlog(math.nan, math.nan, math.nan)
        return
    jobs, oldest_job, oldest_timer = found
    app[keys.metrics].backlog(jobs, _waited_s(oldest_job, now), _waited_s(oldest_timer, now))


async def openapi(request: web.Request) -> web.Response:
    from . import openapi as document
    from .routes import ROUTES

    return web.json_response(document.build(ROUTES))


LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>alertnet</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; line-height: 1.5">
<h1>alertnet</h1>
<p>The neighbourhood alert network is running. Residents text one number; their allies get the signal
within seconds, without the sender's number; the buurtregisseur is called in when needed.</p>
<p>Coordinators: the dashboard is coming. Until then, use the admin API with your token:
<a href="/api/openapi.json">API description (OpenAPI)</a>.</p>
<p>In danger? Call 112 first.</p>
</body></html>
"""


async def landing(request: web.Request) -> web.Response:
    return web.Response(text=LANDING, content_type="text/html")
