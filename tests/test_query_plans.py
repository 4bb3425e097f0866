"""Every statement the SMS flows run finds its rows through an index: a signal, an answer or a
page costs the same after years of history as on the first day.

A full scan of a table that grows for ever (incidents, signals, messages, answers, the audit
log) went unnoticed on the small databases of the tests: after five busy years of one group, a
signal's look-ups took 3 ms and an OK 0.1 s, each holding SQLite's write lock. SQLite's plans
(EXPLAIN QUERY PLAN) show such a scan on an empty database as well, so this test reads them.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from alertnet.app import create_app
from alertnet.settings import Settings

from .conftest import PUBLIC_URL, Client, call
from .fake_twilio import FakeTwilio
from .loop import OFFICER, ally, make_escalating_group, rows, settled, sms, time_passes, until

#: Tables that keep every row (history), and so must never be read whole by a flow.
HISTORY = ("incidents", "signals", "deliveries", "answers", "audit_events", "timers")
_SCAN = re.compile(rf"\bSCAN ({'|'.join(HISTORY)})\b(?! USING INDEX ix_incidents_unresolved)")
#: Statements that read one row of a scan: the audit chain's head, the last along the primary key.
_BOUNDED = re.compile(r"FROM audit_events ORDER BY audit_events.seq DESC\s+LIMIT 1\b")


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement run on the service's SQLite connections, as run (values bound)."""
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(seen.append)

    sa.event.listen(sa.engine.Engine, "connect", trace)
    yield seen
    sa.event.remove(sa.engine.Engine, "connect", trace)


def scans(database: str, run: list[str]) -> dict[str, list[str]]:
    """The statements of `run` whose plan reads a history table whole, with those plan lines."""
    found: dict[str, list[str]] = {}
    connection = sqlite3.connect(database)
    try:
        for statement in dict.fromkeys(run):
            if not re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", statement, re.IGNORECASE):
                continue
            if _BOUNDED.search(statement):
                continue
            plan = [row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + statement)]
            bad = [line for line in plan if _SCAN.search(line)]
            if bad:
                found[statement] = bad
    finally:
        connection.close()
    return found


@pytest.mark.parametrize("database_kind", ["sqlite"])
async def test_the_sms_flows_read_no_history_table_whole(
    aiohttp_client: Callable[..., Awaitable[Client]],
    twilio_settings: Settings,
    fake: FakeTwilio,
    statements: list[str],
) -> None:
    client = await aiohttp_client(create_app(twilio_settings))
    fake.callback_route = (PUBLIC_URL, str(client.make_url("")).rstrip("/"))
    group = await make_escalating_group(
        client, 4, steps=[(OFFICER, 600)], coordinator="+31620000001", threshold_reporters=2
    )
    # Signals: a new incident, one joining it, a repeat, and the threshold that pages the officer.
    await sms(client, ally(0), "Man bij de schuur")
    await sms(client, ally(0), "Hij loopt naar nummer 5")
    await sms(client, ally(0), "Hij loopt naar nummer 5")
    await sms(client, ally(1), "Ik zie hem ook")
    await until(lambda: any(body.startswith("ALARM") for body in fake.to(OFFICER)))
    # Answers: an ally's OK, one with the incident's number, the officer's OK, and KLAAR.
    await sms(client, ally(2), "OK")
    await sms(client, ally(3), "OK 1")
    await sms(client, OFFICER, "OK")
    await sms(client, OFFICER, "KLAAR 1")
    # A device's signal, an urgent one nobody answers (the timers), and the numbers' commands.
    source = await call(
        client, "POST", "/api/v1/tokens", {"role": "source", "group_id": group["id"]}, expect=201
    )
    headers = {"Authorization": f"Bearer {source['token']}", "Idempotency-Key": "k1"}
    await call(
        client,
        "POST",
        "/api/v1/signals",
        {"group_id": group["id"], "text": "Inbraak, brand!"},
        headers=headers,
        expect=202,
    )
    fired = len(await rows(client, "SELECT id FROM timers WHERE fired_at IS NOT NULL"))
    await time_passes(client)
    deadline = asyncio.get_running_loop().time() + 15
    while len(await rows(client, "SELECT id FROM timers WHERE fired_at IS NOT NULL")) == fired:
        assert asyncio.get_running_loop().time() < deadline, "no timer fired"
        await asyncio.sleep(0.02)
    for sender, text in [(ally(3), "STOP"), (ally(3), "START"), ("+31699000001", "JOIN MOLEN Kees")]:
        await sms(client, sender, text)
    await sms(client, "+31699000001", "JA")
    await sms(client, "+31620000001", "JA 1")
    await sms(client, "+31699000002", "Hallo?")
    await settled(client)

    assert len(statements) > 100, "the trace saw no SQL: is the database SQLite?"
    database = sa.make_url(twilio_settings.database_url).database
    assert database
    assert scans(database, statements) == {}
