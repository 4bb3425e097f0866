"""The authorization matrix: every route that names roles, against every kind of caller.

Callers: the admin, the coordinator of the neighbourhood that owns the resource, the
coordinator of another neighbourhood, a source token, and no (or a bad) token. Bodies
are valid, so only authorization decides the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from alertnet.auth import Role
from alertnet.routes import ROUTES, Route
from alertnet.settings import Settings

from .conftest import ADMIN, Client, Hood, call, from_template, make_hood


@pytest.fixture(scope="module")
def templates() -> dict[str, tuple[str, Any]]:
    return {}


async def _two_hoods(client: Client) -> tuple[Hood, Hood]:
    hoods = (
        await make_hood(client, "Molenwijk", "MOLEN", "01"),
        await make_hood(client, "Banne", "BANNE", "02"),
    )
    for hood in hoods:  # an incident in each, for the incident routes
        await call(
            client, "POST", "/api/v1/signals", {"group_id": hood.group_id, "text": "Verdacht"}, expect=202
        )
    return hoods


@pytest.fixture
def _made(
    request: pytest.FixtureRequest, database_kind: str, tmp_path: Path, templates: dict[str, tuple[str, Any]]
) -> tuple[Settings, tuple[Hood, Hood]]:
    """The conftest `hoods`, made once per database kind through the API; each test starts from a copy."""
    return from_template(request, database_kind, tmp_path, templates, _two_hoods)


@pytest.fixture
def settings(_made: tuple[Settings, tuple[Hood, Hood]]) -> Settings:
    return _made[0]


@pytest.fixture
def hoods(_made: tuple[Settings, tuple[Hood, Hood]], client: Client) -> tuple[Hood, Hood]:
    """Two neighbourhoods, as in conftest: coordinators of one must never see the other."""
    return _made[1]


class Kind(Enum):
    #: Only the admin may call it.
    ADMIN_ONLY = "admin-only"
    #: Acts on one resource inside one neighbourhood: strangers get 404.
    SCOPED = "scoped"
    #: Lists across neighbourhoods: everyone gets 200, filtered to what they may see.
    LISTING = "listing"
    #: About the deployment as a whole, not one neighbourhood: everyone gets 200.
    GLOBAL = "global"


@dataclass(frozen=True)
class Ids:
    """The ids a route's path and body are filled with."""

    hood: int
    responder: int
    group: int
    member: int
    token: int
    #: A resident who asked to join by SMS and waits for approval (0 when the route needs none).
    pending: int = 0
    incident: int = 0


Body = Callable[[Ids], dict[str, Any]]
Scope = Callable[[dict[str, Any]], set[Any]]


@dataclass(frozen=True)
class Target:
    kind: Kind
    #: The path with `{hood}`, `{group}`, ... to fill from Ids; may carry a query.
    path: str
    body: Body | None = None
    #: For listings: the neighbourhood ids the answer's items belong to.
    scope: Scope | None = None

    def url(self, ids: Ids) -> str:
        return self.path.format(**vars(ids))


def _items(key: str) -> Scope:
    return lambda page: {item[key] for item in page["items"]}


N = "/api/v1/neighbourhoods"
G = "/api/v1/groups"

#: Every route with roles, keyed like the route table: (method, path pattern).
MATRIX: dict[tuple[str, str], Target] = {
    ("POST", N): Target(
        Kind.ADMIN_ONLY, N, lambda ids: {"name": "Nieuwendam", "timezone": "Europe/Amsterdam"}
    ),
    ("GET", N): Target(Kind.LISTING, N, scope=_items("id")),
    ("GET", N + r"/{id:\d+}"): Target(Kind.SCOPED, N + "/{hood}"),
    ("POST", N + r"/{id:\d+}/responders"): Target(
        Kind.SCOPED,
        N + "/{hood}/responders",
        lambda ids: {"name": "Molenmeester", "phone": "+31612345999", "role": "woonconsulent"},
    ),
    ("GET", N + r"/{id:\d+}/responders"): Target(Kind.SCOPED, N + "/{hood}/responders"),
    ("POST", N + r"/{id:\d+}/groups"): Target(
        Kind.SCOPED,
        N + "/{hood}/groups",
        lambda ids: {
            "name": "Zuid",
            "join_code": "ZUID1",
            "join_policy": "open",
            "escalation": {"threshold_reporters": 2, "chain": [{"responder_ids": [ids.responder]}]},
        },
    ),
    ("GET", N + r"/{id:\d+}/groups"): Target(Kind.SCOPED, N + "/{hood}/groups"),
    ("GET", G + r"/{id:\d+}"): Target(Kind.SCOPED, G + "/{group}"),
    ("PATCH", G + r"/{id:\d+}"): Target(
        Kind.SCOPED,
        G + "/{group}",
        lambda ids: {"name": "Renamed", "escalation": {"chain": [{"responder_ids": [ids.responder]}]}},
    ),
    ("DELETE", G + r"/{id:\d+}"): Target(Kind.SCOPED, G + "/{group}"),
    ("POST", G + r"/{id:\d+}/members"): Target(
        Kind.SCOPED, G + "/{group}/members", lambda ids: {"phone": "+31612345777", "name": "Piet"}
    ),
    ("GET", G + r"/{id:\d+}/members"): Target(Kind.SCOPED, G + "/{group}/members"),
    ("POST", G + r"/{id:\d+}/members/{member_id:\d+}/approve"): Target(
        Kind.SCOPED, G + "/{group}/members/{pending}/approve"
    ),
    ("PATCH", G + r"/{id:\d+}/members/{member_id:\d+}"): Target(
        Kind.SCOPED, G + "/{group}/members/{member}", lambda ids: {"language": "en"}
    ),
    ("DELETE", G + r"/{id:\d+}/members/{member_id:\d+}"): Target(
        Kind.SCOPED, G + "/{group}/members/{member}"
    ),
    ("POST", "/api/v1/tokens"): Target(
        Kind.SCOPED, "/api/v1/tokens", lambda ids: {"role": "source", "group_id": ids.group}
    ),
    ("GET", "/api/v1/tokens"): Target(Kind.LISTING, "/api/v1/tokens", scope=_items("neighbourhood_id")),
    ("DELETE", r"/api/v1/tokens/{id:\d+}"): Target(Kind.SCOPED, "/api/v1/tokens/{token}"),
    ("GET", "/api/v1/audit"): Target(
        Kind.LISTING, "/api/v1/audit?limit=1000", scope=_items("neighbourhood_id")
    ),
    ("GET", "/api/v1/audit/verify"): Target(Kind.GLOBAL, "/api/v1/audit/verify"),
    ("PATCH", r"/api/v1/responders/{id:\d+}"): Target(
        Kind.SCOPED,
        "/api/v1/responders/{responder}",
        lambda ids: {"schedule": [{"days": ["mon", "tue"], "start": "08:00", "end": "18:00"}]},
    ),
    ("GET", "/api/v1/incidents"): Target(Kind.LISTING, "/api/v1/incidents", scope=_items("neighbourhood_id")),
    ("GET", r"/api/v1/incidents/{id:\d+}"): Target(Kind.SCOPED, "/api/v1/incidents/{incident}"),
    ("POST", r"/api/v1/incidents/{id:\d+}/resolve"): Target(
        Kind.SCOPED,
        "/api/v1/incidents/{incident}/resolve",
        lambda ids: {"outcome": "Loos alarm", "false_alarm": True},
    ),
    ("GET", "/api/v1/stats"): Target(Kind.SCOPED, "/api/v1/stats?neighbourhood_id={hood}"),
    ("POST", "/api/v1/signals"): Target(
        Kind.SCOPED,
        "/api/v1/signals",
        lambda ids: {"group_id": ids.group, "text": "Verdachte man bij de fietsenstalling"},
    ),
}

GUARDED = [route for route in ROUTES if route.roles]
#: Routes a source token (an app or device of one group) may call.
FOR_SOURCES = [route for route in GUARDED if Role.source in route.roles]
#: Ids that exist in no database of these tests.
MISSING = Ids(
    hood=999_999,
    responder=999_999,
    group=999_999,
    member=999_999,
    token=999_999,
    pending=999_999,
    incident=999_999,
)
#: For callers that never get past authentication, any ids do.
ANY = Ids(hood=1, responder=1, group=1, member=1, token=1, pending=1)


def _label(route: Route) -> str:
    """The route as a person reads it, e.g. `PATCH /api/v1/groups/{id}`."""
    path = re.sub(r"{(\w+):[^}]+}", r"{\1}", route.path)
    return f"{route.method} {path}"


def _target(route: Route) -> Target:
    return MATRIX[route.method, route.path]


by_route = pytest.mark.parametrize("route", GUARDED, ids=_label)
by_source_route = pytest.mark.parametrize("route", FOR_SOURCES, ids=_label)


async def _ids(client: Client, hood: Hood, route: Route) -> Ids:
    """The hood's ids, its source token (a revoke's target) and, if the route needs one, a pending member."""
    listed = await call(client, "GET", "/api/v1/tokens", expect=200)
    token = next(
        item["id"]
        for item in listed["items"]
        if item["neighbourhood_id"] == hood.id and item["role"] == "source"
    )
    incidents = await call(client, "GET", f"/api/v1/incidents?group_id={hood.group_id}", expect=200)
    ids = Ids(
        hood.id, hood.responder_id, hood.group_id, hood.member_id, token, incident=incidents["items"][0]["id"]
    )
    if "{pending}" in _target(route).path:
        ids = replace(ids, pending=await _pending_member(client, hood))
    return ids


async def _pending_member(client: Client, hood: Hood) -> int:
    """A resident texts JOIN with the hood's join code (unsigned: the tests set no Twilio token)."""
    group = await call(client, "GET", f"/api/v1/groups/{hood.group_id}", expect=200)
    form = {
        "MessageSid": f"SM{hood.id:032x}",
        "From": "+31620000099",
        "To": "+3197010000000",
        "Body": f"JOIN {group['join_code']} Piet",
    }
    response = await client.post("/sms/inbound", data=form)
    assert response.status == 200, await response.text()
    members = await call(client, "GET", f"/api/v1/groups/{hood.group_id}/members", expect=200)
    return next(member["id"] for member in members["items"] if member["status"] == "pending")


async def _audit_count(client: Client) -> int:
    verdict = await call(client, "GET", "/api/v1/audit/verify", expect=200)
    assert verdict["ok"]
    count: int = verdict["count"]
    return count


async def _send(
    client: Client, route: Route, ids: Ids, headers: dict[str, str]
) -> tuple[int, Any, dict[str, str]]:
    """Call the route with its valid body; return status, JSON (or None) and headers."""
    target = _target(route)
    body = target.body(ids) if target.body is not None else None
    response = await client.request(route.method, target.url(ids), json=body, headers=headers)
    payload = await response.json() if response.content_type == "application/json" else None
    return response.status, payload, dict(response.headers)


def _assert_error(payload: Any, code: str) -> None:
    assert isinstance(payload, dict), payload
    error = payload["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"], error


def test_matrix_covers_every_route_with_roles() -> None:
    """Every route that needs a token is in the matrix, and the matrix names no route that does not exist."""
    guarded = {(route.method, route.path) for route in GUARDED}
    assert guarded == set(MATRIX), {
        "missing from MATRIX": sorted(guarded - set(MATRIX)),
        "not in ROUTES": sorted(set(MATRIX) - guarded),
    }
    for route in GUARDED:
        admin_only = Role.coordinator not in route.roles
        assert (_target(route).kind is Kind.ADMIN_ONLY) == admin_only, _label(route)
        if Role.source in route.roles:
            assert _target(route).kind is Kind.SCOPED, f"{_label(route)}: a source token acts on one group"
        assert (_target(route).scope is not None) == (_target(route).kind is Kind.LISTING), _label(route)


@by_route
async def test_admin_succeeds(client: Client, hoods: tuple[Hood, Hood], route: Route) -> None:
    """The admin gets the route's success status and sees every neighbourhood in listings."""
    ids = await _ids(client, hoods[0], route)
    status, payload, _ = await _send(client, route, ids, ADMIN)
    assert status == route.status, payload
    target = _target(route)
    if target.scope is not None:
        assert {hoods[0].id, hoods[1].id} <= target.scope(payload)
    if route.status == 201:
        assert isinstance(payload["id"], int)


@by_route
async def test_own_coordinator_succeeds(client: Client, hoods: tuple[Hood, Hood], route: Route) -> None:
    """The coordinator of the owning neighbourhood succeeds everywhere except on admin-only routes (403)."""
    own = hoods[0]
    ids = await _ids(client, own, route)
    before = await _audit_count(client)
    status, payload, _ = await _send(client, route, ids, own.coordinator)
    target = _target(route)
    if target.kind is Kind.ADMIN_ONLY:
        assert status == 403, payload
        _assert_error(payload, "forbidden")
        assert await _audit_count(client) == before
        return
    assert status == route.status, payload
    if target.scope is not None:
        assert target.scope(payload) == {own.id}


@by_route
async def test_other_coordinator_cannot_reach_the_resource(
    client: Client, hoods: tuple[Hood, Hood], route: Route
) -> None:
    """Another neighbourhood's coordinator gets the 404 of a missing resource and changes nothing."""
    owner, stranger = hoods
    ids = await _ids(client, owner, route)
    before = await _audit_count(client)
    status, payload, _ = await _send(client, route, ids, stranger.coordinator)
    target = _target(route)
    if target.kind is Kind.ADMIN_ONLY:
        assert status == 403, payload
        _assert_error(payload, "forbidden")
    elif target.kind is Kind.SCOPED:
        assert status == 404, payload
        _assert_error(payload, "not_found")
        # Out of scope must look exactly like absent.
        missing_status, missing_payload, _ = await _send(client, route, MISSING, stranger.coordinator)
        assert (missing_status, missing_payload) == (status, payload)
    elif target.kind is Kind.LISTING:
        assert status == 200, payload
        assert target.scope is not None
        seen = target.scope(payload)
        assert owner.id not in seen
        assert seen == {stranger.id}
    else:
        assert status == 200, payload
        if "count" in payload:
            # The whole chain is verified, but a coordinator learns only their own events' count.
            page = await call(client, "GET", "/api/v1/audit?limit=1000", headers=stranger.coordinator)
            assert payload["count"] == len(page["items"])
    assert await _audit_count(client) == before


@by_route
async def test_source_token_only_where_sources_may(
    client: Client, hoods: tuple[Hood, Hood], route: Route
) -> None:
    """A source token gets 403 on every admin route (changing nothing) and succeeds for its own group."""
    own = hoods[0]
    ids = await _ids(client, own, route)
    before = await _audit_count(client)
    status, payload, _ = await _send(client, route, ids, own.source)
    if Role.source in route.roles:
        assert status == route.status, payload
        return
    assert status == 403, payload
    _assert_error(payload, "forbidden")
    assert await _audit_count(client) == before


@by_source_route
async def test_source_token_cannot_reach_other_groups(
    client: Client, hoods: tuple[Hood, Hood], route: Route
) -> None:
    """A source token gets the 404 of a missing group for a foreign group and for a sibling group."""
    owner, stranger = hoods
    sibling = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{owner.id}/groups",
        {"name": "Zuid", "join_code": "ZUID9"},
        expect=201,
    )
    ids = await _ids(client, owner, route)
    before = await _audit_count(client)
    _, missing, _ = await _send(client, route, MISSING, stranger.source)
    for caller, target in ((stranger.source, ids), (owner.source, replace(ids, group=sibling["id"]))):
        status, payload, _ = await _send(client, route, target, caller)
        assert status == 404, payload
        _assert_error(payload, "not_found")
        assert payload == missing
    assert await _audit_count(client) == before


BAD_CREDENTIALS = {
    "no-token": {},
    "garbage-token": {"Authorization": "Bearer an_not-a-real-token"},
    "empty-bearer": {"Authorization": "Bearer "},
    "basic-scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "admin-token-without-scheme": {"Authorization": ADMIN["Authorization"].removeprefix("Bearer ")},
}


@by_route
@pytest.mark.parametrize("headers", list(BAD_CREDENTIALS.values()), ids=list(BAD_CREDENTIALS))
async def test_without_valid_token_is_401(client: Client, route: Route, headers: dict[str, str]) -> None:
    """Without a valid bearer token every guarded route answers 401, a JSON error and a Bearer challenge."""
    before = await _audit_count(client)
    status, payload, response_headers = await _send(client, route, ANY, headers)
    assert status == 401, payload
    _assert_error(payload, "unauthorized")
    assert response_headers.get("WWW-Authenticate") == "Bearer"
    assert await _audit_count(client) == before
