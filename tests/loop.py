"""Helpers for alert-loop tests: a group of allies, SMS as Twilio posts them, waiting for the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from alertnet import keys, twiliosim
from alertnet.store import db, tables

from .conftest import PUBLIC_URL, Client, call
from .fake_twilio import AUTH_TOKEN


def ally(n: int) -> str:
    return f"+316100{n:05d}"


async def make_group(
    client: Client,
    allies: int,
    *,
    join_code: str = "MOLEN",
    join_policy: str = "approval",
    coordinator: str | None = None,
    name: str = "Molenwijk Noord",
    escalation: dict[str, Any] | None = None,
    hood_id: int | None = None,
) -> dict[str, Any]:
    """A neighbourhood with one group of `allies` active members (ally(0) ... ally(n-1))."""
    if hood_id is None:
        hood_id = (await call(client, "POST", "/api/v1/neighbourhoods", {"name": "Molenwijk"}, expect=201))[
            "id"
        ]
    body = {"name": name, "join_code": join_code, "join_policy": join_policy, "escalation": escalation or {}}
    group = await call(client, "POST", f"/api/v1/neighbourhoods/{hood_id}/groups", body, expect=201)
    for n in range(allies):
        await call(client, "POST", f"/api/v1/groups/{group['id']}/members", {"phone": ally(n)}, expect=201)
    if coordinator:
        await call(
            client,
            "POST",
            f"/api/v1/groups/{group['id']}/members",
            {"phone": coordinator, "role": "coordinator", "name": "Fatima"},
            expect=201,
        )
    result: dict[str, Any] = group
    return result


async def sms(
    client: Client, sender: str, text: str, *, sid: str | None = None, token: str | None = AUTH_TOKEN
) -> tuple[int, list[str]]:
    """Post an inbound SMS signed for the public URL; returns the status and the replies."""
    form = twiliosim.inbound_form(sender, text, sid=sid)
    headers = twiliosim.headers(PUBLIC_URL + "/sms/inbound", form, token)
    response = await client.post("/sms/inbound", data=form, headers=headers)
    text_body = await response.text()
    return response.status, twiliosim.replies(text_body) if response.status == 200 else []


async def until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait for a condition a worker (the sender, say) makes true; fail the test if it never does."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for a worker")
        await asyncio.sleep(0.02)


T = TypeVar("T")


async def turns_while(work: Awaitable[T], pause_s: float = 0) -> tuple[T, int]:
    """`work`'s result, and how many turns another task got meanwhile (pausing `pause_s` each):
    how free the event loop stays while it runs."""
    turns = 0
    done = asyncio.Event()

    async def meanwhile() -> None:
        nonlocal turns
        while not done.is_set():
            await asyncio.sleep(pause_s)
            turns += 1

    other = asyncio.create_task(meanwhile())
    try:
        result = await work
    finally:
        done.set()
        await other
    return result, turns


async def time_passes(client: Client) -> None:
    """Every pending timer falls due now, as if its time-out had run out. A test makes its move (an
    OK, a delete) first, under a long time-out, instead of racing a 1 s one on a busy machine."""
    async with db.write(client.app[keys.engine]) as conn:
        pending = tables.timers.c.fired_at.is_(None)
        await conn.execute(tables.timers.update().where(pending).values(due_at=datetime.now(UTC)))


async def jobs_due_now(client: Client) -> None:
    """Every queued message falls due now, as if its retry's wait had run out."""
    async with db.write(client.app[keys.engine]) as conn:
        await conn.execute(tables.outbox.update().values(due_at=datetime.now(UTC)))
    client.app[keys.sender].notify()


async def timers_fired(client: Client, timeout_s: float = 15.0) -> None:
    """Wait until every timer has come due and been handled (fired, or found stale): what a chain
    could still do, it has done. Better than sleeping past a deadline on a slow machine."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await rows(client, "SELECT id FROM timers WHERE fired_at IS NULL"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the timers to fire")
        await asyncio.sleep(0.02)


async def settled(client: Client) -> None:
    """Wait until the outbox is empty (every job sent or given up) and its outcomes are recorded."""

    async def pending() -> int:
        async with db.read(client.app[keys.engine]) as conn:
            return int(await conn.scalar(sa.text("SELECT count(*) FROM outbox")) or 0)

    deadline = asyncio.get_running_loop().time() + 30
    while await pending():
        assert asyncio.get_running_loop().time() < deadline, "outbox never drained"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)


async def rows(client: Client, query: str) -> list[Any]:
    async with db.read(client.app[keys.engine]) as conn:
        return list((await conn.execute(sa.text(query))).all())


OFFICER = "+31630000001"
BACKUP = "+31630000002"


async def make_escalating_group(
    client: Client,
    allies: int,
    *,
    steps: list[tuple[str, int]],
    coordinator: str | None = None,
    schedules: dict[str, Any] | None = None,
    **policy: Any,
) -> dict[str, Any]:
    """A group of allies whose chain pages the responders `steps` = [(phone, timeout_s), ...] in order."""
    hood = await call(client, "POST", "/api/v1/neighbourhoods", {"name": "Molenwijk"}, expect=201)
    ids = []
    for n, (phone, _) in enumerate(steps):
        body = {"name": f"Responder {n + 1}", "phone": phone}
        if schedules and phone in schedules:
            body["schedule"] = schedules[phone]
        responder = await call(
            client, "POST", f"/api/v1/neighbourhoods/{hood['id']}/responders", body, expect=201
        )
        ids.append(responder["id"])
    chain = [
        {"responder_ids": [rid], "timeout_s": timeout} for rid, (_, timeout) in zip(ids, steps, strict=True)
    ]
    group = await make_group(
        client, allies, coordinator=coordinator, escalation={"chain": chain, **policy}, hood_id=hood["id"]
    )
    return group | {"responder_ids": ids}
