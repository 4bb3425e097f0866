"""Request bodies and query strings into pydantic models, with errors naming the field."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .errors import BadInput, RequestTimeout, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
#: Seconds a request's body may take to arrive. aiohttp waits as long as the client likes, so a
#: client that announces a body and trickles it would hold a connection and a handler.
BODY_TIMEOUT_S = 30.0


def _field(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(part) for part in loc) or None


def bad_input(exc: ValidationError) -> BadInput:
    """The first problem, named by its dotted field path."""
    error = exc.errors(include_url=False)[0]
    field = _field(error["loc"])
    kind = error["type"]
    if kind == "json_invalid":
        return BadInput("the body is not valid JSON")
    if kind == "model_type" and field is None:
        return BadInput("the body must be a JSON object")
    if kind == "extra_forbidden":
        return BadInput(f"{field}: unknown field", field=field)
    message = error["msg"].removeprefix("Value error, ")
    return BadInput(f"{field}: {message}" if field else message, field=field)


async def read_in_time(request: web.Request) -> bytes:
    """The body (kept by aiohttp for `post()` and `json()`); 408 when it takes too long."""
    if request.content.is_eof():  # most bodies come with their headers: no timer on the hot path
        return await request.read()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from None


async def json_body(request: web.Request, model: type[M]) -> M:
    """Parse a JSON body; 415 when it is not JSON, 413 past the size limit, 400 when invalid."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as Content-Type: application/json")
    raw = await read_in_time(request)
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise bad_input(exc) from exc


def query(request: web.Request, model: type[M]) -> M:
    """Parse the query string; a repeated parameter counts once, the first wins."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise bad_input(exc) from exc


MAX_ID = 2**63 - 1
_MAX_ID_DIGITS = len(str(MAX_ID))


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric id from the path; ids the database cannot hold do not exist."""
    digits = request.match_info[name].lstrip("0")
    # Checked before int(): Python refuses to convert more than 4300 digits (a 500).
    if not digits or len(digits) > _MAX_ID_DIGITS or int(digits) > MAX_ID:
        raise web.HTTPNotFound()
    return int(digits)
