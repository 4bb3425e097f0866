"""`python -m bench.breakdown`: where one signal's time goes, layer by layer, in one process.

A diagnostic to go with `make bench` (not part of it): it seeds a database through a real
`alertnet serve` (the contract's admin API), stops it, then times alertnet's own pieces
sequentially, one at a time, on an otherwise idle event loop:

- the signal transaction (`inbound.receive` in `db.write()`), and how many SQL statements it runs;
- one SQL statement through alertnet's in-loop SQLite driver (as a prepared plan, and not), SQLAlchemy's sync
  engine, bare aiosqlite (a thread hop per call, what alertnet used before), and sqlite3;
- an empty write transaction (BEGIN IMMEDIATE + COMMIT);
- a signal to a group of 1,000 (the fan-out transaction);
- a signal and an OK in one group, then again after five busy years of its history (9,000
  incidents, 90,000 signals, 810,000 messages, written straight into the database);
- the per-request extras: signature check, TwiML, one structlog line;
- one SMS through the Twilio provider (twilio-python) against the fake, and the same POST with bare aiohttp.

It uses alertnet's internals (inbound.receive, the store, the provider), so it may need touching
when they change; the benchmark itself uses only the contract's HTTP API.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import sqlalchemy as sa
import structlog
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from alertnet import inbound, logs, twiliosim
from alertnet.providers import Outgoing
from alertnet.providers.twilio import TwilioProvider
from alertnet.settings import Settings
from alertnet.store import db, tables
from tests import fake_twilio
from tests.history import add_history
from tests.ports import free_port

from .harness import Admin
from .run import ADMIN_TOKEN, AUTH_TOKEN, Phase, ally, signal_text

GROUPS = 60
MEMBERS = 10
BIG = 1_000
#: Five busy years of one group: five incidents a day, each signalled by all ten and fanned out.
HISTORY_INCIDENTS = 9_000


def _ms(samples: list[float]) -> str:
    return f"{statistics.mean(samples) * 1000:7.3f} ms mean, {statistics.median(samples) * 1000:7.3f} median"


async def _timed(n: int, step: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await step(i)
        samples.append(time.perf_counter() - started)
    return samples


def _timed_sync(n: int, step: Callable[[int], Any]) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        step(i)
        samples.append(time.perf_counter() - started)
    return samples


async def seed(tmp: Path) -> Path:
    """A database with GROUPS groups of MEMBERS allies and one group of BIG, made by alertnet serve."""
    async with Phase(tmp, "seed") as phase:
        _child, base = await phase.alertnet("http://127.0.0.1:9")  # sends nothing: no signals yet
        admin = Admin(base, ADMIN_TOKEN)
        try:
            hood = await admin.post("/api/v1/neighbourhoods", {"name": "Breakdown"})
            for g in range(GROUPS):
                await admin.group(hood["id"], f"B {g}", f"BD{g}", [ally(g, m) for m in range(MEMBERS)])
            await admin.group(hood["id"], "Big", "BIG", [f"+3163{n:07d}" for n in range(BIG)])
        finally:
            await admin.close()
    return phase.dir / "bench.db"


class Statements:
    """Counts the SQL statements an engine runs while in the block. Only then: a listener makes
    every statement go through SQLAlchemy's executor instead of its prepared plan (store.prepared)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine.sync_engine
        self.count = 0

    def _count(self, *_args: Any) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)


async def database(path: Path) -> list[str]:
    engine = db.create_engine(f"sqlite:///{path}")
    lines = []
    now = datetime.now(UTC)
    senders = [ally(g, m) for m in range(MEMBERS) for g in range(GROUPS)]

    async def signal(i: int) -> None:
        sms = inbound.Sms(
            "SM" + uuid.uuid4().hex, senders[i % len(senders)], "+3197010000000", signal_text(i)
        )
        async with db.write(engine) as conn:
            await inbound.receive(conn, sms, now)

    await _timed(20, signal)  # warm the statement caches and plans
    samples = await _timed(300, lambda i: signal(i + 20))
    with Statements(engine) as statements:
        await _timed(20, lambda i: signal(i + 320))
    per_signal = statements.count / 20
    lines.append(f"signal transaction (group of {MEMBERS}): {_ms(samples)}; {per_signal:.0f} SQL statements")

    async def empty(_i: int) -> None:
        async with db.write(engine) as conn:
            await conn.execute(sa.text("SELECT 1"))

    lines.append(
        f"empty write transaction (BEGIN IMMEDIATE, SELECT 1, COMMIT): {_ms(await _timed(300, empty))}"
    )
    members = tables.members
    planned = sa.select(members.c.id, members.c.phone, members.c.status).where(
        members.c.phone == sa.bindparam("phone")
    )
    query = sa.text("SELECT id, phone, status FROM members WHERE phone = :phone")
    async with db.read(engine) as conn:
        samples = await _timed(2000, lambda i: conn.execute(planned, {"phone": senders[i % len(senders)]}))
        lines.append(f"one SELECT through alertnet's in-loop driver, as a prepared plan: {_ms(samples)}")
        samples = await _timed(2000, lambda i: conn.execute(query, {"phone": senders[i % len(senders)]}))
        lines.append(f"one SELECT through SQLAlchemy async (a text statement: no plan): {_ms(samples)}")
    sync_engine = sa.create_engine(f"sqlite:///{path}")
    with sync_engine.connect() as sync_conn:
        samples = _timed_sync(
            2000, lambda i: sync_conn.execute(query, {"phone": senders[i % len(senders)]}).all()
        )
    sync_engine.dispose()
    lines.append(f"one SELECT through SQLAlchemy sync (pysqlite, no thread hop): {_ms(samples)}")
    async with aiosqlite.connect(path) as raw:
        sql = "SELECT id, phone, status FROM members WHERE phone = ?"

        async def bare(i: int) -> None:
            cursor = await raw.execute(sql, (senders[i % len(senders)],))
            await cursor.fetchall()

        lines.append(f"one SELECT through bare aiosqlite (a thread hop): {_ms(await _timed(2000, bare))}")
    plain = sqlite3.connect(path)
    samples = _timed_sync(2000, lambda i: plain.execute(sql, (senders[i % len(senders)],)).fetchall())
    plain.close()
    lines.append(f"one SELECT through sqlite3 in the calling thread: {_ms(samples)}")

    big_sender = "+31630000000"
    started = time.perf_counter()
    async with db.write(engine) as conn:
        await inbound.receive(
            conn, inbound.Sms("SM" + uuid.uuid4().hex, big_sender, "+3197010000000", signal_text(99_999)), now
        )
    lines.append(f"signal transaction (group of {BIG}): {(time.perf_counter() - started) * 1000:.0f} ms")

    async def answered(round_: int) -> tuple[list[float], list[float]]:
        """A signal, then an OK from a neighbour who got it, in group 0 (a new text each round)."""
        signalled: list[float] = []
        acked: list[float] = []
        for i in range(20):
            message = signal_text(1_000_000 * round_ + i)
            for samples, sender, body in (
                (signalled, ally(0, i % MEMBERS), message),
                (acked, ally(0, (i + 1) % MEMBERS), "OK"),
            ):
                started = time.perf_counter()
                async with db.write(engine) as conn:
                    await inbound.receive(
                        conn, inbound.Sms("SM" + uuid.uuid4().hex, sender, "+3197010000000", body), now
                    )
                samples.append(time.perf_counter() - started)
        return signalled, acked

    fresh = await answered(1)
    held = await asyncio.to_thread(add_history, str(path), "BD0", HISTORY_INCIDENTS, years=5)
    later = await answered(2)
    lines.append(f"in a group with its first signals: signal {_ms(fresh[0])}; OK {_ms(fresh[1])}")
    lines.append(
        f"after five busy years ({held} in the database): signal {_ms(later[0])}; OK {_ms(later[1])}"
    )
    await engine.dispose()
    return lines


def request_extras() -> list[str]:
    url = "http://127.0.0.1:8080/sms/inbound"
    form = twiliosim.inbound_form(ally(0, 0), signal_text(1))
    signature = twiliosim.headers(url, form, AUTH_TOKEN)["X-Twilio-Signature"]
    validator = RequestValidator(AUTH_TOKEN)
    checks = _timed_sync(2000, lambda _i: validator.validate(url, form, signature))
    lines = [f"Twilio signature check: {_ms(checks)}"]

    def twiml(_i: int) -> str:
        response = MessagingResponse()
        response.message("Melding #1 is doorgestuurd naar 9 bondgenoten. In gevaar? Bel eerst 112.")
        return str(response)

    lines.append(f"TwiML reply (twilio MessagingResponse): {_ms(_timed_sync(2000, twiml))}")
    with open(os.devnull, "w") as sink:
        logs.configure("info", "json", stream=sink)
        log = structlog.get_logger("bench")
        samples = _timed_sync(
            2000,
            lambda _i: log.info(
                "http_request", method="POST", path="/sms/inbound", status=200, duration_ms=1.0
            ),
        )
    lines.append(f"one structlog JSON line (with phone masking): {_ms(samples)}")
    return lines


async def provider() -> list[str]:
    fake = fake_twilio.FakeTwilio()
    url = await fake.start(free_port())
    settings = Settings(
        sms_provider="twilio",
        twilio_account_sid=fake_twilio.ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from=fake_twilio.FROM,
        twilio_api_base=url,
    )
    twilio = TwilioProvider(settings)
    message = Outgoing(ally(0, 1), signal_text(5), "http://127.0.0.1:8080/sms/status?d=1", 3600)
    try:
        await _timed(30, lambda _i: twilio.send(message))
        via_twilio = await _timed(300, lambda _i: twilio.send(message))
        target = f"{url}/2010-04-01/Accounts/{fake_twilio.ACCOUNT_SID}/Messages.json"
        form = {"To": message.to, "From": fake_twilio.FROM, "Body": message.body}
        auth = aiohttp.encode_basic_auth(fake_twilio.ACCOUNT_SID, AUTH_TOKEN)
        async with aiohttp.ClientSession() as session:

            async def bare(_i: int) -> None:
                async with session.post(target, data=form, headers={"Authorization": auth}) as response:
                    await response.json()

            await _timed(30, bare)
            via_aiohttp = await _timed(300, bare)
    finally:
        await twilio.close()
        await fake.stop()
    return [
        f"one SMS through the Twilio provider (twilio-python), fake in-process: {_ms(via_twilio)}",
        f"the same POST with bare aiohttp, fake in-process: {_ms(via_aiohttp)}",
    ]


async def main_async() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="alertnet-breakdown-"))
    try:
        path = await seed(tmp)
        print("where one signal's time goes (sequential, one process, idle event loop):")
        for line in [*await database(path), *request_extras(), *await provider()]:
            print("  " + line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    return asyncio.run(main_async())


if __name__ == "__main__":
    sys.exit(main())
