"""API tokens, kept as hashes of their secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth import Principal, Role, hash_secret, new_secret
from ..errors import NotFound
from .tables import tokens

Row = dict[str, Any]


async def create_token(
    conn: AsyncConnection,
    *,
    role: Role,
    neighbourhood_id: int | None,
    group_id: int | None,
    label: str | None,
    created_by: str,
    now: datetime,
) -> tuple[str, Row]:
    """A new token; returns its secret (never stored) and its row."""
    secret = new_secret()
    row = (
        await conn.execute(
            tokens.insert()
            .values(
                secret_hash=hash_secret(secret),
                role=role,
                neighbourhood_id=neighbourhood_id,
                group_id=group_id,
                label=label,
                created_by=created_by,
                created_at=now,
            )
            .returning(tokens)
        )
    ).one()
    return secret, dict(row._mapping)


async def principal_for(conn: AsyncConnection, secret: str) -> Principal | None:
    """The principal of a live token, or None."""
    row = (
        await conn.execute(
            sa.select(tokens).where(
                tokens.c.secret_hash == hash_secret(secret), tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    return Principal(
        token_id=str(row.id),
        role=Role(row.role),
        neighbourhood_id=row.neighbourhood_id,
        group_id=row.group_id,
    )


async def list_tokens(conn: AsyncConnection, neighbourhood_id: int | None) -> list[Row]:
    query = sa.select(tokens).where(tokens.c.revoked_at.is_(None)).order_by(tokens.c.id)
    if neighbourhood_id is not None:
        query = query.where(tokens.c.neighbourhood_id == neighbourhood_id)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def get_token(conn: AsyncConnection, token_id: int) -> Row:
    row = (
        await conn.execute(sa.select(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)))
    ).first()
    if row is None:
        raise NotFound("no such token")
    return dict(row._mapping)


async def revoke_token(conn: AsyncConnection, token_id: int, now: datetime) -> None:
    await conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked_at=now))
