"""Incidents, their timers and answers, and who was alerted: what escalation reads and writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import notify
from ..delivery import Purpose
from . import claims
from .neighbourhoods import REACHABLE_RESPONDER
from .tables import (
    UNRESOLVED,
    answers,
    deliveries,
    groups,
    incidents,
    members,
    neighbourhoods,
    responders,
    signals,
    timers,
)

Row = dict[str, Any]

_WITH_GROUP = (
    sa.select(
        incidents,
        groups.c.name.label("group_name"),
        groups.c.neighbourhood_id,
        neighbourhoods.c.timezone,
        neighbourhoods.c.language,
        neighbourhoods.c.share_reporter_phone,
    )
    .join(groups, groups.c.id == incidents.c.group_id)
    .join(neighbourhoods, neighbourhoods.c.id == groups.c.neighbourhood_id)
)


_GET = _WITH_GROUP.where(incidents.c.id == sa.bindparam("incident_id"))
_GET_LOCKED = _GET.with_for_update(of=incidents)


async def get(conn: AsyncConnection, incident_id: int, *, lock: bool = False) -> Row | None:
    """An incident with its group's name and its neighbourhood's zone; locked for the transaction if asked."""
    row = (await conn.execute(_GET_LOCKED if lock else _GET, {"incident_id": incident_id})).first()
    return dict(row._mapping) if row else None


_LATEST_UNRESOLVED = (
    _WITH_GROUP.where(incidents.c.group_id == sa.bindparam("group_id"), UNRESOLVED)
    .order_by(incidents.c.last_signal_at.desc())
    .limit(1)
    .with_for_update(of=incidents)
)


async def latest_unresolved(conn: AsyncConnection, group_id: int) -> Row | None:
    """A group's newest incident that is not resolved, as `get` gives it, locked."""
    row = (await conn.execute(_LATEST_UNRESOLVED, {"group_id": group_id})).first()
    return dict(row._mapping) if row else None


async def unresolved_ids(conn: AsyncConnection, group_id: int) -> list[int]:
    query = sa.select(incidents.c.id).where(incidents.c.group_id == group_id, UNRESOLVED)
    return list(await conn.scalars(query.order_by(incidents.c.id)))


# The id's parameter is not named after a column: the others name the columns to set.
_UPDATE = incidents.update().where(incidents.c.id == sa.bindparam("incident_id_"))


async def update(conn: AsyncConnection, incident_id: int, **values: Any) -> None:
    await conn.execute(_UPDATE, {"incident_id_": incident_id, **values})


_SIGNAL_ROWS = (
    sa.select(signals).where(signals.c.incident_id == sa.bindparam("incident_id")).order_by(signals.c.id)
)


async def signal_rows(conn: AsyncConnection, incident_id: int) -> list[Row]:
    return [dict(row._mapping) for row in await conn.execute(_SIGNAL_ROWS, {"incident_id": incident_id})]


def reporter_of(rows: sa.FromClause) -> sa.ColumnElement[str]:
    """Who reported a signal: the member, else the number given, else one anonymous source per
    channel (for `signals` or an alias of it)."""
    return sa.case(
        (rows.c.member_id.is_not(None), sa.literal("member:") + sa.cast(rows.c.member_id, sa.String)),
        else_=sa.func.coalesce(
            sa.func.nullif(rows.c.reporter_phone, ""), sa.literal("anonymous:") + rows.c.channel
        ),
    )


REPORTER = reporter_of(signals)
_EARLIER, _NEW = signals.alias("earlier"), signals.alias("new")
#: Whether the new signal's reporter reported in the incident before: an index lookup per
#: earlier signal that stops at the first match, where counting them all anew read every one.
_REPORTED_BEFORE = sa.exists().where(
    _EARLIER.c.incident_id == sa.bindparam("incident_id"),
    _EARLIER.c.id != sa.bindparam("signal_id"),
    reporter_of(_EARLIER)
    == sa.select(reporter_of(_NEW)).where(_NEW.c.id == sa.bindparam("signal_id")).scalar_subquery(),
)
_NOTE_SIGNAL = (
    incidents.update()
    .where(incidents.c.id == sa.bindparam("incident_id"))
    .values(reporters=incidents.c.reporters + sa.case((_REPORTED_BEFORE, 0), else_=1))
    .returning(incidents.c.reporters)
)


async def note_signal(conn: AsyncConnection, incident_id: int, signal_id: int, **values: Any) -> int:
    """Update an incident after its signal `signal_id` (stored), counting its reporter if new;
    returns the count. The caller holds the incident's lock, so counts never race."""
    params = {"incident_id": incident_id, "signal_id": signal_id, **values}
    return int((await conn.execute(_NOTE_SIGNAL, params)).scalar_one())


async def responders_by_id(conn: AsyncConnection, ids: set[int]) -> dict[int, Row]:
    if not ids:
        return {}
    rows = await conn.execute(sa.select(responders).where(responders.c.id.in_(ids)))
    return {row.id: dict(row._mapping) for row in rows}


async def responders_by_phone(conn: AsyncConnection, phone: str) -> list[Row]:
    rows = await conn.execute(sa.select(responders).where(responders.c.phone == phone))
    return [dict(row._mapping) for row in rows]


async def add_timer(conn: AsyncConnection, incident_id: int, **values: Any) -> None:
    await conn.execute(timers.insert().values(incident_id=incident_id, **values))
    await notify.announce(conn, notify.TIMERS)


async def claim_due_timers(conn: AsyncConnection, now: datetime, limit: int, lease_s: float) -> list[Row]:
    """Due timers, earliest first, leased to this worker: each fires once even with several processes."""
    due = (
        sa.select(timers.c.id)
        .where(
            timers.c.fired_at.is_(None),
            timers.c.due_at <= now,
            sa.or_(timers.c.lease_until.is_(None), timers.c.lease_until < now),
        )
        .order_by(timers.c.due_at, timers.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await conn.execute(
        timers.update()
        .where(claims.picked(timers, due))
        .values(lease_until=now + timedelta(seconds=lease_s))
        .returning(timers)
    )
    return sorted((dict(row._mapping) for row in rows), key=lambda t: (t["due_at"], t["id"]))


_MARK_FIRED = (
    timers.update()
    .where(timers.c.id == sa.bindparam("timer_id"), timers.c.fired_at.is_(None))
    .values(fired_at=sa.bindparam("fired_at"), lease_until=None)
)


async def mark_fired(conn: AsyncConnection, timer_id: int, now: datetime) -> bool:
    """Mark a timer fired; False if it had been already."""
    result = await conn.execute(_MARK_FIRED, {"timer_id": timer_id, "fired_at": now})
    return bool(result.rowcount)


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the next unfired timer may be claimed: a leased one not before its lease ends (else
    the worker would look again at once, flat out, until it does)."""
    claimable = sa.case(
        (
            sa.and_(timers.c.lease_until.is_not(None), timers.c.lease_until > timers.c.due_at),
            timers.c.lease_until,
        ),
        else_=timers.c.due_at,
    )
    value: datetime | None = await conn.scalar(
        sa.select(sa.func.min(claimable)).where(timers.c.fired_at.is_(None))
    )
    return value


async def oldest_due_timer(conn: AsyncConnection, now: datetime) -> datetime | None:
    """When the timer that is most overdue, and not fired, fell due (None: none is)."""
    value: datetime | None = await conn.scalar(
        sa.select(sa.func.min(timers.c.due_at)).where(timers.c.fired_at.is_(None), timers.c.due_at <= now)
    )
    return value


async def alerted(conn: AsyncConnection, incident_id: int, purposes: tuple[Purpose, ...]) -> list[Row]:
    """Everyone who got a message of these purposes about the incident, once per number."""
    query = (
        sa.select(
            deliveries.c.recipient_phone,
            deliveries.c.member_id,
            deliveries.c.responder_id,
            sa.func.coalesce(members.c.language, responders.c.language, "nl").label("language"),
        )
        .outerjoin(members, members.c.id == deliveries.c.member_id)
        .outerjoin(responders, responders.c.id == deliveries.c.responder_id)
        .where(
            deliveries.c.incident_id == incident_id,
            deliveries.c.purpose.in_(purposes),
            # Still reachable: an active member (not one who said STOP, left or was removed), or a
            # responder who did not say STOP.
            sa.or_(
                members.c.status == "active",
                REACHABLE_RESPONDER,
            ),
        )
        .order_by(deliveries.c.id)
    )
    seen: dict[str, Row] = {}
    for row in await conn.execute(query):
        seen.setdefault(row.recipient_phone, dict(row._mapping))
    return list(seen.values())


async def reporting_members(conn: AsyncConnection, incident_id: int) -> list[Row]:
    query = (
        sa.select(
            members.c.phone.label("recipient_phone"), members.c.id.label("member_id"), members.c.language
        )
        .join(signals, signals.c.member_id == members.c.id)
        .where(signals.c.incident_id == incident_id, members.c.status == "active")
        .distinct()
    )
    return [dict(row._mapping) | {"responder_id": None} for row in await conn.execute(query)]


def _reported_in(incident_id: sa.ColumnElement[int] | int, member_ids: list[int]) -> sa.ColumnElement[bool]:
    """Signals of the incident from these members, read through the incident's few signals: `+ 0`
    keeps the planner off the members' index, which holds every signal they ever sent."""
    return sa.and_(signals.c.incident_id == incident_id, (signals.c.member_id + 0).in_(member_ids or [-1]))


async def reported_by(conn: AsyncConnection, incident_id: int, member_id: int) -> bool:
    query = sa.select(signals.c.id).where(_reported_in(incident_id, [member_id]))
    return await conn.scalar(query.limit(1)) is not None


async def step_deliveries(conn: AsyncConnection, incident_id: int, round_: int, step: int) -> list[str]:
    """The statuses of the pages sent for one chain position."""
    query = sa.select(deliveries.c.status).where(
        deliveries.c.incident_id == incident_id,
        deliveries.c.purpose == Purpose.escalation,
        deliveries.c.escalation_round == round_,
        deliveries.c.escalation_step == step,
    )
    return list(await conn.scalars(query))


async def add_answer(conn: AsyncConnection, incident_id: int, kind: str, at: datetime, **who: Any) -> None:
    await conn.execute(answers.insert().values(incident_id=incident_id, kind=kind, at=at, **who))


async def answerable(
    conn: AsyncConnection, phone: str, member_ids: list[int], number: int | None
) -> list[Row]:
    """The incidents a person may answer about, newest first: those they were alerted about or
    reported; with a number, those with that number (resolved ones too), else the unresolved ones.
    Several groups may each have a #number."""
    # From the few candidates to their messages and signals, each an index probe: the other way
    # round read every message ever sent to find this number's (0.1 s an answer after 720,000).
    alerted_about = sa.exists().where(
        deliveries.c.incident_id == incidents.c.id, deliveries.c.recipient_phone == phone
    )
    reported = sa.exists().where(_reported_in(incidents.c.id, member_ids))
    candidates = UNRESOLVED if number is None else incidents.c.number == number
    query = _WITH_GROUP.where(candidates, sa.or_(alerted_about, reported))
    rows = await conn.execute(
        query.order_by(incidents.c.last_signal_at.desc(), incidents.c.id.desc()).limit(20)
    )
    return [dict(row._mapping) for row in rows]


async def silent_since(conn: AsyncConnection, before: datetime, limit: int = 100) -> list[int]:
    """Unresolved incidents whose last signal came before `before`."""
    query = sa.select(incidents.c.id).where(UNRESOLVED, incidents.c.last_signal_at < before).limit(limit)
    return list(await conn.scalars(query))
