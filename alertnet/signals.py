"""Taking in a signal: join or open the incident, store it, fan it out to the allies, audit it.

Runs inside the caller's transaction, so the signal, the incident, every outbox job and the
audit events commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import engine, incidents, messages, recipients
from .auth import Actor, Principal
from .delivery import Purpose
from .store import audit, outbox
from .store import incidents as incident_store
from .store import signals as store

Row = dict[str, Any]


@dataclass(frozen=True)
class Intake:
    signal_id: int
    incident_id: int
    number: int
    new_incident: bool
    #: Allies the signal was sent to (0 when flood-limited or a repeat).
    recipients: int
    #: Stored and joined to the incident, but not fanned out again.
    limited: bool = False
    #: The same text again within a minute: nothing new was stored.
    repeat: bool = False


async def _repeat_or_flood(
    conn: Any, group_id: int, member: Row | None, source: str, text: str, now: datetime
) -> tuple[Row | None, bool]:
    """The earlier signal this one repeats, or whether its sender floods the group: a member, or a
    device's token when no member is behind the signal."""
    since = now - incidents.FLOOD_WINDOW
    recent = await store.recent_signals(
        conn, group_id, since, member_id=member["id"] if member else None, source=source
    )
    if recent and incidents.is_repeat(recent[0]["text"], recent[0]["received_at"], text, now):
        return recent[0], False
    return None, incidents.is_flooding(len(recent))


async def accept(
    conn: Any,
    *,
    group: Row,
    member: Row | None,
    reporter_phone: str | None,
    text: str,
    channel: str,
    urgent: bool,
    now: datetime,
    who: Principal | Actor,
) -> Intake:
    """Take in one signal for a group (already locked by the caller)."""
    previous, limited = await _repeat_or_flood(conn, group["id"], member, who.actor, text, now)
    if previous is not None:
        number = await store.incident_number(conn, previous["incident_id"])
        return Intake(previous["id"], previous["incident_id"], number, False, 0, repeat=True)
    incident = await incident_store.latest_unresolved(conn, group["id"])
    new = incident is None or not incidents.joins(
        incident["last_signal_at"], now, incident["policy"].get("window_s", 600)
    )
    if incident is None or new:
        opened = await store.open_incident(conn, group["id"], group["escalation"], now)
        # Read back with its group and zone, as escalation needs it.
        incident = await incident_store.get(conn, opened, lock=True)
        assert incident is not None
    signal_id = await store.add_signal(
        conn,
        {
            "group_id": group["id"],
            "incident_id": incident["id"],
            "member_id": member["id"] if member else None,
            "reporter_phone": reporter_phone,
            "text": text,
            "channel": channel,
            "urgent": urgent,
            "received_at": now,
            "source": who.actor,
        },
    )
    sent = 0 if limited else await _fan_out(conn, group, incident, member, reporter_phone, text, now)
    if new:
        await audit.append(
            conn,
            who=who,
            type="incident.opened",
            at=now,
            subject=f"incident:{incident['id']}",
            neighbourhood_id=group["neighbourhood_id"],
            data={"group_id": group["id"], "number": incident["number"]},
        )
    await audit.append(
        conn,
        who=who,
        type="signal.received",
        at=now,
        subject=f"incident:{incident['id']}",
        neighbourhood_id=group["neighbourhood_id"],
        data={
            "signal_id": signal_id,
            "channel": channel,
            "recipients": sent,
            "limited": limited,
            "urgent": urgent,
        },
    )
    await engine.on_signal(conn, incident, signal_id, new=new, urgent=urgent, text=text, now=now, who=who)
    return Intake(signal_id, incident["id"], incident["number"], new, sent, limited=limited)


async def _fan_out(
    conn: Any,
    group: Row,
    incident: Row,
    member: Row | None,
    reporter_phone: str | None,
    text: str,
    now: datetime,
) -> int:
    allies = recipients.allies(await store.group_members(conn, group["id"]), reporter_phone)
    name = messages.first_name(member["name"]) if member and member["share_name"] else None
    bodies = {
        lang: messages.fanout(
            lang, group=group["name"], number=incident["number"], text=text, first_name=name
        )
        for lang in {ally["language"] for ally in allies}
    }
    items = [
        outbox.NewDelivery(
            to=ally["phone"],
            body=bodies[ally["language"]],
            purpose=Purpose.fanout,
            incident_id=incident["id"],
            group_id=group["id"],
            member_id=ally["id"],
        )
        for ally in allies
    ]
    await outbox.enqueue(conn, items, now)
    return len(items)
