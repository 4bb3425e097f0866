"""Neighbourhoods and their responders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import Conflict, NotFound
from . import signals as signal_store
from .tables import neighbourhoods, responders

#: On a row joined to `responders`: a responder who can be sent to (not removed, no STOP).
REACHABLE_RESPONDER = responders.c.id.is_not(None) & responders.c.opted_out_at.is_(None)

Row = dict[str, Any]


async def create_neighbourhood(conn: AsyncConnection, values: Row, now: datetime) -> Row:
    row = (
        await conn.execute(neighbourhoods.insert().values(**values, created_at=now).returning(neighbourhoods))
    ).one()
    return dict(row._mapping)


async def get_neighbourhood(conn: AsyncConnection, neighbourhood_id: int) -> Row:
    row = (
        await conn.execute(sa.select(neighbourhoods).where(neighbourhoods.c.id == neighbourhood_id))
    ).first()
    if row is None:
        raise NotFound("no such neighbourhood")
    return dict(row._mapping)


async def list_neighbourhoods(conn: AsyncConnection, only_id: int | None) -> list[Row]:
    query = sa.select(neighbourhoods).order_by(neighbourhoods.c.id)
    if only_id is not None:
        query = query.where(neighbourhoods.c.id == only_id)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def add_responder(conn: AsyncConnection, neighbourhood_id: int, values: Row, now: datetime) -> Row:
    taken = await conn.scalar(
        sa.select(responders.c.id).where(
            responders.c.neighbourhood_id == neighbourhood_id, responders.c.phone == values["phone"]
        )
    )
    if taken is not None:
        raise Conflict("this neighbourhood already has a responder with that phone", field="phone")
    stopped = await _opted_out_at(conn, values["phone"], now)
    row = (
        await conn.execute(
            responders.insert()
            .values(**values, neighbourhood_id=neighbourhood_id, opted_out_at=stopped, created_at=now)
            .returning(responders)
        )
    ).one()
    return dict(row._mapping)


async def get_responder(conn: AsyncConnection, responder_id: int) -> Row:
    row = (await conn.execute(sa.select(responders).where(responders.c.id == responder_id))).first()
    if row is None:
        raise NotFound("no such responder")
    return dict(row._mapping)


async def update_responder(conn: AsyncConnection, current: Row, changes: Row, now: datetime) -> Row:
    """Apply `changes`; a new phone brings its own opt-out (STOP belongs to a number, not a person)."""
    if "phone" in changes and changes["phone"] != current["phone"]:
        taken = await conn.scalar(
            sa.select(responders.c.id).where(
                responders.c.neighbourhood_id == current["neighbourhood_id"],
                responders.c.phone == changes["phone"],
            )
        )
        if taken is not None:
            raise Conflict("this neighbourhood already has a responder with that phone", field="phone")
        changes = {**changes, "opted_out_at": await _opted_out_at(conn, changes["phone"], now)}
    if not changes:
        return current
    query = (
        responders.update().where(responders.c.id == current["id"]).values(**changes).returning(responders)
    )
    return dict((await conn.execute(query)).one()._mapping)


async def _opted_out_at(conn: AsyncConnection, phone: str, now: datetime) -> datetime | None:
    """A responder's `opted_out_at` for this number: one who texted STOP anywhere stays opted out
    (chains skip them) until their START."""
    return now if await signal_store.said_stop(conn, phone) else None


async def set_responders_opted_out(conn: AsyncConnection, phone: str, at: datetime | None) -> list[Row]:
    """STOP (`at`) or START (None) from a responder's number, in every neighbourhood: the rows it changed."""
    changed = (
        responders.c.opted_out_at.is_(None) if at is not None else responders.c.opted_out_at.is_not(None)
    )
    query = (
        responders.update()
        .where(responders.c.phone == phone, changed)
        .values(opted_out_at=at)
        .returning(responders)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


async def set_responders_language(conn: AsyncConnection, phone: str, language: str) -> list[Row]:
    """TAAL/LANGUAGE from a responder's number, in every neighbourhood: the rows it changed."""
    query = (
        responders.update()
        .where(responders.c.phone == phone, responders.c.language != language)
        .values(language=language)
        .returning(responders)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


async def list_responders(conn: AsyncConnection, neighbourhood_id: int) -> list[Row]:
    query = sa.select(responders).where(responders.c.neighbourhood_id == neighbourhood_id)
    return [dict(row._mapping) for row in await conn.execute(query.order_by(responders.c.id))]


async def foreign_responders(conn: AsyncConnection, neighbourhood_id: int, ids: set[int]) -> set[int]:
    """Those of `ids` that are not responders of this neighbourhood."""
    if not ids:
        return set()
    found = await conn.scalars(
        sa.select(responders.c.id).where(
            responders.c.neighbourhood_id == neighbourhood_id, responders.c.id.in_(ids)
        )
    )
    return ids - set(found)
