"""Inbound messages, memberships by phone, incidents and signals: what the alert loop reads and writes."""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..incidents import State
from ..schemas import MemberStatus
from .tables import (
    UNRESOLVED,
    groups,
    idempotency_keys,
    inbound_messages,
    incidents,
    join_hints,
    members,
    neighbourhoods,
    opt_outs,
    responders,
)
from .tables import signals as signals_table

Row = dict[str, Any]


# The hot path's statements are built once: building one and computing its cache key cost more
# than running it on SQLite. Their parameters are bound at each execution.
@functools.cache
def _insert_once(dialect_name: str, table: sa.Table) -> sa.Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def insert_once(conn: AsyncConnection, table: sa.Table, values: Row) -> bool:
    """Insert unless the key exists; False when it did. Concurrent twins wait, then find it."""
    result = await conn.execute(_insert_once(conn.dialect.name, table), values)
    return bool(result.rowcount)


async def claim_message(conn: AsyncConnection, sid: str, now: datetime) -> tuple[bool, str | None]:
    """Claim a MessageSid: (True, None) the first time; (False, the reply we gave) for a retry or replay."""
    if await insert_once(conn, inbound_messages, {"message_sid": sid, "received_at": now}):
        return True, None
    reply = await conn.scalar(
        sa.select(inbound_messages.c.reply).where(inbound_messages.c.message_sid == sid)
    )
    return False, reply


_SAVE_REPLY = inbound_messages.update().where(inbound_messages.c.message_sid == sa.bindparam("sid"))


async def save_reply(conn: AsyncConnection, sid: str, reply: str | None) -> None:
    await conn.execute(_SAVE_REPLY, {"sid": sid, "reply": reply})


_MEMBERSHIP = (
    sa.select(
        members,
        groups.c.name.label("group_name"),
        groups.c.join_code,
        groups.c.join_policy,
        groups.c.escalation,
        groups.c.neighbourhood_id,
    )
    .join(groups, groups.c.id == members.c.group_id)
    .where(groups.c.deleted_at.is_(None))
)


_MEMBERSHIPS = _MEMBERSHIP.where(members.c.phone == sa.bindparam("phone")).order_by(members.c.id)


async def memberships(conn: AsyncConnection, phone: str) -> list[Row]:
    """Every membership of a phone number, with its group."""
    return [dict(row._mapping) for row in await conn.execute(_MEMBERSHIPS, {"phone": phone})]


async def membership(conn: AsyncConnection, member_id: int) -> Row | None:
    row = (await conn.execute(_MEMBERSHIP.where(members.c.id == member_id))).first()
    return dict(row._mapping) if row else None


async def group_by_code(conn: AsyncConnection, code: str) -> Row | None:
    query = (
        sa.select(groups, neighbourhoods.c.language)
        .join(neighbourhoods, neighbourhoods.c.id == groups.c.neighbourhood_id)
        .where(groups.c.join_code == code.upper(), groups.c.deleted_at.is_(None))
    )
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


#: What deciding and addressing recipients needs of a group's members (every column would cost
#: converting each member's timestamps on every fan-out).
_GROUP_MEMBERS = (
    sa.select(members.c.id, members.c.phone, members.c.language, members.c.status, members.c.role)
    .where(members.c.group_id == sa.bindparam("group_id"))
    .order_by(members.c.id)
)


async def group_members(conn: AsyncConnection, group_id: int) -> list[Row]:
    """A group's members as recipients: id, phone, language, status, role."""
    return [dict(row._mapping) for row in await conn.execute(_GROUP_MEMBERS, {"group_id": group_id})]


_LOCK_GROUP = (
    sa.select(groups)
    .where(groups.c.id == sa.bindparam("group_id"), groups.c.deleted_at.is_(None))
    # FOR NO KEY UPDATE: a FOR UPDATE conflicted with the key-share lock that inserting deliveries
    # (a foreign key to the group) takes, so a signal and a timer holding the incident deadlocked.
    .with_for_update(key_share=True)
)


async def lock_group(conn: AsyncConnection, group_id: int) -> Row | None:
    """The live group, locked for this transaction on PostgreSQL: its incident numbers stay in order."""
    row = (await conn.execute(_LOCK_GROUP, {"group_id": group_id})).first()
    return dict(row._mapping) if row else None


async def lock_member_group(conn: AsyncConnection, membership: Row) -> Row | None:
    """`lock_group` for a row of `memberships`, read in this transaction.

    On SQLite the write transaction already shuts out every other writer, so the group's
    columns that came with the membership row are current: no second read.
    """
    if conn.dialect.name != "sqlite":
        return await lock_group(conn, membership["group_id"])
    return {
        "id": membership["group_id"],
        "neighbourhood_id": membership["neighbourhood_id"],
        "name": membership["group_name"],
        "join_code": membership["join_code"],
        "join_policy": membership["join_policy"],
        "escalation": membership["escalation"],
    }


_LAST_NUMBER = sa.select(sa.func.max(incidents.c.number)).where(
    incidents.c.group_id == sa.bindparam("group_id")
)
_OPEN_INCIDENT = incidents.insert().returning(incidents.c.id)


async def open_incident(conn: AsyncConnection, group_id: int, policy: Row, now: datetime) -> int:
    """A new incident, numbered after the group's last one, with the policy as it is now: its id."""
    last = await conn.scalar(_LAST_NUMBER, {"group_id": group_id})
    values = {
        "group_id": group_id,
        "number": (last or 0) + 1,
        "state": State.open,
        "policy": policy,
        "opened_at": now,
        "last_signal_at": now,
    }
    return int((await conn.execute(_OPEN_INCIDENT, values)).scalar_one())


_ADD_SIGNAL = signals_table.insert().returning(signals_table.c.id)


async def add_signal(conn: AsyncConnection, values: Row) -> int:
    return int((await conn.execute(_ADD_SIGNAL, values)).scalar_one())


# Only signals of incidents still open: after KLAAR the same text is news, and the flood count
# starts again.
_RECENT = (
    sa.select(
        signals_table.c.id, signals_table.c.incident_id, signals_table.c.text, signals_table.c.received_at
    )
    .join(incidents, incidents.c.id == signals_table.c.incident_id)
    .order_by(signals_table.c.received_at.desc())
)
_SINCE = (
    signals_table.c.group_id == sa.bindparam("group_id"),
    signals_table.c.received_at >= sa.bindparam("since"),
    UNRESOLVED,
)
_RECENT_OF_MEMBER = _RECENT.where(*_SINCE, signals_table.c.member_id == sa.bindparam("member_id"))
# As ix_signals_source is partial, the query repeats its condition.
_RECENT_OF_SOURCE = _RECENT.where(
    *_SINCE, signals_table.c.member_id.is_(None), signals_table.c.source == sa.bindparam("source")
)


async def recent_signals(
    conn: AsyncConnection, group_id: int, since: datetime, *, member_id: int | None, source: str
) -> list[Row]:
    """A sender's signals to a group's unresolved incidents since a time, newest first: a member's,
    or else those with no member from the same source (a device's token)."""
    params: dict[str, Any] = {"group_id": group_id, "since": since}
    if member_id is not None:
        rows = await conn.execute(_RECENT_OF_MEMBER, {**params, "member_id": member_id})
    else:
        rows = await conn.execute(_RECENT_OF_SOURCE, {**params, "source": source})
    return [dict(row._mapping) for row in rows]


async def incident_number(conn: AsyncConnection, incident_id: int) -> int:
    return int(await conn.scalar(sa.select(incidents.c.number).where(incidents.c.id == incident_id)) or 0)


def _phone_hash(phone: str) -> str:
    return hashlib.sha256(f"alertnet-hint:{phone}".encode()).hexdigest()


async def claim_join_hint(conn: AsyncConnection, phone: str, now: datetime, every_s: int) -> bool:
    """Whether an unknown number may get the join instructions now (at most once per `every_s`)."""
    key = _phone_hash(phone)
    if await insert_once(conn, join_hints, {"phone_hash": key, "sent_at": now}):
        return True
    sent_at = await conn.scalar(sa.select(join_hints.c.sent_at).where(join_hints.c.phone_hash == key))
    if sent_at is not None and (now - sent_at).total_seconds() < every_s:
        return False
    await conn.execute(join_hints.update().where(join_hints.c.phone_hash == key).values(sent_at=now))
    return True


async def remember_opt_out(conn: AsyncConnection, phone: str, now: datetime) -> bool:
    """A number that is no member texted STOP; False when it had already."""
    return await insert_once(conn, opt_outs, {"phone_hash": _phone_hash(phone), "at": now})


async def forget_opt_out(conn: AsyncConnection, phone: str) -> bool:
    """START: the number may be sent to again; False when it had not opted out."""
    result = await conn.execute(opt_outs.delete().where(opt_outs.c.phone_hash == _phone_hash(phone)))
    return bool(result.rowcount)


async def opted_out(conn: AsyncConnection, phone: str) -> bool:
    """Whether a number that is no member texted STOP (and not START since)."""
    query = sa.select(opt_outs.c.at).where(opt_outs.c.phone_hash == _phone_hash(phone))
    return (await conn.scalar(query)) is not None


async def said_stop(conn: AsyncConnection, phone: str) -> bool:
    """Whether the number is opted out anywhere (STOP, or Twilio's 21610): as a member, a
    responder or a number that is neither. Whoever adds it again starts it opted out."""
    query = sa.select(
        sa.exists().where(opt_outs.c.phone_hash == _phone_hash(phone))
        | sa.exists().where(members.c.phone == phone, members.c.status == MemberStatus.opted_out)
        | sa.exists().where(responders.c.phone == phone, responders.c.opted_out_at.is_not(None))
    )
    return bool(await conn.scalar(query))


async def claim_idempotency_key(
    conn: AsyncConnection, scope: str, key: str, request_hash: str, now: datetime, ttl: timedelta
) -> Row | None:
    """Claim a key for this request; returns the earlier row if the key was used within `ttl`.

    The insert comes first, so a twin request in another process waits on the unique key
    until this transaction commits, then finds the answer instead of doing the work twice.
    """
    values = {"scope": scope, "key": key, "request_hash": request_hash, "response": {}, "created_at": now}
    if await insert_once(conn, idempotency_keys, values):
        return None
    where = sa.and_(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
    row = (await conn.execute(sa.select(idempotency_keys).where(where))).one()
    if row.created_at < now - ttl:
        await conn.execute(idempotency_keys.update().where(where).values(**values))
        return None
    return dict(row._mapping)


async def save_idempotent_answer(conn: AsyncConnection, scope: str, key: str, response: Row) -> None:
    where = sa.and_(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
    await conn.execute(idempotency_keys.update().where(where).values(response=response))


async def purge_before(conn: AsyncConnection, day_ago: datetime, sids_before: datetime) -> int:
    """Forget idempotency keys and join hints from before `day_ago`, MessageSids from before `sids_before`."""
    removed = 0
    for table, column, before in (
        (idempotency_keys, idempotency_keys.c.created_at, day_ago),
        (join_hints, join_hints.c.sent_at, day_ago),
        (inbound_messages, inbound_messages.c.received_at, sids_before),
    ):
        result = await conn.execute(table.delete().where(column < before))
        removed += result.rowcount or 0
    return removed
