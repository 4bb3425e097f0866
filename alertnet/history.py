"""Incident history for coordinators: list, one incident with its timeline, resolve, weekly statistics."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import answers, keys, reports
from .auth import Role
from .bodies import json_body, path_id, query
from .errors import BadInput, Conflict, NotFound
from .incidents import State
from .middleware import principal
from .schemas import IncidentDetail, IncidentPage, IncidentQuery, ResolveIn, StatsOut, StatsQuery
from .store import db, groups
from .store import history as store
from .store import incidents as incident_store

Row = dict[str, Any]


async def list_incidents(request: web.Request) -> web.Response:
    who = principal(request)
    params = query(request, IncidentQuery)
    async with db.read(request.app[keys.engine]) as conn:
        if params.group_id is not None:
            group = await groups.get_group(conn, params.group_id)
            who.require(group["neighbourhood_id"], "group")
        rows = await store.list_incidents(
            conn,
            neighbourhood_id=None if who.role == Role.admin else who.neighbourhood_id,
            group_id=params.group_id,
            state=params.state,
            before=params.before,
            limit=params.limit,
        )
    next_before = rows[-1]["id"] if len(rows) == params.limit else None
    page = IncidentPage.model_validate({"items": rows, "next_before": next_before})
    return web.json_response(page.model_dump(mode="json"))


async def _detail(conn: Any, incident: Row) -> dict[str, Any]:
    incident_id = incident["id"]
    signals = (await store.signals_of(conn, [incident_id])).get(incident_id, [])
    answered = (await store.answers_of(conn, [incident_id])).get(incident_id, [])
    alerted = (await store.alerted_counts(conn, [incident_id])).get(incident_id, 0)
    return incident | {
        "signals": signals,
        "stats": reports.incident_stats(incident, answered, alerted),
        "deliveries": await store.delivery_counts(conn, incident_id),
        "timeline": await store.timeline(conn, incident_id),
    }


async def _visible(conn: Any, request: web.Request, incident_id: int, *, lock: bool = False) -> Row:
    incident = await incident_store.get(conn, incident_id, lock=lock)
    if incident is None:
        raise NotFound("no such incident")
    principal(request).require(incident["neighbourhood_id"], "incident")
    return incident


async def get_incident(request: web.Request) -> web.Response:
    async with db.read(request.app[keys.engine]) as conn:
        incident = await _visible(conn, request, path_id(request))
        detail = IncidentDetail.model_validate(await _detail(conn, incident))
    return web.json_response(detail.model_dump(mode="json"))


async def resolve_incident(request: web.Request) -> web.Response:
    incident_id = path_id(request)
    body = await json_body(request, ResolveIn)
    now = request.app[keys.clock]()
    async with db.write(request.app[keys.engine]) as conn:
        incident = await _visible(conn, request, incident_id, lock=True)
        if incident["state"] == State.resolved:
            raise Conflict(f"incident #{incident['number']} is already resolved")
        await answers.resolve(
            conn,
            incident,
            now,
            who=principal(request),
            resolution="api",
            outcome=body.outcome,
            false_alarm=body.false_alarm,
        )
    request.app[keys.sender].notify()
    async with db.read(request.app[keys.engine]) as conn:  # after the commit: the timeline is complete
        detail = IncidentDetail.model_validate(
            await _detail(conn, await _visible(conn, request, incident_id))
        )
    return web.json_response(detail.model_dump(mode="json"))


async def stats(request: web.Request) -> web.Response:
    who = principal(request)
    params = query(request, StatsQuery)
    neighbourhood_id = params.neighbourhood_id or who.neighbourhood_id
    if neighbourhood_id is None:
        raise BadInput("neighbourhood_id: required for an admin token", field="neighbourhood_id")
    who.require(neighbourhood_id, "neighbourhood")

    # Years of a neighbourhood's messages take the database a while: not in the loop's time.
    found = await db.read_aside(
        request.app[keys.engine],
        lambda conn: store.for_stats(conn, neighbourhood_id, params.from_, params.to),
    )
    per_incident = [
        (row, reports.incident_stats(row, found.answers.get(row["id"], []), found.alerted.get(row["id"], 0)))
        for row in found.incidents
    ]
    weeks = reports.weekly(per_incident, found.segments, found.zone)
    totals = {
        "incidents": len(found.incidents),
        "escalations": sum(1 for row in found.incidents if row["escalation_trigger"]),
        "sms_segments": sum(n for _, n in found.segments),
    }
    out = StatsOut(neighbourhood_id=neighbourhood_id, weeks=weeks, totals=totals)
    return web.json_response(out.model_dump(mode="json"))
