"""Groups and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import Conflict, NotFound
from ..schemas import MemberStatus
from . import retention
from . import signals as signal_store
from .tables import groups, members

Row = dict[str, Any]


async def _code_taken(conn: AsyncConnection, code: str, except_id: int | None = None) -> None:
    query = sa.select(groups.c.id).where(groups.c.join_code == code)
    if except_id is not None:
        query = query.where(groups.c.id != except_id)
    if await conn.scalar(query) is not None:
        raise Conflict("another group already uses this join code", field="join_code")


async def create_group(conn: AsyncConnection, neighbourhood_id: int, values: Row, now: datetime) -> Row:
    await _code_taken(conn, values["join_code"])
    row = (
        await conn.execute(
            groups.insert()
            .values(**values, neighbourhood_id=neighbourhood_id, created_at=now)
            .returning(groups)
        )
    ).one()
    return dict(row._mapping)


async def get_group(conn: AsyncConnection, group_id: int) -> Row:
    """A live group; a deleted one is gone for every caller."""
    row = (
        await conn.execute(sa.select(groups).where(groups.c.id == group_id, groups.c.deleted_at.is_(None)))
    ).first()
    if row is None:
        raise NotFound("no such group")
    return dict(row._mapping)


async def list_groups(conn: AsyncConnection, neighbourhood_id: int) -> list[Row]:
    query = sa.select(groups).where(
        groups.c.neighbourhood_id == neighbourhood_id, groups.c.deleted_at.is_(None)
    )
    return [dict(row._mapping) for row in await conn.execute(query.order_by(groups.c.id))]


async def update_group(conn: AsyncConnection, group_id: int, changes: Row) -> Row:
    if "join_code" in changes:
        await _code_taken(conn, changes["join_code"], except_id=group_id)
    row = (
        await conn.execute(groups.update().where(groups.c.id == group_id).values(**changes).returning(groups))
    ).one()
    return dict(row._mapping)


async def delete_group(conn: AsyncConnection, group_id: int, now: datetime) -> int:
    """Soft-delete the group (its incidents stay on record) and erase its members' numbers.

    Returns how many members were removed.
    """
    ids = list(await conn.scalars(sa.select(members.c.id).where(members.c.group_id == group_id)))
    await retention.erase_members(conn, ids)
    removed = await conn.execute(members.delete().where(members.c.group_id == group_id))
    await conn.execute(groups.update().where(groups.c.id == group_id).values(deleted_at=now, join_code=None))
    return removed.rowcount or 0


async def member_counts(conn: AsyncConnection, group_id: int) -> dict[str, int]:
    query = (
        sa.select(members.c.status, sa.func.count())
        .where(members.c.group_id == group_id)
        .group_by(members.c.status)
    )
    counts = {str(status): 0 for status in MemberStatus}
    counts.update({status: n for status, n in await conn.execute(query)})
    return counts


async def add_member(conn: AsyncConnection, group_id: int, values: Row, now: datetime) -> Row:
    """Add an active member; one who texted STOP anywhere (as a member or not) stays opted out."""
    phone = values["phone"]
    if await conn.scalar(
        sa.select(members.c.id).where(members.c.group_id == group_id, members.c.phone == phone)
    ):
        raise Conflict("this phone is already a member of the group", field="phone")
    status = MemberStatus.opted_out if await signal_store.said_stop(conn, phone) else MemberStatus.active
    row = (
        await conn.execute(
            members.insert()
            .values(
                **values, group_id=group_id, status=status, consent_at=now, approved_at=now, created_at=now
            )
            .returning(members)
        )
    ).one()
    return dict(row._mapping)


async def list_members(conn: AsyncConnection, group_id: int) -> list[Row]:
    query = sa.select(members).where(members.c.group_id == group_id).order_by(members.c.id)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def remove_member(conn: AsyncConnection, group_id: int, member_id: int) -> Row:
    """Remove a member and forget their number everywhere it was kept."""
    await retention.erase_members(conn, [member_id])
    row = (
        await conn.execute(
            members.delete()
            .where(members.c.group_id == group_id, members.c.id == member_id)
            .returning(members)
        )
    ).first()
    if row is None:
        raise NotFound("no such member in this group")
    return dict(row._mapping)


async def update_member(conn: AsyncConnection, group_id: int, member_id: int, changes: Row) -> Row:
    """The member after the changes (none: as they are)."""
    where = (members.c.group_id == group_id, members.c.id == member_id)
    query = (
        members.update().where(*where).values(**changes).returning(members)
        if changes
        else sa.select(members).where(*where)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("no such member in this group")
    return dict(row._mapping)


async def get_member(conn: AsyncConnection, member_id: int) -> Row:
    row = (await conn.execute(sa.select(members).where(members.c.id == member_id))).first()
    if row is None:
        raise NotFound("no such member")
    return dict(row._mapping)
