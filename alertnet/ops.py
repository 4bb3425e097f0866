"""Operational endpoints: health, readiness, metrics, the API document, the landing page."""

from __future__ import annotations

import sqlalchemy as sa
import structlog
from aiohttp import web

from . import keys
from .store import db

log = structlog.get_logger("alertnet.ops")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with db.read(request.app[keys.engine]) as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready", which is the answer
        log.warning("database_unreachable", error=type(exc).__name__)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.metrics].render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


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
