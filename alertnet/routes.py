"""The route table: every path, its handler, who may call it, and its bodies for OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel

from . import api, history, keys, ops, webhooks
from .auth import Role
from .schemas import (
    AuditPage,
    AuditQuery,
    AuditVerdict,
    AuditVerifyQuery,
    GroupIn,
    GroupOut,
    GroupPatch,
    Health,
    IncidentDetail,
    IncidentPage,
    IncidentQuery,
    MemberIn,
    MemberOut,
    MemberPatch,
    NeighbourhoodIn,
    NeighbourhoodOut,
    ResolveIn,
    ResponderIn,
    ResponderOut,
    ResponderPatch,
    SignalAccepted,
    SignalIn,
    StatsOut,
    StatsQuery,
    StatusQuery,
    TokenCreated,
    TokenIn,
    TokenOut,
    TwilioInbound,
    TwilioStatus,
)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN = frozenset({Role.admin})
MANAGERS = frozenset({Role.admin, Role.coordinator})
ANY_TOKEN = frozenset(Role)


class Items(BaseModel, Generic[T]):
    items: list[T]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    #: Roles whose tokens may call the route; empty means no token needed.
    roles: frozenset[Role] = frozenset()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: The success answer: a model, or None for no content.
    response: type[BaseModel] | None = None
    status: int = 200
    #: A non-JSON success answer's media type.
    media_type: str | None = None
    #: A form body (Twilio's webhooks), for the OpenAPI document: the handler reads it itself.
    form: type[BaseModel] | None = None
    #: Error answers of this route beyond the common ones, for the OpenAPI document.
    errors: dict[str, str] = field(default_factory=dict)


N = "/api/v1/neighbourhoods"
G = "/api/v1/groups"
_SIGNED = {"403": "No X-Twilio-Signature, or not Twilio's for ALERTNET_PUBLIC_URL and this path"}

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        N,
        api.create_neighbourhood,
        "Create a neighbourhood",
        "neighbourhoods",
        ADMIN,
        body=NeighbourhoodIn,
        response=NeighbourhoodOut,
        status=201,
    ),
    Route(
        "GET",
        N,
        api.list_neighbourhoods,
        "List the neighbourhoods you may see",
        "neighbourhoods",
        MANAGERS,
        response=Items[NeighbourhoodOut],
    ),
    Route(
        "GET",
        N + r"/{id:\d+}",
        api.get_neighbourhood,
        "Get a neighbourhood",
        "neighbourhoods",
        MANAGERS,
        response=NeighbourhoodOut,
    ),
    Route(
        "POST",
        N + r"/{id:\d+}/responders",
        api.add_responder,
        "Add a responder",
        "responders",
        MANAGERS,
        body=ResponderIn,
        response=ResponderOut,
        status=201,
    ),
    Route(
        "GET",
        N + r"/{id:\d+}/responders",
        api.list_responders,
        "List responders",
        "responders",
        MANAGERS,
        response=Items[ResponderOut],
    ),
    Route(
        "POST",
        N + r"/{id:\d+}/groups",
        api.create_group,
        "Create an ally group",
        "groups",
        MANAGERS,
        body=GroupIn,
        response=GroupOut,
        status=201,
    ),
    Route(
        "GET",
        N + r"/{id:\d+}/groups",
        api.list_groups,
        "List the groups of a neighbourhood",
        "groups",
        MANAGERS,
        response=Items[GroupOut],
    ),
    Route("GET", G + r"/{id:\d+}", api.get_group, "Get a group", "groups", MANAGERS, response=GroupOut),
    Route(
        "PATCH",
        G + r"/{id:\d+}",
        api.update_group,
        "Change a group",
        "groups",
        MANAGERS,
        body=GroupPatch,
        response=GroupOut,
    ),
    Route(
        "DELETE",
        G + r"/{id:\d+}",
        api.delete_group,
        "Delete a group and erase its members' numbers",
        "groups",
        MANAGERS,
        status=204,
    ),
    Route(
        "POST",
        G + r"/{id:\d+}/members",
        api.add_member,
        "Add a member, active at once",
        "members",
        MANAGERS,
        body=MemberIn,
        response=MemberOut,
        status=201,
    ),
    Route(
        "GET",
        G + r"/{id:\d+}/members",
        api.list_members,
        "List members",
        "members",
        MANAGERS,
        response=Items[MemberOut],
    ),
    Route(
        "POST",
        G + r"/{id:\d+}/members/{member_id:\d+}/approve",
        api.approve_member,
        "Approve a resident who asked to join by SMS",
        "members",
        MANAGERS,
        response=MemberOut,
    ),
    Route(
        "PATCH",
        G + r"/{id:\d+}/members/{member_id:\d+}",
        api.update_member,
        "Change a member's name, language, role or name sharing",
        "members",
        MANAGERS,
        body=MemberPatch,
        response=MemberOut,
    ),
    Route(
        "DELETE",
        G + r"/{id:\d+}/members/{member_id:\d+}",
        api.remove_member,
        "Remove a member",
        "members",
        MANAGERS,
        status=204,
    ),
    Route(
        "POST",
        "/api/v1/tokens",
        api.create_token,
        "Issue a coordinator or source token",
        "tokens",
        MANAGERS,
        body=TokenIn,
        response=TokenCreated,
        status=201,
    ),
    Route(
        "GET",
        "/api/v1/tokens",
        api.list_tokens,
        "List live tokens (never their secrets)",
        "tokens",
        MANAGERS,
        response=Items[TokenOut],
    ),
    Route(
        "DELETE",
        r"/api/v1/tokens/{id:\d+}",
        api.revoke_token,
        "Revoke a token",
        "tokens",
        MANAGERS,
        status=204,
    ),
    Route(
        "GET",
        "/api/v1/audit",
        api.list_audit,
        "Page through the audit log",
        "audit",
        MANAGERS,
        query=AuditQuery,
        response=AuditPage,
    ),
    Route(
        "GET",
        "/api/v1/audit/verify",
        api.verify_audit,
        "Verify the audit hash chain",
        "audit",
        MANAGERS,
        query=AuditVerifyQuery,
        response=AuditVerdict,
        errors={"429": "Another check of the chain is running; Retry-After says when to try again"},
    ),
    Route(
        "PATCH",
        r"/api/v1/responders/{id:\d+}",
        api.update_responder,
        "Change a responder, e.g. their weekly on-duty hours",
        "responders",
        MANAGERS,
        body=ResponderPatch,
        response=ResponderOut,
    ),
    Route(
        "GET",
        "/api/v1/incidents",
        history.list_incidents,
        "List incidents, newest first",
        "incidents",
        MANAGERS,
        query=IncidentQuery,
        response=IncidentPage,
    ),
    Route(
        "GET",
        r"/api/v1/incidents/{id:\d+}",
        history.get_incident,
        "One incident: signals, timeline, delivery outcomes, response times",
        "incidents",
        MANAGERS,
        response=IncidentDetail,
    ),
    Route(
        "POST",
        r"/api/v1/incidents/{id:\d+}/resolve",
        history.resolve_incident,
        "Resolve an incident; everyone alerted hears the outcome",
        "incidents",
        MANAGERS,
        body=ResolveIn,
        response=IncidentDetail,
    ),
    Route(
        "GET",
        "/api/v1/stats",
        history.stats,
        "Weekly response statistics of a neighbourhood",
        "incidents",
        MANAGERS,
        query=StatsQuery,
        response=StatsOut,
    ),
    Route(
        "POST",
        "/api/v1/signals",
        webhooks.post_signal,
        "Send a signal from an app or device",
        "signals",
        ANY_TOKEN,
        body=SignalIn,
        response=SignalAccepted,
        status=202,
        errors={
            "422": "The Idempotency-Key was used before with another body",
            "429": "Over this token's signal budget; Retry-After says when to try again",
        },
    ),
    Route(
        "POST",
        "/sms/inbound",
        webhooks.sms_inbound,
        "Twilio messaging webhook (signed)",
        "twilio",
        media_type="text/xml",
        form=TwilioInbound,
        errors=_SIGNED,
    ),
    Route(
        "POST",
        "/sms/status",
        webhooks.sms_status,
        "Twilio status callback (signed)",
        "twilio",
        query=StatusQuery,
        status=204,
        form=TwilioStatus,
        errors=_SIGNED,
    ),
    Route("GET", "/healthz", ops.healthz, "Liveness", "operations", response=Health),
    Route("GET", "/readyz", ops.readyz, "Readiness: the database answers", "operations", response=Health),
    Route("GET", "/metrics", ops.metrics, "Prometheus metrics", "operations", media_type="text/plain"),
    Route(
        "GET", "/api/openapi.json", ops.openapi, "This document", "operations", media_type="application/json"
    ),
    Route("GET", "/", ops.landing, "The coordinator dashboard", "operations", media_type="text/html"),
)


def setup(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    by_handler: dict[object, Route] = {route.handler: route for route in routes}
    app[keys.routes] = by_handler
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
