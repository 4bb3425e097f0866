"""Membership by SMS: join with consent and approval, leave, STOP and START. Returns the reply text.

Each function runs in the caller's transaction and audits what it changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from . import messages, recipients
from .auth import PROVIDER, Actor, resident, stranger
from .delivery import Purpose
from .phones import mask
from .policy import EscalationPolicy
from .schemas import JoinPolicy, MemberStatus
from .store import audit, groups, neighbourhoods, outbox, retention
from .store import signals as store
from .store.tables import members

Row = dict[str, Any]


def _who(rows: list[Row]) -> Actor:
    return resident(rows[0]["id"], rows[0]["role"]) if rows else stranger()


async def _audit(conn: AsyncConnection, who: Actor, kind: str, row: Row, now: datetime, **data: Any) -> None:
    await audit.append(
        conn,
        who=who,
        type=kind,
        at=now,
        subject=f"member:{row['id']}",
        neighbourhood_id=row["neighbourhood_id"],
        data={"group_id": row["group_id"], **data},
    )


def _admitted(row: Row, now: datetime) -> Row:
    """Status once consent and approval are both in (an open group approves itself)."""
    approved = row["approved_at"] or (now if row["join_policy"] == JoinPolicy.open else None)
    status = MemberStatus.active if row["consent_at"] and approved else MemberStatus.pending
    return {"status": status, "approved_at": approved}


async def join(
    conn: AsyncConnection,
    phone: str,
    rows: list[Row],
    code: str | None,
    name: str | None,
    lang: str,
    said_in: str | None,
    now: datetime,
) -> str:
    """Ask a number to join the group of that code. A newcomer reads the language of the word they
    used (JOIN: English, AANMELDEN: Dutch); a member keeps theirs."""
    if not code:
        return messages.render("join_needs_code", lang)
    group = await store.group_by_code(conn, code)
    if group is None:
        return messages.render("unknown_code", lang, code=code)
    existing = next((r for r in rows if r["group_id"] == group["id"]), None)
    if existing is not None:
        if existing["status"] == MemberStatus.active:
            return messages.render("already_member", existing["language"], group=group["name"])
        if existing["consent_at"] is None:
            return messages.render("join_rules", existing["language"], group=group["name"])
        return messages.render("awaiting_approval", existing["language"], group=group["name"])
    language = lang if rows else said_in or group["language"]
    row = (
        await conn.execute(
            members.insert()
            .values(
                group_id=group["id"],
                phone=phone,
                name=name,
                share_name=False,
                language=language,
                role="ally",
                status=MemberStatus.pending,
                created_at=now,
            )
            .returning(members.c.id)
        )
    ).scalar_one()
    await _audit(
        conn,
        stranger(),
        "member.joined",
        {"id": row, "group_id": group["id"], "neighbourhood_id": group["neighbourhood_id"]},
        now,
        phone=mask(phone),
        by="sms",
    )
    return messages.render("join_rules", language, group=group["name"])


async def consent(conn: AsyncConnection, rows: list[Row], now: datetime) -> str | None:
    """YES/JA: the sender accepts the rules of every group they asked to join."""
    waiting = [r for r in rows if r["status"] == MemberStatus.pending and r["consent_at"] is None]
    if not waiting:
        return None
    replies = []
    for row in waiting:
        row = {**row, "consent_at": now}
        change = _admitted(row, now)
        await conn.execute(members.update().where(members.c.id == row["id"]).values(consent_at=now, **change))
        await _audit(
            conn, resident(row["id"], row["role"]), "member.consented", row, now, status=change["status"]
        )
        if change["status"] == MemberStatus.active:
            replies.append(messages.render("welcome", row["language"], group=row["group_name"]))
        else:
            await _ask_coordinators(conn, row, now)
            replies.append(messages.render("awaiting_approval", row["language"], group=row["group_name"]))
    return " ".join(replies)


async def _ask_coordinators(conn: AsyncConnection, row: Row, now: datetime) -> None:
    coordinators = recipients.coordinators(await store.group_members(conn, row["group_id"]))
    fields = {
        "group": row["group_name"],
        "name": row["name"] or "?",
        "phone": mask(row["phone"]),
        "id": row["id"],
    }
    await outbox.enqueue(
        conn, [_notice(c, row["group_id"], "approve_request", **fields) for c in coordinators], now
    )


def _notice(coordinator: Mapping[str, Any], group_id: int, key: str, **fields: Any) -> outbox.NewDelivery:
    """A notice for a coordinator of a group, in their language."""
    return outbox.NewDelivery(
        to=coordinator["phone"],
        purpose=Purpose.notice,
        group_id=group_id,
        member_id=coordinator["id"],
        body=messages.render(key, coordinator["language"], **fields),
    )


async def approve(conn: AsyncConnection, rows: list[Row], member_id: int, lang: str, now: datetime) -> str:
    """JA n from a coordinator: admit join request n of a group they coordinate."""
    target = await store.membership(conn, member_id)
    coordinates = {r["group_id"] for r in recipients.coordinators(rows)}
    if target is None or target["group_id"] not in coordinates or target["status"] != MemberStatus.pending:
        return messages.render("nothing_to_approve", lang, id=member_id)
    mine = [r for r in rows if r["group_id"] == target["group_id"]]
    await admit(conn, _who(mine), target, now)
    # The reply is the coordinator's, so in their language.
    return messages.render(
        "approved",
        mine[0]["language"],
        name=target["name"] or mask(target["phone"]),
        group=target["group_name"],
    )


async def admit(conn: AsyncConnection, who: Any, target: Row, now: datetime) -> None:
    """Approve a pending member (by SMS or the API); the member hears it once they are in."""
    change = _admitted({**target, "approved_at": now}, now)
    await conn.execute(members.update().where(members.c.id == target["id"]).values(**change))
    await _audit(conn, who, "member.approved", target, now, status=change["status"])
    if change["status"] == MemberStatus.active:
        await outbox.enqueue(
            conn,
            [
                outbox.NewDelivery(
                    to=target["phone"],
                    purpose=Purpose.notice,
                    group_id=target["group_id"],
                    member_id=target["id"],
                    body=messages.render("welcome", target["language"], group=target["group_name"]),
                )
            ],
            now,
        )


async def leave(conn: AsyncConnection, rows: list[Row], code: str | None, lang: str, now: datetime) -> str:
    if not code:
        return messages.render("leave_needs_code", lang)
    row = next((r for r in rows if (r["join_code"] or "") == code), None)
    if row is None:
        return messages.render("not_member", lang, code=code)
    await retention.erase_members(conn, [row["id"]])
    await conn.execute(members.delete().where(members.c.id == row["id"]))
    await _audit(conn, resident(row["id"], row["role"]), "member.left", row, now)
    return messages.render("left", row["language"], group=row["group_name"])


async def stop(
    conn: AsyncConnection, phone: str, rows: list[Row], lang: str, now: datetime, who: Actor | None = None
) -> str | None:
    """Opt out of everything; the one confirmation, and nothing more until START.

    From anyone: a number that is no member is remembered (hashed) until it texts START, and a
    responder leaves every chain (their coordinators are told) until then.
    """
    responding = await neighbourhoods.set_responders_opted_out(conn, phone, now)
    for responder in responding:
        await _audit_responder(conn, who, responder, "responder.opted_out", now)
        await _tell_coordinators(conn, responder, now)
    # Remembered for the number, not only on its member rows: it outlives their removal, the
    # group's deletion, and holds when the number is added again.
    first = await store.remember_opt_out(conn, phone, now)
    if not rows:
        lang = responding[0]["language"] if responding else lang
        return messages.render("stopped", lang) if first else None
    changed = [r for r in rows if r["status"] != MemberStatus.opted_out]
    if not changed:
        return None
    await conn.execute(members.update().where(members.c.phone == phone).values(status=MemberStatus.opted_out))
    for row in changed:
        await _audit(conn, who or resident(row["id"], row["role"]), "member.opted_out", row, now)
    return messages.render("stopped", lang)


async def carrier_opt_out(conn: AsyncConnection, phone: str, now: datetime) -> None:
    """The carrier reported a STOP (error 21610): the same as the number texting STOP to us."""
    await stop(conn, phone, await store.memberships(conn, phone), "nl", now, who=PROVIDER)


async def start(conn: AsyncConnection, phone: str, rows: list[Row], lang: str, now: datetime) -> str | None:
    responding = await neighbourhoods.set_responders_opted_out(conn, phone, None)
    for responder in responding:
        await _audit_responder(conn, None, responder, "responder.opted_in", now)
    back = await store.forget_opt_out(conn, phone)  # also for a member added after a STOP
    if not rows:
        if responding:
            return messages.render("started", responding[0]["language"])
        # A number that is no member hears how to join, once it may be sent to again.
        return messages.render("join_instructions", lang) if back else None
    stopped = [r for r in rows if r["status"] == MemberStatus.opted_out]
    statuses = {r["status"] for r in rows if r["status"] != MemberStatus.opted_out}
    for row in stopped:
        change = _admitted(row, now)
        statuses.add(change["status"])
        await conn.execute(members.update().where(members.c.id == row["id"]).values(status=change["status"]))
        await _audit(
            conn, resident(row["id"], row["role"]), "member.opted_in", row, now, status=change["status"]
        )
    # Only a promise that holds: a member still waiting for approval gets no alerts yet.
    if MemberStatus.active not in statuses:
        return messages.render("still_pending", lang)
    return messages.render("started" if stopped else "already_active", lang)


async def set_language(
    conn: AsyncConnection, phone: str, rows: list[Row], language: str, now: datetime
) -> str:
    """TAAL EN / LANGUAGE NL: the sender's own choice, for every group they are in and every chain
    that names them; a coordinator's choice for one group is the API's."""
    for responder in await neighbourhoods.set_responders_language(conn, phone, language):
        await _audit_responder(
            conn, None, responder, "responder.updated", now, changed=["language"], language=language
        )
    changed = [r for r in rows if r["language"] != language]
    if changed:
        await conn.execute(members.update().where(members.c.phone == phone).values(language=language))
    for row in changed:
        who = resident(row["id"], row["role"])
        await _audit(conn, who, "member.updated", row, now, changed=["language"], language=language, by="sms")
    return messages.render("language_set", language)


async def _audit_responder(
    conn: AsyncConnection, who: Actor | None, responder: Row, kind: str, now: datetime, **data: Any
) -> None:
    await audit.append(
        conn,
        who=who or Actor(f"responder:{responder['id']}", "responder"),
        type=kind,
        at=now,
        subject=f"responder:{responder['id']}",
        neighbourhood_id=responder["neighbourhood_id"],
        data=data,
    )


async def _tell_coordinators(conn: AsyncConnection, responder: Row, now: datetime) -> None:
    """The coordinators of every group whose chain names the responder: the chain lost a link."""
    told: dict[str, outbox.NewDelivery] = {}
    for group in await groups.list_groups(conn, responder["neighbourhood_id"]):
        if responder["id"] not in EscalationPolicy.model_validate(group["escalation"]).responder_ids():
            continue
        fields = {"name": responder["name"], "role": responder["role"], "group": group["name"]}
        for c in recipients.coordinators(await store.group_members(conn, group["id"])):
            told.setdefault(c["phone"], _notice(c, group["id"], "responder_stopped", **fields))
    await outbox.enqueue(conn, list(told.values()), now)
