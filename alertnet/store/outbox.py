"""Deliveries and the outbox: enqueue, claim under a lease, record outcomes, apply status callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import delivery, gsm, notify
from ..delivery import Priority, Purpose, Status
from ..schemas import MemberStatus
from . import claims
from .neighbourhoods import REACHABLE_RESPONDER
from .tables import deliveries, members, outbox, responders

#: Rank of a stored status, in SQL, so "forward only" holds inside one UPDATE.
_RANK_SQL = sa.case(
    {status.value: delivery.rank(status) for status in Status}, value=deliveries.c.status, else_=0
)


class NewDelivery(NamedTuple):
    """One message to store and send (a tuple: a fan-out makes one per ally, and a frozen
    dataclass costs a microsecond a field to make)."""

    to: str
    body: str
    purpose: Purpose
    incident_id: int | None = None
    group_id: int | None = None
    member_id: int | None = None
    responder_id: int | None = None
    escalation_round: int | None = None
    escalation_step: int | None = None


@dataclass(frozen=True)
class Job:
    id: int
    delivery_id: int
    #: Attempts including this one.
    attempts: int
    to: str
    body: str
    segments: int
    purpose: Purpose
    #: The delivery had an attempt whose outcome was never recorded (a crash): maybe a duplicate.
    unrecorded_attempt: bool
    created_at: datetime
    #: Whether the recipient can still be sent to: not opted out, not removed.
    reachable: bool = True
    #: Until when this worker holds the job; after it, anyone may claim it again.
    lease_until: datetime | None = None

    def skip_reason(self, now: datetime) -> str | None:
        """Why this message must not go out now, if it must not."""
        if not self.reachable:
            return "not_reachable"
        if now - self.created_at > timedelta(seconds=delivery.VALIDITY_S[self.purpose]):
            return "expired"
        return None


_ADD_DELIVERIES = deliveries.insert()
_ADD_DELIVERIES_RETURNING = _ADD_DELIVERIES.returning(deliveries.c.id)
_ADD_JOBS = outbox.insert()
_LAST_DELIVERY = sa.select(sa.func.max(deliveries.c.id))
#: SQLite: the jobs of the deliveries inserted after `after`, in one statement.
_ADD_JOBS_AFTER = outbox.insert().from_select(
    ["delivery_id", "priority", "due_at", "attempts"],
    sa.select(
        deliveries.c.id,
        sa.bindparam("priority", type_=outbox.c.priority.type),
        sa.bindparam("due_at", type_=outbox.c.due_at.type),
        sa.literal(0),
    ).where(deliveries.c.id > sa.bindparam("after")),
)


async def enqueue(conn: AsyncConnection, items: Sequence[NewDelivery], now: datetime) -> None:
    """Store deliveries and their outbox jobs in the caller's transaction.

    One multi-row INSERT per purpose (its priority), so a fan-out to a thousand allies is a
    handful of statements, not two thousand.
    """
    # A fan-out's allies share a few bodies (one per language): count each one's segments once.
    segments = {body: gsm.segments(body) for body in {item.body for item in items}}
    for purpose in dict.fromkeys(item.purpose for item in items):
        rows = [_delivery_row(item, segments[item.body], now) for item in items if item.purpose == purpose]
        await _insert(conn, rows, Priority[purpose], now)
    if items:
        await notify.announce(conn, notify.OUTBOX)


async def _insert(conn: AsyncConnection, rows: list[dict[str, Any]], priority: int, now: datetime) -> None:
    if conn.dialect.name == "sqlite":
        # SQLite has one writer at a time (this transaction holds its write lock), so the
        # deliveries after the highest id now are these: their jobs come from one INSERT ...
        # SELECT. Returning each new id through SQLAlchemy cost a fifth of a signal's intake.
        after = await conn.scalar(_LAST_DELIVERY)
        await conn.execute(_ADD_DELIVERIES, rows)
        await conn.execute(_ADD_JOBS_AFTER, {"after": after or 0, "priority": priority, "due_at": now})
        return
    made = (await conn.execute(_ADD_DELIVERIES_RETURNING, rows)).scalars()
    jobs = [{"delivery_id": did, "priority": priority, "due_at": now, "attempts": 0} for did in made]
    await conn.execute(_ADD_JOBS, jobs)


def _delivery_row(item: NewDelivery, segments: int, now: datetime) -> dict[str, Any]:
    return {
        "incident_id": item.incident_id,
        "group_id": item.group_id,
        "recipient_phone": item.to,
        "member_id": item.member_id,
        "responder_id": item.responder_id,
        "escalation_round": item.escalation_round,
        "escalation_step": item.escalation_step,
        "purpose": item.purpose,
        "body": item.body,
        "segments": segments,
        "status": Status.pending,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


async def backlog(conn: AsyncConnection, now: datetime) -> tuple[int, datetime | None]:
    """How many messages wait in the outbox (due or retried later), and since when the one that
    has waited longest has been due (None: none is due)."""
    waiting = await conn.scalar(sa.select(sa.func.count()).select_from(outbox))
    oldest: datetime | None = await conn.scalar(
        sa.select(sa.func.min(outbox.c.due_at)).where(outbox.c.due_at <= now)
    )
    return int(waiting or 0), oldest


async def claim_due_jobs(conn: AsyncConnection, now: datetime, limit: int, lease_s: float) -> list[Job]:
    """Take up to `limit` due jobs, most urgent first, leased so a crashed worker's jobs come back."""
    due = (
        sa.select(outbox.c.id)
        .where(outbox.c.due_at <= now, sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now))
        .order_by(outbox.c.priority, outbox.c.due_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    until = now + timedelta(seconds=lease_s)
    claimed = (
        await conn.execute(
            outbox.update()
            .where(claims.picked(outbox, due))
            .values(lease_until=until, attempts=outbox.c.attempts + 1)
            .returning(outbox.c.id, outbox.c.delivery_id, outbox.c.attempts)
        )
    ).all()
    if not claimed:
        return []
    by_delivery = {row.delivery_id: row for row in claimed}
    details = await conn.execute(
        sa.select(
            deliveries.c.id,
            deliveries.c.recipient_phone,
            deliveries.c.body,
            deliveries.c.segments,
            deliveries.c.purpose,
            deliveries.c.attempts,
            deliveries.c.created_at,
            # A member who said STOP, left or was removed since the message was queued gets nothing.
            sa.or_(
                REACHABLE_RESPONDER,
                members.c.status.in_([MemberStatus.active, MemberStatus.pending]),
            ).label("reachable"),
        )
        .outerjoin(members, members.c.id == deliveries.c.member_id)
        .outerjoin(responders, responders.c.id == deliveries.c.responder_id)
        .where(deliveries.c.id.in_(by_delivery))
    )
    jobs = [
        Job(
            id=by_delivery[d.id].id,
            delivery_id=d.id,
            attempts=by_delivery[d.id].attempts,
            to=d.recipient_phone,
            body=d.body,
            segments=d.segments,
            purpose=Purpose(d.purpose),
            unrecorded_attempt=by_delivery[d.id].attempts - 1 > d.attempts,
            created_at=d.created_at,
            reachable=bool(d.reachable),
            lease_until=until,
        )
        for d in details
    ]
    return sorted(jobs, key=lambda job: (Priority[job.purpose], job.id))


@dataclass(frozen=True)
class Sent:
    job: Job
    sid: str
    status: Status
    segments: int


@dataclass(frozen=True)
class Failed:
    job: Job
    code: str | None
    #: None: give up; otherwise try again at this time.
    retry_at: datetime | None


@dataclass(frozen=True)
class Released:
    """Not tried: too little of the lease was left to send it (it waited for a slot or its turn)."""

    job: Job


Outcome = Sent | Failed | Released


#: Record one attempt: attempts, provider id, segments and error always; the status only forward.
_RECORD = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.case(
            (_RANK_SQL < sa.bindparam("b_rank"), sa.bindparam("b_status")), else_=deliveries.c.status
        ),
        provider_sid=sa.func.coalesce(sa.bindparam("b_sid"), deliveries.c.provider_sid),
        segments=sa.func.coalesce(sa.bindparam("b_segments"), deliveries.c.segments),
        error_code=sa.func.coalesce(sa.bindparam("b_code"), deliveries.c.error_code),
        attempts=sa.bindparam("b_attempts"),
        updated_at=sa.bindparam("b_now"),
    )
)
_RETRY = (
    outbox.update()
    .where(outbox.c.id == sa.bindparam("b_job"))
    .values(due_at=sa.bindparam("b_due"), lease_until=None)
)
# Only while the lease is still ours: the claim's attempt is taken back, as none was made.
_RELEASE = (
    outbox.update()
    .where(outbox.c.id == sa.bindparam("b_job"), outbox.c.lease_until == sa.bindparam("b_until"))
    .values(lease_until=None, attempts=outbox.c.attempts - 1)
)


def _record_params(outcome: Sent | Failed, now: datetime) -> dict[str, Any]:
    if isinstance(outcome, Sent):
        status, sid, segments, code = outcome.status, outcome.sid, outcome.segments, None
    else:
        status = Status.failed if outcome.retry_at is None else Status.pending
        sid, segments, code = None, None, outcome.code
    return {
        "b_id": outcome.job.delivery_id,
        "b_rank": delivery.rank(status),
        "b_status": status,
        "b_sid": sid,
        "b_segments": segments,
        "b_code": code,
        "b_attempts": outcome.job.attempts,
        "b_now": now,
    }


async def record_outcomes(conn: AsyncConnection, outcomes: Sequence[Outcome], now: datetime) -> list[Failed]:
    """Write a batch of attempt outcomes in a few statements; returns those that failed for good."""
    released = [o for o in outcomes if isinstance(o, Released)]
    if released:
        await conn.execute(_RELEASE, [{"b_job": o.job.id, "b_until": o.job.lease_until} for o in released])
    tried = [o for o in outcomes if not isinstance(o, Released)]
    if not tried:
        return []
    await conn.execute(_RECORD, [_record_params(outcome, now) for outcome in tried])
    retries = [o for o in tried if isinstance(o, Failed) and o.retry_at is not None]
    if retries:
        await conn.execute(_RETRY, [{"b_job": o.job.id, "b_due": o.retry_at} for o in retries])
    done = [o.job.id for o in tried if isinstance(o, Sent) or o.retry_at is None]
    if done:
        await conn.execute(outbox.delete().where(outbox.c.id.in_(done)))
    return [o for o in tried if isinstance(o, Failed) and o.retry_at is None]


async def _advance(
    conn: AsyncConnection, delivery_id: int, status: Status, error_code: str | None, now: datetime
) -> bool:
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if error_code is not None:
        values["error_code"] = error_code
    result = await conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id, _RANK_SQL < delivery.rank(status))
        .values(**values)
    )
    return bool(result.rowcount)


async def record_status(
    conn: AsyncConnection,
    *,
    delivery_id: int | None,
    sid: str,
    status: Status,
    error_code: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Apply a provider status callback, forward only; returns the delivery when it moved."""
    where = deliveries.c.id == delivery_id if delivery_id is not None else deliveries.c.provider_sid == sid
    row = (await conn.execute(sa.select(deliveries).where(where))).first()
    if row is None or (row.provider_sid not in (None, sid)):
        return None
    if not await _advance(conn, row.id, status, error_code, now):
        return None
    return dict(row._mapping) | {"status": status, "error_code": error_code}


async def get_delivery(conn: AsyncConnection, delivery_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))).first()
    return dict(row._mapping) if row else None
