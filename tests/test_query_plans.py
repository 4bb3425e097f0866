"""The SMS flows cost the same after years of history as on the first day.

A look-up that reads a group's or a member's whole history went unnoticed on the small databases
of the tests: after five busy years of one group (18,000 incidents, 90,000 signals, 810,000
messages; `python -m bench.breakdown`), a signal's look-ups took 3 ms and an OK 0.1 s, each
holding SQLite's write lock. Here the group gets a history first, and SQLite counts the virtual
machine steps of every statement the flows run (a progress handler): one that reads the history
takes tens of thousands, one that reads through a fitting index a few hundred.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from alertnet import keys
from alertnet.app import create_app
from alertnet.settings import Settings
from alertnet.store import db, retention
from alertnet.store import incidents as incident_store
from alertnet.store import signals as signal_store

from .conftest import PUBLIC_URL, Client, bearer, call
from .fake_twilio import FakeTwilio
from .history import add_history
from .loop import OFFICER, ally, make_escalating_group, make_group, rows, settled, sms, time_passes, until

ALLIES = 4
#: The group's past: resolved incidents, each with signals from every ally, fanned out to the others.
PAST_INCIDENTS = 2_000
#: SQLite counts in steps of this many virtual machine instructions.
STEP = 100
#: The most a statement of the flows may take, in instructions: a read of the history above
#: (8,000 signals, 24,000 messages) takes three to a hundred times as many.
MOST = 3_000
#: The hourly clean-up walks old rows by design (its own time, not a person's): not a flow.
_HOUSEKEEPING = re.compile(r"^\s*(UPDATE deliveries SET recipient_phone|UPDATE signals SET reporter_phone)")


@dataclass
class Costs:
    """Virtual machine instructions per statement, as run (values bound), on every connection."""

    instructions: Counter[str] = field(default_factory=Counter)

    def watch(self, connection: sqlite3.Connection) -> None:
        running: list[str] = [""]

        def started(statement: str) -> None:
            running[0] = statement
            self.instructions[statement] += 0

        def stepped() -> int:
            self.instructions[running[0]] += STEP
            return 0  # go on

        connection.set_trace_callback(started)
        connection.set_progress_handler(stepped, STEP)

    def total(self) -> int:
        return sum(self.instructions.values())

    def costly(self) -> dict[str, int]:
        return {
            statement: steps
            for statement, steps in self.instructions.items()
            if steps > MOST and not _HOUSEKEEPING.match(statement)
        }


@pytest.fixture
def costs() -> Iterator[Costs]:
    seen = Costs()

    def connected(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            seen.watch(dbapi_connection)

    sa.event.listen(sa.engine.Engine, "connect", connected)
    yield seen
    sa.event.remove(sa.engine.Engine, "connect", connected)


@pytest.mark.parametrize("database_kind", ["sqlite"])
async def test_the_sms_flows_do_not_read_the_history(
    aiohttp_client: Callable[..., Awaitable[Client]],
    twilio_settings: Settings,
    fake: FakeTwilio,
    costs: Costs,
) -> None:
    database = sa.make_url(twilio_settings.database_url).database
    assert database
    client = await aiohttp_client(create_app(twilio_settings))
    fake.callback_route = (PUBLIC_URL, str(client.make_url("")).rstrip("/"))
    group = await make_escalating_group(
        client, ALLIES, steps=[(OFFICER, 600)], coordinator="+31620000001", threshold_reporters=2
    )
    await asyncio.to_thread(add_history, database, "MOLEN", PAST_INCIDENTS)
    now = PAST_INCIDENTS + 1
    # Signals: a new incident, one joining it, a repeat, and the threshold that pages the officer.
    await sms(client, ally(0), "Man bij de schuur")
    await sms(client, ally(0), "Hij loopt naar nummer 5")
    await sms(client, ally(0), "Hij loopt naar nummer 5")
    await sms(client, ally(1), "Ik zie hem ook")
    await until(lambda: any(body.startswith("ALARM") for body in fake.to(OFFICER)))
    # Answers: an ally's OK, one with the incident's number, the officer's OK, and KLAAR.
    await sms(client, ally(2), "OK")
    await sms(client, ally(3), f"OK {now}")
    await sms(client, OFFICER, "OK")
    await sms(client, OFFICER, f"KLAAR {now}")
    # A device's signal, urgent, that nobody answers: the timers move the chain.
    source = await call(
        client, "POST", "/api/v1/tokens", {"role": "source", "group_id": group["id"]}, expect=201
    )
    headers = {"Authorization": f"Bearer {source['token']}", "Idempotency-Key": "k1"}
    body = {"group_id": group["id"], "text": "Inbraak, brand!"}
    await call(client, "POST", "/api/v1/signals", body, headers=headers, expect=202)
    fired = len(await rows(client, "SELECT id FROM timers WHERE fired_at IS NOT NULL"))
    await time_passes(client)
    deadline = asyncio.get_running_loop().time() + 15
    while len(await rows(client, "SELECT id FROM timers WHERE fired_at IS NOT NULL")) == fired:
        assert asyncio.get_running_loop().time() < deadline, "no timer fired"
        await asyncio.sleep(0.02)
    # The numbers' commands: STOP and START, joining, a coordinator's approval, a stranger.
    for sender, text in [
        (ally(3), "STOP"),
        (ally(3), "START"),
        ("+31699000001", "JOIN MOLEN Kees"),
        ("+31699000001", "JA"),
        ("+31620000001", "JA 1"),
        ("+31699000002", "Hallo?"),
    ]:
        await sms(client, sender, text)
    await settled(client)
    # A coordinator closes the device's incident. (Removing a member or a group erases their
    # number from all they sent and got, so that reads their history by design.)
    incident = (await rows(client, "SELECT max(id) FROM incidents"))[0][0]
    await call(client, "POST", f"/api/v1/incidents/{incident}/resolve", {"outcome": "Loos alarm"}, expect=200)
    await settled(client)
    # What a coordinator looks at (SQLite runs in the event loop's thread: a long read holds up
    # every SMS): an incident, the open ones, a group's latest.
    body = {"role": "coordinator", "neighbourhood_id": group["neighbourhood_id"]}
    coordinator = bearer((await call(client, "POST", "/api/v1/tokens", body, expect=201))["token"])
    for path in (
        f"/api/v1/incidents/{incident}",
        "/api/v1/incidents?state=open&limit=5",
        f"/api/v1/incidents?group_id={group['id']}&limit=5",
    ):
        await call(client, "GET", path, headers=coordinator, expect=200)
    await call(client, "GET", "/api/v1/incidents?state=escalated&limit=5", expect=200)  # an admin's: all

    assert len(costs.instructions) > 100, "no SQL was seen: is the database SQLite?"
    assert costs.costly() == {}


@pytest.mark.parametrize("database_kind", ["sqlite"])
async def test_the_hourly_sweep_reads_only_what_is_new(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, costs: Costs
) -> None:
    """Once a group's five years are swept, the next hourly sweep reads next to nothing: it goes
    on from where the last one ended, up to the first row inside the retention period."""
    database = sa.make_url(settings.database_url).database
    assert database
    client = await aiohttp_client(create_app(settings))
    await make_group(client, ALLIES)
    await asyncio.to_thread(add_history, database, "MOLEN", PAST_INCIDENTS, years=5)
    before = datetime.now(UTC) - timedelta(days=180)
    async with db.write(client.app[keys.engine]) as conn:
        erased = await retention.erase_older_than(conn, before)
    assert erased > PAST_INCIDENTS * ALLIES  # the signals and messages of 4.5 years
    steps = costs.total()
    async with db.write(client.app[keys.engine]) as conn:
        erased = await retention.erase_older_than(conn, before + timedelta(hours=1))
    assert costs.total() - steps < MOST


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


@pytest.mark.parametrize("database_kind", [pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_postgresql_uses_the_partial_indexes(settings: Settings) -> None:
    """A partial index serves only a query that says its condition as the index does: PostgreSQL,
    told to avoid reading tables whole, plans the hot look-ups through them."""
    checks = [
        (incident_store._LATEST_UNRESOLVED, {"group_id": 1}, "ix_incidents_unresolved"),
        (
            signal_store._RECENT_OF_SOURCE,
            {"group_id": 1, "since": datetime.now(UTC), "source": "token:1"},
            "ix_signals_source",
        ),
    ]
    engine = db.create_engine(settings.database_url)
    try:
        async with db.read(engine) as conn:
            # The plan for any values, which a statement asyncpg prepared gets after a few runs.
            await conn.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
            await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            for n, (statement, values, index) in enumerate(checks):
                compiled = statement.compile(dialect=conn.dialect)
                bound = compiled.construct_params(values)
                args = ", ".join(_literal(bound[name]) for name in compiled.positiontup or [])
                await conn.exec_driver_sql(f"PREPARE hot{n} AS {compiled}")
                plan = "\n".join((await conn.exec_driver_sql(f"EXPLAIN EXECUTE hot{n}({args})")).scalars())
                assert index in plan, plan
    finally:
        await engine.dispose()
