"""Looking back: incident lists, timelines, delivery outcomes and the figures for statistics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..delivery import Purpose, Status
from ..incidents import State
from ..reports import utc_bounds
from .incidents import REPORTER
from .neighbourhoods import get_neighbourhood
from .tables import UNRESOLVED, answers, audit_events, deliveries, groups, incidents, signals

Row = dict[str, Any]


async def list_incidents(
    conn: AsyncConnection,
    *,
    neighbourhood_id: int | None,
    group_id: int | None,
    state: str | None,
    before: int | None,
    limit: int,
) -> list[Row]:
    """Newest first, with their signals; scoped to a neighbourhood when given."""
    query = (
        sa.select(incidents, groups.c.neighbourhood_id)
        .join(groups, groups.c.id == incidents.c.group_id)
        .order_by(incidents.c.id.desc())
        .limit(limit)
    )
    if neighbourhood_id is not None:
        query = query.where(groups.c.neighbourhood_id == neighbourhood_id)
    if group_id is not None:
        query = query.where(incidents.c.group_id == group_id)
    if state is not None:
        query = query.where(incidents.c.state == state)
        if state != State.resolved:
            # Picked from the partial index of the few going incidents (as a subquery, or SQLite
            # prefers walking all incidents newest first), not the years before.
            query = query.where(incidents.c.id.in_(sa.select(incidents.c.id).where(UNRESOLVED)))
    if before is not None:
        query = query.where(incidents.c.id < before)
    rows = [dict(row._mapping) for row in await conn.execute(query)]
    by_incident = await signals_of(conn, [row["id"] for row in rows])
    return [row | {"signals": by_incident.get(row["id"], [])} for row in rows]


async def signals_of(conn: AsyncConnection, incident_ids: list[int]) -> dict[int, list[Row]]:
    if not incident_ids:
        return {}
    query = (
        sa.select(signals, REPORTER.label("reporter_key"))
        .where(signals.c.incident_id.in_(incident_ids))
        .order_by(signals.c.id)
    )
    found: dict[int, list[Row]] = defaultdict(list)
    for row in await conn.execute(query):
        signal = dict(row._mapping)
        who = signal.pop("reporter_key")
        signal["reporter"] = who if who.startswith(("member:", "anonymous:")) else "reported by number"
        found[signal["incident_id"]].append(signal)
    return found


async def answers_of(conn: AsyncConnection, incident_ids: list[int]) -> dict[int, list[Row]]:
    if not incident_ids:
        return {}
    query = sa.select(answers).where(answers.c.incident_id.in_(incident_ids)).order_by(answers.c.at)
    found: dict[int, list[Row]] = defaultdict(list)
    for row in await conn.execute(query):
        found[row.incident_id].append(dict(row._mapping))
    return found


async def alerted_counts(conn: AsyncConnection, incident_ids: list[int]) -> dict[int, int]:
    """Distinct allies each incident's signals were sent to."""
    if not incident_ids:
        return {}
    query = (
        sa.select(deliveries.c.incident_id, sa.func.count(sa.distinct(deliveries.c.recipient_phone)))
        .where(deliveries.c.incident_id.in_(incident_ids), deliveries.c.purpose == Purpose.fanout)
        .group_by(deliveries.c.incident_id)
    )
    return {incident_id: count for incident_id, count in await conn.execute(query)}


async def delivery_counts(conn: AsyncConnection, incident_id: int) -> dict[str, dict[str, int]]:
    query = (
        sa.select(deliveries.c.purpose, deliveries.c.status, sa.func.count())
        .where(deliveries.c.incident_id == incident_id)
        .group_by(deliveries.c.purpose, deliveries.c.status)
    )
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for purpose, status, count in await conn.execute(query):
        counts[purpose][status] = count
    return dict(counts)


async def timeline(conn: AsyncConnection, incident_id: int) -> list[Row]:
    """The incident's audit events, in order: the record of what happened and who answered."""
    query = (
        sa.select(
            audit_events.c.seq,
            audit_events.c.at,
            audit_events.c.type,
            audit_events.c.actor,
            audit_events.c.data,
        )
        .where(audit_events.c.subject == f"incident:{incident_id}")
        .order_by(audit_events.c.seq)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


async def neighbourhood_incidents(
    conn: AsyncConnection, neighbourhood_id: int, since: datetime | None, until: datetime | None
) -> list[Row]:
    """The neighbourhood's incidents opened from `since` up to `until` (None: open-ended)."""
    query = (
        sa.select(incidents)
        .join(groups, groups.c.id == incidents.c.group_id)
        .where(groups.c.neighbourhood_id == neighbourhood_id, *_between(incidents.c.opened_at, since, until))
        .order_by(incidents.c.opened_at)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


@dataclass(frozen=True)
class ForStats:
    """What a neighbourhood's statistics over some days are made from."""

    zone: str
    incidents: list[Row]
    answers: dict[int, list[Row]]
    alerted: dict[int, int]
    segments: list[tuple[datetime, int]]


async def for_stats(
    conn: AsyncConnection, neighbourhood_id: int, start: date | None, end: date | None
) -> ForStats:
    """The incidents opened and the messages sent on the neighbourhood's days `start` to `end`."""
    zone = (await get_neighbourhood(conn, neighbourhood_id))["timezone"]
    since, until = utc_bounds(start, end, zone)
    rows = await neighbourhood_incidents(conn, neighbourhood_id, since, until)
    ids = [row["id"] for row in rows]
    return ForStats(
        zone=zone,
        incidents=rows,
        answers=await answers_of(conn, ids),
        alerted=await alerted_counts(conn, ids),
        segments=await segments_sent(conn, neighbourhood_id, since, until),
    )


async def segments_sent(
    conn: AsyncConnection, neighbourhood_id: int, since: datetime | None, until: datetime | None
) -> list[tuple[datetime, int]]:
    """(UTC hour, segments) of the messages the provider took for this neighbourhood's groups.

    Summed per hour by the database: years of messages are a few thousand rows, where one row
    each kept the event loop busy for seconds. An hour lies in one local week wherever the zone's
    offset is whole hours; where it is half an hour, a message of the half hour around midnight
    into Monday may count in the week before.
    """
    stored = deliveries.c.created_at
    # SQLite holds UTC timestamps as text, "YYYY-MM-DD HH:MM:SS.ffffff".
    hour = (
        sa.func.substr(sa.cast(stored, sa.String), 1, 13)
        if conn.dialect.name == "sqlite"
        else sa.func.date_trunc("hour", stored)
    )
    query = (
        sa.select(hour, sa.func.sum(deliveries.c.segments))
        .join(groups, groups.c.id == deliveries.c.group_id)
        .where(
            groups.c.neighbourhood_id == neighbourhood_id,
            deliveries.c.status.not_in([Status.pending, Status.failed]),
            *_between(stored, since, until),
        )
        .group_by(hour)
    )
    return [(_utc_hour(at), int(segments)) for at, segments in await conn.execute(query)]


def _utc_hour(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _between(
    column: sa.ColumnElement[datetime], since: datetime | None, until: datetime | None
) -> list[sa.ColumnElement[bool]]:
    return [
        *([] if since is None else [column >= since]),
        *([] if until is None else [column < until]),
    ]
