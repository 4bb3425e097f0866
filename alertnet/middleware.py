"""The middlewares: request id, logs and metrics; errors to JSON; authentication."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError
from sqlalchemy import exc as sa_exc

from . import keys
from .auth import BOOTSTRAP, Principal, same_secret
from .errors import AlertnetError, Forbidden, TooManyRequests, Unauthorized
from .store import db
from .store.tokens import principal_for

log = structlog.get_logger("alertnet.http")
#: What nginx logs for a request whose client left before the answer: not the server's error.
CLIENT_CLOSED = 499
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("payload_too_large", "the body is too large: at most 1 MiB, and 1,000 form fields"),
}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status, headers=headers)


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line, log the request (one line, with what the handler
    adds in `keys.log_fields`), count it."""
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-ID"] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:  # the client went away and aiohttp stopped the handler
            status = CLIENT_CLOSED
            raise
        finally:
            elapsed = time.perf_counter() - started
            request.app[keys.metrics].observe_request(request.method, _route_name(request), status, elapsed)
            fields = {
                **request.get(keys.log_fields, {}),
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            log.info("http_request", **fields)


def _duplicate(exc: sa_exc.IntegrityError) -> bool:
    """A unique constraint, on PostgreSQL (23505) or SQLite."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(orig)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One place that turns exceptions into `{"error": {...}}` answers."""
    try:
        return await handler(request)
    except AlertnetError as exc:
        headers = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return error_response(exc.status, exc.code, exc.message, exc.field, headers)
    except RequestPayloadError as exc:  # a body its Content-Encoding does not decode
        return error_response(400, "bad_request", f"the body cannot be read: {exc.__cause__ or exc}")
    except ConnectionResetError:  # the client went away before its body was in: nobody to answer
        return error_response(CLIENT_CLOSED, "client_closed_request", "the connection closed mid-request")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        # A 405 must say which methods the path takes.
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, message, headers=allow)
    except Exception as exc:
        if isinstance(exc, sa_exc.IntegrityError) and _duplicate(exc):
            # Two requests made the same thing at once: both passed the check, the unique index decided.
            return error_response(409, "conflict", "already exists: made by a request at the same moment")
        log.exception("unhandled_error", method=request.method, path=request.path)
        return error_response(500, "internal", "unexpected error on our side; quote the X-Request-ID")


async def _principal(request: web.Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("send Authorization: Bearer TOKEN")
    if not (secret.isascii() and secret.isprintable()):  # bytes aiohttp could not decode, say
        raise Unauthorized("this token is not valid (revoked, mistyped, or from another deployment)")
    admin_token = request.app[keys.settings].admin_token
    if admin_token is not None and same_secret(secret, admin_token.get_secret_value()):
        return BOOTSTRAP
    async with db.read(request.app[keys.engine]) as conn:
        principal = await principal_for(conn, secret)
    if principal is None:
        raise Unauthorized("this token is not valid (revoked, mistyped, or from another deployment)")
    return principal


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Routes that name roles need a token of one of them."""
    route = request.app[keys.routes].get(request.match_info.handler)
    if route is None or not route.roles:
        return await handler(request)
    principal = await _principal(request)
    if principal.role not in route.roles:
        raise Forbidden(f"a {principal.role} token cannot use this route")
    request[keys.principal] = principal
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[keys.principal]
