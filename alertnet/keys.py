"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from .auth import Principal
from .metrics import Metrics
from .settings import Settings
from .throttle import Bucket

if TYPE_CHECKING:
    from .providers import Provider
    from .routes import Route
    from .sender import Sender
    from .timers import TimerWorker

settings: web.AppKey[Settings] = web.AppKey("settings")
engine: web.AppKey[AsyncEngine] = web.AppKey("engine")
#: Returns the current time, timezone-aware UTC; tests may replace it.
clock: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
metrics: web.AppKey[Metrics] = web.AppKey("metrics")
#: Each token's budget of signals posted to the API (`webhooks.SIGNAL_BUDGET`), in this process.
budgets: web.AppKey[dict[str, Bucket]] = web.AppKey("budgets")
#: Held while the audit chain is checked: each check reads the whole chain (seconds of CPU after
#: years), so this process runs one at a time.
audit_check: web.AppKey[asyncio.Lock] = web.AppKey("audit_check")
provider: web.AppKey[Provider] = web.AppKey("provider")
sender: web.AppKey[Sender] = web.AppKey("sender")
timers: web.AppKey[TimerWorker] = web.AppKey("timers")
#: Route specs by handler, for authentication and the OpenAPI document.
routes: web.AppKey[dict[object, Route]] = web.AppKey("routes")

#: Request-scoped: the authenticated principal.
principal: web.RequestKey[Principal] = web.RequestKey("principal")
#: Request-scoped: what the handler adds to the request's one log line (`middleware.observe`).
log_fields: web.RequestKey[dict[str, object]] = web.RequestKey("log_fields")
