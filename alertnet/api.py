"""Admin API handlers: parse, run the admin operation in one transaction, answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from . import admin, engine, keys
from . import audit as chain
from .auth import Role
from .bodies import json_body, path_id, query
from .errors import TooManyRequests
from .middleware import principal
from .policy import EscalationPolicy
from .schemas import (
    AuditPage,
    AuditQuery,
    AuditVerdict,
    AuditVerifyQuery,
    GroupIn,
    GroupOut,
    GroupPatch,
    MemberIn,
    MemberOut,
    MemberPatch,
    NeighbourhoodIn,
    NeighbourhoodOut,
    ResponderIn,
    ResponderOut,
    ResponderPatch,
    TokenCreated,
    TokenIn,
    TokenOut,
)
from .store import audit, db, groups, neighbourhoods, tokens

#: When a check of the audit chain finds another running, when to ask again.
VERIFY_RETRY_S = 5


def _now(request: web.Request) -> datetime:
    clock = request.app[keys.clock]
    return clock()


def _write(request: web.Request) -> Any:
    return db.write(request.app[keys.engine])


def _read(request: web.Request) -> Any:
    return db.read(request.app[keys.engine])


def _one(model: type[BaseModel], row: Any, status: int = 200) -> web.Response:
    return web.json_response(model.model_validate(row).model_dump(mode="json"), status=status)


def _many(model: type[BaseModel], rows: list[Any]) -> web.Response:
    return web.json_response({"items": [model.model_validate(r).model_dump(mode="json") for r in rows]})


async def _group_out(conn: AsyncConnection, row: dict[str, Any]) -> dict[str, Any]:
    gaps = await engine.coverage_gaps(conn, EscalationPolicy.model_validate(row["escalation"]))
    return {**row, "members": await groups.member_counts(conn, row["id"]), "coverage_gaps": gaps}


# Neighbourhoods and responders


async def create_neighbourhood(request: web.Request) -> web.Response:
    body = await json_body(request, NeighbourhoodIn)
    async with _write(request) as conn:
        row = await admin.create_neighbourhood(conn, principal(request), body, _now(request))
    return _one(NeighbourhoodOut, row, 201)


async def list_neighbourhoods(request: web.Request) -> web.Response:
    who = principal(request)
    async with _read(request) as conn:
        rows = await neighbourhoods.list_neighbourhoods(
            conn, None if who.role == Role.admin else who.neighbourhood_id
        )
    return _many(NeighbourhoodOut, rows)


async def get_neighbourhood(request: web.Request) -> web.Response:
    async with _read(request) as conn:
        row = await admin.neighbourhood(conn, principal(request), path_id(request))
    return _one(NeighbourhoodOut, row)


async def add_responder(request: web.Request) -> web.Response:
    neighbourhood_id = path_id(request)
    body = await json_body(request, ResponderIn)
    async with _write(request) as conn:
        row = await admin.add_responder(conn, principal(request), neighbourhood_id, body, _now(request))
    return _one(ResponderOut, row, 201)


async def update_responder(request: web.Request) -> web.Response:
    responder_id = path_id(request)
    body = await json_body(request, ResponderPatch)
    async with _write(request) as conn:
        row = await admin.update_responder(conn, principal(request), responder_id, body, _now(request))
    return _one(ResponderOut, row)


async def list_responders(request: web.Request) -> web.Response:
    async with _read(request) as conn:
        hood = await admin.neighbourhood(conn, principal(request), path_id(request))
        rows = await neighbourhoods.list_responders(conn, hood["id"])
    return _many(ResponderOut, rows)


# Groups and members


async def create_group(request: web.Request) -> web.Response:
    neighbourhood_id = path_id(request)
    body = await json_body(request, GroupIn)
    async with _write(request) as conn:
        row = await admin.create_group(conn, principal(request), neighbourhood_id, body, _now(request))
        out = await _group_out(conn, row)
    return _one(GroupOut, out, 201)


async def list_groups(request: web.Request) -> web.Response:
    async with _read(request) as conn:
        hood = await admin.neighbourhood(conn, principal(request), path_id(request))
        rows = [await _group_out(conn, row) for row in await groups.list_groups(conn, hood["id"])]
    return _many(GroupOut, rows)


async def get_group(request: web.Request) -> web.Response:
    async with _read(request) as conn:
        row = await admin.group(conn, principal(request), path_id(request))
        out = await _group_out(conn, row)
    return _one(GroupOut, out)


async def update_group(request: web.Request) -> web.Response:
    group_id = path_id(request)
    body = await json_body(request, GroupPatch)
    async with _write(request) as conn:
        row = await admin.update_group(conn, principal(request), group_id, body, _now(request))
        out = await _group_out(conn, row)
    return _one(GroupOut, out)


async def delete_group(request: web.Request) -> web.Response:
    group_id = path_id(request)
    async with _write(request) as conn:
        await admin.delete_group(conn, principal(request), group_id, _now(request))
    return web.Response(status=204)


async def add_member(request: web.Request) -> web.Response:
    group_id = path_id(request)
    body = await json_body(request, MemberIn)
    async with _write(request) as conn:
        row = await admin.add_member(conn, principal(request), group_id, body, _now(request))
    return _one(MemberOut, row, 201)


async def list_members(request: web.Request) -> web.Response:
    async with _read(request) as conn:
        row = await admin.group(conn, principal(request), path_id(request))
        rows = await groups.list_members(conn, row["id"])
    return _many(MemberOut, rows)


async def update_member(request: web.Request) -> web.Response:
    group_id, member_id = path_id(request), path_id(request, "member_id")
    body = await json_body(request, MemberPatch)
    async with _write(request) as conn:
        row = await admin.update_member(conn, principal(request), group_id, member_id, body, _now(request))
    return _one(MemberOut, row)


async def remove_member(request: web.Request) -> web.Response:
    group_id, member_id = path_id(request), path_id(request, "member_id")
    async with _write(request) as conn:
        await admin.remove_member(conn, principal(request), group_id, member_id, _now(request))
    return web.Response(status=204)


async def approve_member(request: web.Request) -> web.Response:
    group_id, member_id = path_id(request), path_id(request, "member_id")
    async with _write(request) as conn:
        row = await admin.approve_member(conn, principal(request), group_id, member_id, _now(request))
    return _one(MemberOut, row)


# Tokens


async def create_token(request: web.Request) -> web.Response:
    body = await json_body(request, TokenIn)
    async with _write(request) as conn:
        secret, row = await admin.issue_token(conn, principal(request), body, _now(request))
    return _one(TokenCreated, {**row, "token": secret}, 201)


async def list_tokens(request: web.Request) -> web.Response:
    who = principal(request)
    async with _read(request) as conn:
        rows = await tokens.list_tokens(conn, None if who.role == Role.admin else who.neighbourhood_id)
    return _many(TokenOut, rows)


async def revoke_token(request: web.Request) -> web.Response:
    token_id = path_id(request)
    async with _write(request) as conn:
        await admin.revoke_token(conn, principal(request), token_id, _now(request))
    return web.Response(status=204)


# Audit


async def list_audit(request: web.Request) -> web.Response:
    who = principal(request)
    params = query(request, AuditQuery)
    scope = None if who.role == Role.admin else who.neighbourhood_id
    async with _read(request) as conn:
        rows = await audit.page(conn, after=params.after, limit=params.limit, neighbourhood_id=scope)
    next_after = rows[-1]["seq"] if len(rows) == params.limit else None
    return _one(AuditPage, {"items": rows, "next_after": next_after})


async def verify_audit(request: web.Request) -> web.Response:
    who = principal(request)
    params = query(request, AuditVerifyQuery)
    anchor = None if params.expect is None else chain.Anchor.parse(params.expect)
    checking = request.app[keys.audit_check]
    if checking.locked():
        raise TooManyRequests(
            "the audit chain is being checked; try again in a few seconds", retry_after_s=VERIFY_RETRY_S
        )
    async with checking, _read(request) as conn:
        verdict = await audit.verify(conn, None if who.role == Role.admin else who.neighbourhood_id, anchor)
    return _one(AuditVerdict, verdict)
