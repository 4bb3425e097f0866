"""Admin operations: scope checks, changes and their audit events, in the caller's transaction.

The API handlers and the command line share these, so every change is audited the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from . import engine, membership
from .auth import Principal, Role
from .errors import BadInput, Conflict, Forbidden, NotFound
from .phones import mask
from .policy import EscalationPolicy
from .schemas import (
    GroupIn,
    GroupPatch,
    MemberIn,
    MemberPatch,
    MemberStatus,
    NeighbourhoodIn,
    ResponderIn,
    ResponderPatch,
    TokenIn,
)
from .store import audit, groups, neighbourhoods, tokens
from .store import incidents as incident_store
from .store import signals as signal_store

Row = dict[str, Any]


async def create_neighbourhood(
    conn: AsyncConnection, who: Principal, body: NeighbourhoodIn, now: datetime
) -> Row:
    if who.role != Role.admin:
        raise Forbidden("only an admin creates neighbourhoods")
    row = await neighbourhoods.create_neighbourhood(conn, body.model_dump(), now)
    await audit.append(
        conn,
        who=who,
        type="neighbourhood.created",
        at=now,
        subject=f"neighbourhood:{row['id']}",
        neighbourhood_id=row["id"],
        data={"name": row["name"]},
    )
    return row


async def neighbourhood(conn: AsyncConnection, who: Principal, neighbourhood_id: int) -> Row:
    who.require(neighbourhood_id, "neighbourhood")
    return await neighbourhoods.get_neighbourhood(conn, neighbourhood_id)


async def add_responder(
    conn: AsyncConnection, who: Principal, neighbourhood_id: int, body: ResponderIn, now: datetime
) -> Row:
    hood = await neighbourhood(conn, who, neighbourhood_id)
    values = body.model_dump(mode="json")
    values["language"] = values["language"] or hood["language"]
    row = await neighbourhoods.add_responder(conn, neighbourhood_id, values, now)
    await audit.append(
        conn,
        who=who,
        type="responder.added",
        at=now,
        subject=f"responder:{row['id']}",
        neighbourhood_id=neighbourhood_id,
        data={"name": row["name"], "role": row["role"], "phone": mask(row["phone"])},
    )
    return row


def _changes(body: BaseModel, nullable: frozenset[str] | set[str] = frozenset()) -> Row:
    """The fields a PATCH sent; null only where it means something (a schedule: always on duty)."""
    changes: Row = body.model_dump(mode="json", exclude_unset=True)
    for field, value in changes.items():
        if value is None and field not in nullable:
            raise BadInput(f"{field}: may not be null", field=field)
    return changes


async def update_responder(
    conn: AsyncConnection, who: Principal, responder_id: int, body: ResponderPatch, now: datetime
) -> Row:
    """Change a responder; a schedule set to null means always on duty."""
    current = await neighbourhoods.get_responder(conn, responder_id)
    who.require(current["neighbourhood_id"], "responder")
    changes = _changes(body, nullable={"schedule"})
    row = await neighbourhoods.update_responder(conn, current, changes, now)
    data: Row = {"changed": sorted(changes)}
    if "phone" in changes:
        data["phone"] = mask(row["phone"])
    await audit.append(
        conn,
        who=who,
        type="responder.updated",
        at=now,
        subject=f"responder:{responder_id}",
        neighbourhood_id=current["neighbourhood_id"],
        data=data,
    )
    return row


async def _check_chain(conn: AsyncConnection, neighbourhood_id: int, policy: EscalationPolicy) -> None:
    foreign = await neighbourhoods.foreign_responders(conn, neighbourhood_id, policy.responder_ids())
    if foreign:
        ids = ", ".join(str(i) for i in sorted(foreign))
        raise BadInput(
            f"escalation.chain: no responder {ids} in this neighbourhood", field="escalation.chain"
        )


async def group(conn: AsyncConnection, who: Principal, group_id: int) -> Row:
    row = await groups.get_group(conn, group_id)
    who.require(row["neighbourhood_id"], "group")
    return row


async def create_group(
    conn: AsyncConnection, who: Principal, neighbourhood_id: int, body: GroupIn, now: datetime
) -> Row:
    await neighbourhood(conn, who, neighbourhood_id)
    await _check_chain(conn, neighbourhood_id, body.escalation)
    row = await groups.create_group(conn, neighbourhood_id, body.model_dump(mode="json"), now)
    await audit.append(
        conn,
        who=who,
        type="group.created",
        at=now,
        subject=f"group:{row['id']}",
        neighbourhood_id=neighbourhood_id,
        data={"name": row["name"], "join_code": row["join_code"], "join_policy": row["join_policy"]},
    )
    return row


async def update_group(
    conn: AsyncConnection, who: Principal, group_id: int, body: GroupPatch, now: datetime
) -> Row:
    current = await group(conn, who, group_id)
    changes = _changes(body)
    record: Row = {"changed": sorted(changes)}
    if "escalation" in changes:
        # A merge, as for the group's own fields: sending one setting must not drop the chain.
        sent = changes["escalation"]
        merged = EscalationPolicy.model_validate({**current["escalation"], **sent})
        await _check_chain(conn, current["neighbourhood_id"], merged)
        changes["escalation"] = merged.model_dump(mode="json")
        record["escalation"] = {key: changes["escalation"][key] for key in sorted(sent)}
    if not changes:
        return current
    row = await groups.update_group(conn, group_id, changes)
    record.update({key: changes[key] for key in ("name", "join_code", "join_policy") if key in changes})
    await audit.append(
        conn,
        who=who,
        type="group.updated",
        at=now,
        subject=f"group:{group_id}",
        neighbourhood_id=current["neighbourhood_id"],
        data=record,
    )
    return row


async def delete_group(conn: AsyncConnection, who: Principal, group_id: int, now: datetime) -> None:
    current = await group(conn, who, group_id)
    # Locked as a signal locks it: none opens an incident between this read and the deletion.
    await signal_store.lock_group(conn, group_id)
    # Its open incidents close first: the responders paged hear it, and no chain goes on paging.
    for incident_id in await incident_store.unresolved_ids(conn, group_id):
        await engine.close(conn, incident_id, now, "group_deleted", who)
    removed = await groups.delete_group(conn, group_id, now)
    await audit.append(
        conn,
        who=who,
        type="group.deleted",
        at=now,
        subject=f"group:{group_id}",
        neighbourhood_id=current["neighbourhood_id"],
        data={"name": current["name"], "members_removed": removed},
    )


async def add_member(
    conn: AsyncConnection, who: Principal, group_id: int, body: MemberIn, now: datetime
) -> Row:
    current = await group(conn, who, group_id)
    values = body.model_dump()
    if values["language"] is None:
        hood = await neighbourhoods.get_neighbourhood(conn, current["neighbourhood_id"])
        values["language"] = hood["language"]
    row = await groups.add_member(conn, group_id, values, now)
    await audit.append(
        conn,
        who=who,
        type="member.added",
        at=now,
        subject=f"member:{row['id']}",
        neighbourhood_id=current["neighbourhood_id"],
        data={
            "group_id": group_id,
            "phone": mask(row["phone"]),
            "role": row["role"],
            "status": row["status"],
        },
    )
    return row


async def update_member(
    conn: AsyncConnection, who: Principal, group_id: int, member_id: int, body: MemberPatch, now: datetime
) -> Row:
    """Change a member's name, language, role or name sharing; a name set to null is removed."""
    current = await group(conn, who, group_id)
    changes = _changes(body, nullable={"name"})
    row = await groups.update_member(conn, group_id, member_id, changes)
    if not changes:
        return row
    await audit.append(
        conn,
        who=who,
        type="member.updated",
        at=now,
        subject=f"member:{member_id}",
        neighbourhood_id=current["neighbourhood_id"],
        # The new role, language and sharing are kept: who made whom a coordinator (who may close
        # incidents and admit residents) must show; the name is the member's own and stays out.
        data={
            "group_id": group_id,
            "changed": sorted(changes),
            **{key: changes[key] for key in ("role", "language", "share_name") if key in changes},
        },
    )
    return row


async def remove_member(
    conn: AsyncConnection, who: Principal, group_id: int, member_id: int, now: datetime
) -> None:
    current = await group(conn, who, group_id)
    row = await groups.remove_member(conn, group_id, member_id)
    await audit.append(
        conn,
        who=who,
        type="member.removed",
        at=now,
        subject=f"member:{member_id}",
        neighbourhood_id=current["neighbourhood_id"],
        data={"group_id": group_id, "phone": mask(row["phone"])},
    )


async def approve_member(
    conn: AsyncConnection, who: Principal, group_id: int, member_id: int, now: datetime
) -> Row:
    """Admit a resident who asked to join by SMS; they hear it by SMS once they are in."""
    await group(conn, who, group_id)
    target = await signal_store.membership(conn, member_id)
    if target is None or target["group_id"] != group_id:
        raise NotFound("no such member in this group")
    if target["status"] != MemberStatus.pending:
        raise Conflict(f"this member is {target['status']}, not waiting for approval")
    await membership.admit(conn, who, target, now)
    return await groups.get_member(conn, member_id)


async def _token_scope(conn: AsyncConnection, who: Principal, body: TokenIn) -> tuple[int, int | None]:
    """The (neighbourhood, group) a new token is scoped to, checked against the creator's scope."""
    if body.role == Role.source:
        if body.group_id is None:
            raise BadInput("group_id: a source token is scoped to one group", field="group_id")
        target = await group(conn, who, body.group_id)
        if body.neighbourhood_id not in (None, target["neighbourhood_id"]):
            raise BadInput(
                "neighbourhood_id: the group is not in this neighbourhood", field="neighbourhood_id"
            )
        return target["neighbourhood_id"], body.group_id
    if body.group_id is not None:
        raise BadInput(
            "group_id: a coordinator token is scoped to a neighbourhood, not a group", field="group_id"
        )
    neighbourhood_id = body.neighbourhood_id or who.neighbourhood_id
    if neighbourhood_id is None:
        raise BadInput(
            "neighbourhood_id: a coordinator token needs a neighbourhood", field="neighbourhood_id"
        )
    await neighbourhood(conn, who, neighbourhood_id)
    return neighbourhood_id, None


async def issue_token(conn: AsyncConnection, who: Principal, body: TokenIn, now: datetime) -> tuple[str, Row]:
    """A scoped token; a coordinator only ever issues tokens for their own neighbourhood."""
    neighbourhood_id, group_id = await _token_scope(conn, who, body)
    return await _issue(conn, who, Role(body.role), neighbourhood_id, group_id, body.label, now)


async def issue_admin_token(
    conn: AsyncConnection, who: Principal, label: str | None, now: datetime
) -> tuple[str, Row]:
    """An admin token: only from the command line, by whoever runs the deployment."""
    if who.role != Role.admin:
        raise Forbidden("only an admin issues admin tokens")
    return await _issue(conn, who, Role.admin, None, None, label, now)


async def _issue(
    conn: AsyncConnection,
    who: Principal,
    role: Role,
    neighbourhood_id: int | None,
    group_id: int | None,
    label: str | None,
    now: datetime,
) -> tuple[str, Row]:
    secret, row = await tokens.create_token(
        conn,
        role=role,
        neighbourhood_id=neighbourhood_id,
        group_id=group_id,
        label=label,
        created_by=who.actor,
        now=now,
    )
    await audit.append(
        conn,
        who=who,
        type="token.created",
        at=now,
        subject=f"token:{row['id']}",
        neighbourhood_id=neighbourhood_id,
        data={"role": str(role), "group_id": group_id, "label": label},
    )
    return secret, row


async def revoke_token(conn: AsyncConnection, who: Principal, token_id: int, now: datetime) -> None:
    row = await tokens.get_token(conn, token_id)
    if row["neighbourhood_id"] is None and who.role != Role.admin:
        raise NotFound("no such token")
    if row["neighbourhood_id"] is not None:
        who.require(row["neighbourhood_id"], "token")
    await tokens.revoke_token(conn, token_id, now)
    await audit.append(
        conn,
        who=who,
        type="token.revoked",
        at=now,
        subject=f"token:{token_id}",
        neighbourhood_id=row["neighbourhood_id"],
        data={"role": row["role"]},
    )
