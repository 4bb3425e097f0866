"""The admin API as a coordinator uses it: create, read, change, delete."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from alertnet.store import db
from alertnet.store.tables import members

from .conftest import ADMIN, Client, Hood, bearer, call


async def test_neighbourhood_defaults(client: Client) -> None:
    """A new neighbourhood is in Amsterdam's time zone and Dutch unless told otherwise."""
    hood = await call(client, "POST", "/api/v1/neighbourhoods", {"name": "  Molenwijk "}, expect=201)
    assert hood["name"] == "Molenwijk"
    assert (hood["timezone"], hood["language"]) == ("Europe/Amsterdam", "nl")
    assert await call(client, "GET", f"/api/v1/neighbourhoods/{hood['id']}", expect=200) == hood


async def test_group_gets_default_policy(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A group without a policy gets the contract's defaults; the join code is upper-cased."""
    group = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hoods[0].id}/groups",
        {"name": "Zuid", "join_code": "zuid1"},
        expect=201,
    )
    assert group["join_code"] == "ZUID1"
    assert group["join_policy"] == "approval"
    policy = group["escalation"]
    assert (policy["threshold_reporters"], policy["window_s"], policy["ack_timeout_s"]) == (3, 600, 300)
    assert {"112", "brand", "fire", "wapen", "weapon"} <= set(policy["urgent_keywords"])
    assert (policy["chain"], policy["repeat"]) == ([], 1)


async def test_duplicate_join_code_is_409(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """Join codes are unique across the deployment, whatever the case."""
    body = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hoods[1].id}/groups",
        {"name": "Copy", "join_code": "molen"},
        expect=409,
    )
    assert body["error"]["field"] == "join_code"


async def test_same_phone_written_differently_is_one_member(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """0612345678 and +31 6 1234 5678 are the same member."""
    path = f"/api/v1/groups/{hoods[0].group_id}/members"
    first = await call(client, "POST", path, {"phone": "0612345678"}, expect=201)
    assert first["phone"] == "+31612345678"
    assert first["status"] == "active"
    body = await call(client, "POST", path, {"phone": "+31 6 1234 5678"}, expect=409)
    assert body["error"]["field"] == "phone"


async def test_member_language_defaults_to_neighbourhood(client: Client) -> None:
    """An English-speaking neighbourhood's members get English unless they choose."""
    hood = await call(
        client, "POST", "/api/v1/neighbourhoods", {"name": "Expats", "language": "en"}, expect=201
    )
    group = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hood['id']}/groups",
        {"name": "A", "join_code": "EXPAT"},
        expect=201,
    )
    member = await call(
        client, "POST", f"/api/v1/groups/{group['id']}/members", {"phone": "0612345678"}, expect=201
    )
    assert member["language"] == "en"


async def test_patch_group_changes_only_what_is_sent(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """PATCH keeps unsent fields, in the policy too: changing one setting does not drop the chain
    (nobody would be paged any more); an empty chain is sent explicitly."""
    path = f"/api/v1/groups/{hoods[0].group_id}"
    responder = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hoods[0].id}/responders",
        {"name": "Jansen", "phone": "+31612340900"},
        expect=201,
    )
    chain = [{"responder_ids": [responder["id"]], "timeout_s": 600}]
    await call(client, "PATCH", path, {"escalation": {"chain": chain, "ack_timeout_s": 120}}, expect=200)
    before = await call(client, "GET", path, expect=200)
    after = await call(
        client, "PATCH", path, {"name": "Renamed", "escalation": {"threshold_reporters": 2}}, expect=200
    )
    assert after["name"] == "Renamed"
    assert after["join_code"] == before["join_code"]
    assert after["escalation"] == {**before["escalation"], "threshold_reporters": 2}
    assert after["escalation"]["chain"] == chain
    assert after["escalation"]["ack_timeout_s"] == 120
    emptied = await call(client, "PATCH", path, {"escalation": {"chain": []}}, expect=200)
    assert emptied["escalation"]["chain"] == []


async def test_patch_keeps_own_join_code(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """Sending a group's own join code back is not a conflict."""
    await call(client, "PATCH", f"/api/v1/groups/{hoods[0].group_id}", {"join_code": "MOLEN"}, expect=200)


async def test_delete_group_erases_members_and_frees_code(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A deleted group is gone for every route; its members' numbers are erased; the code is free."""
    group_id = hoods[0].group_id
    await call(client, "DELETE", f"/api/v1/groups/{group_id}", expect=204)
    await call(client, "GET", f"/api/v1/groups/{group_id}", expect=404)
    await call(client, "GET", f"/api/v1/groups/{group_id}/members", expect=404)
    async with db.read(_engine(client)) as conn:
        left = await conn.scalar(sa.select(sa.func.count()).where(members.c.group_id == group_id))
    assert left == 0
    await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hoods[0].id}/groups",
        {"name": "Again", "join_code": "MOLEN"},
        expect=201,
    )


def _engine(client: Client) -> Any:
    from alertnet import keys

    return client.app[keys.engine]


async def test_remove_member(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A removed member is no longer listed; removing again is 404."""
    path = f"/api/v1/groups/{hoods[0].group_id}/members"
    await call(client, "DELETE", f"{path}/{hoods[0].member_id}", expect=204)
    assert (await call(client, "GET", path, expect=200))["items"] == []
    await call(client, "DELETE", f"{path}/{hoods[0].member_id}", expect=404)


async def test_change_a_member(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A coordinator changes a member's language, role and name; a null name removes it; the audit
    log says what changed, not to what (the name is the member's own)."""
    path = f"/api/v1/groups/{hoods[0].group_id}/members/{hoods[0].member_id}"
    coordinator = hoods[0].coordinator
    changed = await call(
        client, "PATCH", path, {"language": "en", "role": "coordinator", "name": "Amira"}, headers=coordinator
    )
    assert (changed["language"], changed["role"], changed["name"]) == ("en", "coordinator", "Amira")
    assert (await call(client, "PATCH", path, {"name": None}, headers=coordinator))["name"] is None
    same = await call(client, "PATCH", path, {}, headers=coordinator)
    assert (same["language"], same["role"]) == ("en", "coordinator")
    events = (await call(client, "GET", "/api/v1/audit?limit=1000", expect=200))["items"]
    updates = [event["data"] for event in events if event["type"] == "member.updated"]
    assert updates == [
        {
            "group_id": hoods[0].group_id,
            "changed": ["language", "name", "role"],
            "language": "en",
            "role": "coordinator",
        },
        {"group_id": hoods[0].group_id, "changed": ["name"]},
    ]


async def test_member_of_other_group_cannot_be_removed_through_this_one(
    client: Client, hoods: tuple[Hood, Hood]
) -> None:
    """The member id must belong to the group in the path."""
    await call(
        client, "DELETE", f"/api/v1/groups/{hoods[0].group_id}/members/{hoods[1].member_id}", expect=404
    )


async def test_chain_with_foreign_responder_is_400(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A policy may only call responders of the group's own neighbourhood."""
    body = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hoods[0].id}/groups",
        {
            "name": "X",
            "join_code": "XYZ",
            "escalation": {"chain": [{"responder_ids": [hoods[1].responder_id]}]},
        },
        expect=400,
    )
    assert body["error"]["field"] == "escalation.chain"
    body = await call(
        client,
        "PATCH",
        f"/api/v1/groups/{hoods[0].group_id}",
        {"escalation": {"chain": [{"responder_ids": [hoods[1].responder_id]}]}},
        expect=400,
    )
    assert body["error"]["field"] == "escalation.chain"


async def test_token_secret_shown_once_and_stored_hashed(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """The list of tokens never holds a secret, and the database holds only hashes."""
    created = await call(
        client, "POST", "/api/v1/tokens", {"role": "coordinator", "neighbourhood_id": hoods[0].id}, expect=201
    )
    listed = await call(client, "GET", "/api/v1/tokens", expect=200)
    assert all("token" not in item and "secret_hash" not in item for item in listed["items"])
    from alertnet.store.tables import tokens

    async with db.read(_engine(client)) as conn:
        stored = (await conn.execute(sa.select(tokens))).all()
    assert all(created["token"] not in str(tuple(row)) for row in stored)


async def test_revoked_token_is_refused(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A revoked token answers 401 from then on."""
    created = await call(
        client, "POST", "/api/v1/tokens", {"role": "coordinator", "neighbourhood_id": hoods[0].id}, expect=201
    )
    await call(client, "GET", "/api/v1/neighbourhoods", headers=bearer(created["token"]), expect=200)
    await call(client, "DELETE", f"/api/v1/tokens/{created['id']}", expect=204)
    await call(client, "GET", "/api/v1/neighbourhoods", headers=bearer(created["token"]), expect=401)


async def test_coordinator_issues_tokens_only_for_own_neighbourhood(
    client: Client, hoods: tuple[Hood, Hood]
) -> None:
    """A coordinator may issue coordinator and source tokens at home, never elsewhere, never admin."""
    mine, other = hoods
    await call(
        client, "POST", "/api/v1/tokens", {"role": "coordinator"}, headers=mine.coordinator, expect=201
    )
    await call(
        client,
        "POST",
        "/api/v1/tokens",
        {"role": "source", "group_id": mine.group_id},
        headers=mine.coordinator,
        expect=201,
    )
    await call(
        client,
        "POST",
        "/api/v1/tokens",
        {"role": "coordinator", "neighbourhood_id": other.id},
        headers=mine.coordinator,
        expect=404,
    )
    await call(
        client,
        "POST",
        "/api/v1/tokens",
        {"role": "source", "group_id": other.group_id},
        headers=mine.coordinator,
        expect=404,
    )
    body = await call(
        client, "POST", "/api/v1/tokens", {"role": "admin"}, headers=mine.coordinator, expect=400
    )
    assert body["error"]["field"] == "role"


async def test_every_change_is_audited(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """Creating two neighbourhoods leaves their events, named by who did it, and a green chain."""
    page = await call(client, "GET", "/api/v1/audit", expect=200)
    types = [item["type"] for item in page["items"]]
    assert types.count("neighbourhood.created") == 2
    assert types.count("member.added") == 2
    assert {item["actor"] for item in page["items"]} == {"bootstrap"}
    assert await call(client, "GET", "/api/v1/audit/verify", expect=200) == {
        "ok": True,
        "count": len(types),
        "bad_seq": None,
        "reason": None,
        "head": f"{page['items'][-1]['seq']}:{page['items'][-1]['hash']}",
    }


async def test_audit_pages(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """?after= and limit page through the log without gaps or overlap."""
    seen: list[int] = []
    after: int | None = 0
    while after is not None:
        page = await call(client, "GET", f"/api/v1/audit?after={after}&limit=5", expect=200)
        seen += [item["seq"] for item in page["items"]]
        after = page["next_after"]
    full = await call(client, "GET", "/api/v1/audit?limit=1000", expect=200)
    assert seen == [item["seq"] for item in full["items"]] == list(range(1, len(seen) + 1))


async def test_coordinator_sees_only_own_audit_events(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A coordinator's audit page holds only their neighbourhood's events."""
    page = await call(client, "GET", "/api/v1/audit?limit=1000", headers=hoods[0].coordinator, expect=200)
    assert page["items"]
    assert {item["neighbourhood_id"] for item in page["items"]} == {hoods[0].id}


async def test_audit_data_holds_no_full_phone(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """Audit events mask phone numbers."""
    page = await call(client, "GET", "/api/v1/audit?limit=1000", expect=200)
    text = str(page)
    assert "+31612345001" not in text
    assert "+31612345901" not in text
    assert "+31 6 •• •• 50 01" in text


async def test_operations_endpoints(client: Client) -> None:
    """Health, readiness, metrics and the landing page answer without a token."""
    assert await call(client, "GET", "/healthz", headers={}, expect=200) == {"status": "ok"}
    assert (await call(client, "GET", "/readyz", headers={}, expect=200))["database"] == "ok"
    await call(client, "GET", "/api/v1/neighbourhoods", headers=ADMIN, expect=200)
    response = await client.get("/metrics")
    text = await response.text()
    assert (
        'alertnet_http_requests_total{method="GET",route="/api/v1/neighbourhoods",status="200"} 1.0' in text
    )
    response = await client.get("/")
    assert response.status == 200
    assert "/api/openapi.json" in await response.text()


async def test_readiness_and_metrics_answer_while_the_database_hangs(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that accepts connections and never answers: /readyz says 503 in time, and a scrape
    still answers with its counters, the backlog gauges NaN (not the last values, which look fine)."""
    import asyncio
    import math

    from alertnet import keys, ops

    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # open, never a word

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = db.create_engine(f"postgresql://alertnet@127.0.0.1:{port}/alertnet")
    monkeypatch.setattr(ops, "DATABASE_TIMEOUT_S", 0.3)
    await client.get("/metrics")  # the real database: gauges at 0
    monkeypatch.setitem(client.app._state, keys.engine, engine)
    try:
        started = asyncio.get_running_loop().time()
        assert (await call(client, "GET", "/readyz", headers={}, expect=503))["database"] == "unreachable"
        response = await client.get("/metrics")
        text = await response.text()
        assert response.status == 200
        assert asyncio.get_running_loop().time() - started < 10
        assert "alertnet_http_requests_total" in text
        (jobs,) = re.findall(r"^alertnet_outbox_jobs (\S+)$", text, re.MULTILINE)
        assert math.isnan(float(jobs))
    finally:
        await engine.dispose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_request_id_is_echoed(client: Client) -> None:
    """A caller's X-Request-ID comes back; without one, we make one."""
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    response = await client.get("/healthz")
    assert len(response.headers["X-Request-ID"]) == 32


async def test_the_same_create_at_once_is_one_201_and_409s(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """Eight requests at the same moment for the same join code, or the same member: one is made,
    the others get 409 (on PostgreSQL both pass the check, and the unique index decides)."""
    import asyncio

    groups_path = f"/api/v1/neighbourhoods/{hoods[0].id}/groups"
    made = await asyncio.gather(
        *(
            client.post(groups_path, json={"name": f"G{n}", "join_code": "SAMECODE"}, headers=ADMIN)
            for n in range(8)
        )
    )
    assert sorted(r.status for r in made).count(201) == 1
    assert {r.status for r in made} == {201, 409}
    members_path = f"/api/v1/groups/{hoods[0].group_id}/members"
    added = await asyncio.gather(
        *(client.post(members_path, json={"phone": "+31612349999"}, headers=ADMIN) for _ in range(8))
    )
    assert {r.status for r in added} == {201, 409}
    assert (await added[[r.status for r in added].index(409)].json())["error"]["code"] == "conflict"
