"""`make bench`: the figures of issues 3, 4 and 5, on this machine, in one run.

1. ceiling: a bare aiohttp hello-world answering POST with fixed TwiML (bench/hello.py);
2. ingest: signed inbound SMS posts to `alertnet serve` (Twilio provider against the fake
   Twilio at zero latency), 32 at a time;
3. fan-out: one signal to a group of 1,000 allies, until the fake Twilio holds all 999 messages;
4. timers: 1,000 escalation (ack) timers falling due within the same minute (packed into 15 s
   by default, --timer-spread): how late each fires.

Parts 2-4 run on each database setup (--db): SQLite with one process, and PostgreSQL (a
throwaway cluster, bench/postgres.py) with one process and with three processes sharing the
database, the load spread round-robin over them. Ingest gets an empty database; the fan-out and
the timers each get a copy of one seeded once per kind of database through the admin API.

Every server is a real process on 127.0.0.1 with a free port; the load comes from this process.
It prints figures and a side-by-side target table. Exit status: 0 when the figures were measured
(even when a target is missed: it is a report), 1 when something broke (errors, lost or
duplicate messages, timers that never fired or fired twice).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from alertnet import incidents, twiliosim
from alertnet.settings import Settings
from tests import fake_twilio
from tests.ports import free_port

from .harness import (
    CONCURRENCY,
    PYTHON,
    Admin,
    Child,
    Load,
    Post,
    drive,
    percentile,
    signed_post,
    wait_http,
    wait_port,
)
from .postgres import Postgres, pg_bin
from .profile import sampling

#: The server under test (an experiment may point this at a wrapper that patches alertnet first).
ALERTNET_COMMAND = [PYTHON, "-m", "alertnet", "serve"]
#: The same server with the intake stubbed out (--shell-ceiling): what the HTTP shell alone costs.
SHELL_COMMAND = [PYTHON, "-m", "bench.shell", "serve"]
ADMIN_TOKEN = "bench-admin-token-" + "x" * 24
#: The token alertnet checks inbound signatures with (and authenticates to the fake with).
AUTH_TOKEN = "bench-twilio-auth-token"
#: Whole run, all parts and setups: the benchmark never hangs (a default run takes about 4 minutes).
OVERALL_S = 345
#: Each part of each setup: one that hangs is reported, and the others still run.
PART_MAX_S = {"ceiling": 30.0, "ingest": 60.0, "seed": 150.0, "fanout": 60.0}

# Ingest: every sender stays within the flood limit (5 signals per 10 minutes per group), so each
# signal is a full one: stored, joined to its group's incident, fanned out to 9 allies, audited.
# The first groups are seeded before the warm-up; more follow when the warm-up's pace needs them.
INGEST_GROUPS_FIRST = 50
INGEST_GROUPS_MAX = 200
INGEST_GROUP_SIZE = 10
INGEST_WARMUP = 300
INGEST_WARMUP_MAX_S = 2.0
INGEST_MEASURED = 6_000
INGEST_MAX_S = 8.0
FLOOD_LIMIT = incidents.FLOOD_LIMIT

CEILING_WARMUP = 1_000
CEILING_MEASURED = 30_000
CEILING_MAX_S = 3.0

FANOUT_ALLIES = 1_000
FANOUT_RUNS = 3
FANOUT_TIMEOUT_S = 15.0


def _send_rate_cap() -> float:
    """The settings' upper bound for ALERTNET_SEND_RATE."""
    for rule in Settings.model_fields["send_rate"].metadata:
        if getattr(rule, "le", None) is not None:
            return float(rule.le)
    return float("inf")


#: The issue asks for 100000 messages/s; the settings may cap it lower. Either is far above 999/s.
FANOUT_SEND_RATE = int(min(100_000, _send_rate_cap()))
FANOUT_SEND_CONCURRENCY = 32

# Timers: one incident per group, opened by one signal through POST /api/v1/signals; its ack timer
# falls due ack_timeout_s later. The signals are paced evenly, so the timers fall due evenly over
# the spread (--timer-spread; the default packs a minute's 1,000 into 15 s, 4 times as dense, to
# keep `make bench` short), and ack_timeout_s is the spread plus TIMER_SLACK_S, so the first falls
# due after the last signal was posted: only the timers (and the pages they send) keep alertnet busy.
TIMERS = 1_000
TIMER_SPREAD_S = 15.0
TIMER_SLACK_S = 5
#: After the last due time, how long the timers get before the rest count as lost.
TIMER_GRACE_S = 20.0
TIMER_POLL_S = 0.2
#: The one responder in every group's chain: each fired timer pages them once.
TIMER_RESPONDER = "+31687654321"
#: The step time-out after the page: far beyond the measurement, so no second timer fires.
TIMER_STEP_S = 3600

TARGET_RATE = 1_500.0
TARGET_P99_MS = 50.0
TARGET_FANOUT_S = 1.0
TARGET_LATENESS_S = 1.0

PARTS = ("ceiling", "ingest", "fanout", "timers")
DATABASES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Setup:
    """Where alertnet keeps its data, and how many processes share it."""

    key: str
    title: str
    database: str
    processes: int


SETUPS = (
    Setup("sqlite", "SQLite, 1 process", "sqlite", 1),
    Setup("pg1", "PostgreSQL, 1 process", "postgresql", 1),
    Setup("pg3", "PostgreSQL, 3 processes", "postgresql", 3),
)

#: Consonants only: a generated tag never spells an urgent keyword (brand, mes, wapen, ...).
_TAG_LETTERS = "bcdfghjklmnpqrstvwxz"


def tag(n: int) -> str:
    letters = []
    while True:
        n, digit = divmod(n, len(_TAG_LETTERS))
        letters.append(_TAG_LETTERS[digit])
        if n == 0:
            return "".join(reversed(letters))


def signal_text(n: int) -> str:
    return f"Verdachte persoon bij portiek {tag(n)}"


def classify(twiml: str) -> str:
    """What alertnet did with a signal, read from its (Dutch) reply."""
    text = " ".join(twiliosim.replies(twiml))
    if "doorgestuurd naar" in text:
        return "fanned out"
    if "niet opnieuw verstuurd" in text:
        return "flood-limited"
    if "hadden we al" in text:
        return "repeat"
    return "other: " + text[:60]


@dataclass
class TimerRun:
    """What the timers part saw: each ack timer's due time, when alertnet fired it, when it was seen."""

    #: The signals are paced evenly over this long; ack_timeout_s is this plus TIMER_SLACK_S.
    spread_asked_s: float = TIMER_SPREAD_S
    #: The signals that opened the incidents, and when the last answer came.
    posted: Load = field(default_factory=Load)
    posted_until: datetime | None = None
    due: dict[int, datetime] = field(default_factory=dict)
    #: fired_at, as alertnet stored it: its clock when it decided to fire.
    fired: dict[int, datetime] = field(default_factory=dict)
    #: When a poll first saw it fired: the latest its transaction can have committed.
    seen: dict[int, datetime] = field(default_factory=dict)
    #: Escalation pages in the database, and the distinct incidents they are about.
    pages: tuple[int, int] = (0, 0)
    #: alertnet_timer_lateness_seconds from /metrics, summed over the processes.
    metric: dict[str, float] = field(default_factory=dict)
    handed: int = 0

    def lateness(self) -> list[float]:
        return [(fired - self.due[key]).total_seconds() for key, fired in self.fired.items()]

    def visible(self) -> list[float]:
        return [(seen - self.due[key]).total_seconds() for key, seen in self.seen.items()]

    @property
    def ack_s(self) -> int:
        return ack_timeout_s(self.spread_asked_s)

    def spread_s(self) -> float:
        return (max(self.due.values()) - min(self.due.values())).total_seconds() if self.due else 0.0

    def due_while_posting(self) -> int:
        """Timers that fell due before the last signal was answered (the server lagged the pace)."""
        until = self.posted_until
        return sum(1 for due in self.due.values() if until is not None and due < until)

    def busiest_second(self) -> int:
        """The most timers fired within one second (by fired_at): what the workers kept up."""
        return max(Counter(int(fired.timestamp()) for fired in self.fired.values()).values(), default=0)

    @property
    def complete(self) -> bool:
        return len(self.due) == TIMERS and len(self.fired) == TIMERS


@dataclass
class Seeded:
    """The groups of the fan-out and timer parts, made once per database kind through the admin API
    by one alertnet process; each measurement runs on a copy of its database."""

    database: str
    spread_s: float
    timer_groups: list[int] = field(default_factory=list)


@dataclass
class Report:
    ceiling: Load | None = None
    #: By (setup key, label).
    ingest: dict[tuple[str, str], Load] = field(default_factory=dict)
    #: Ingest with the intake stubbed out (--shell-ceiling): the HTTP shell's own ceiling.
    shell: Load | None = None
    #: By setup key.
    fanout: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timers: dict[str, TimerRun] = field(default_factory=dict)
    #: The setups measured, in order.
    setups: list[Setup] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    #: Where py-spy profiles go (--profile), or None.
    profile: Path | None = None


class Service:
    """The `alertnet serve` processes of one measurement: one database, each process on its own
    port, all with the first one's URL as public URL (as behind a proxy: Twilio signs for it)."""

    def __init__(self, children: list[Child], bases: list[str], database: str) -> None:
        self.children = children
        self.bases = bases
        self.database = database

    @property
    def base(self) -> str:
        return self.bases[0]

    def urls(self, path: str) -> list[str]:
        return [base + path for base in self.bases]

    def check(self) -> None:
        for child in self.children:
            child.check()

    def cpu(self) -> tuple[float, float]:
        """User and system CPU seconds of all the processes together."""
        times = [child.cpu() for child in self.children]
        return sum(user for user, _ in times), sum(system for _, system in times)


def _ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class Phase:
    """The children of one measurement, always stopped at its end."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.children: list[Child] = []

    def start(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, args, self.dir / f"{name}.log", env)
        self.children.append(child)
        return child

    async def __aenter__(self) -> Phase:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        # The alertnet processes first, together (each drains its sends to the fake), then the rest.
        servers = [child for child in self.children if child.name.startswith("alertnet")]
        await asyncio.gather(*(asyncio.to_thread(child.stop) for child in servers))
        for child in reversed(self.children):
            await asyncio.to_thread(child.stop)

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.dir / 'bench.db'}"

    async def fake_twilio(self) -> tuple[str, Path]:
        port = free_port()
        record = self.dir / "sent.jsonl"
        child = self.start(
            "fake-twilio", [PYTHON, "-m", "tests.fake_twilio", "--port", str(port), "--record", str(record)]
        )
        await wait_port(child, port)
        return f"http://127.0.0.1:{port}", record

    async def alertnet(self, fake_url: str, **extra: str) -> tuple[Child, str]:
        """One process on this phase's SQLite file."""
        service = await self.service(fake_url, 1, None, **extra)
        return service.children[0], service.base

    async def service(
        self,
        fake_url: str,
        processes: int,
        database: str | None,
        command: Sequence[str] = ALERTNET_COMMAND,
        **extra: str,
    ) -> Service:
        """`processes` alertnet processes on `database` (None: this phase's SQLite file), started
        together; on PostgreSQL they migrate one at a time (alertnet takes an advisory lock)."""
        database = database or self.sqlite_url
        bases = [f"http://127.0.0.1:{port}" for port in _ports(processes)]
        names = ["alertnet"] if processes == 1 else [f"alertnet-{n + 1}" for n in range(processes)]
        children = [
            self.start(name, command, _alertnet_env(database, base, bases[0], fake_url, extra))
            for name, base in zip(names, bases, strict=True)
        ]
        for child, base in zip(children, bases, strict=True):
            await wait_http(child, base + "/readyz", timeout_s=60)
        return Service(children, bases, database)


def _alertnet_env(
    database: str, base: str, public: str, fake_url: str, extra: dict[str, str]
) -> dict[str, str]:
    port = base.rsplit(":", 1)[1]
    return {
        "ALERTNET_DATABASE_URL": database,
        "ALERTNET_HOST": "127.0.0.1",
        "ALERTNET_PORT": port,
        "ALERTNET_PUBLIC_URL": public,
        "ALERTNET_ADMIN_TOKEN": ADMIN_TOKEN,
        "ALERTNET_SMS_PROVIDER": "twilio",
        "ALERTNET_TWILIO_ACCOUNT_SID": fake_twilio.ACCOUNT_SID,
        "ALERTNET_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "ALERTNET_TWILIO_FROM": fake_twilio.FROM,
        "ALERTNET_TWILIO_API_BASE": fake_url,
        "ALERTNET_LOG_FORMAT": "json",
        **{f"ALERTNET_{key.upper()}": value for key, value in extra.items()},
    }


# 1. The ceiling


async def ceiling(tmp: Path, report: Report) -> None:
    async with Phase(tmp, "ceiling") as phase:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        child = phase.start("hello", [PYTHON, "-m", "bench.hello", "--port", str(port)])
        await wait_http(child, base + "/healthz")
        # The same signed posts as the ingest sends (hello-world does not look at them), reused.
        distinct = [
            signed_post(base, twiliosim.inbound_form(ally(0, n), signal_text(n)), AUTH_TOKEN)
            for n in range(CEILING_WARMUP)
        ]
        url = base + "/sms/inbound"
        await drive(url, distinct, child=child, max_s=5)
        posts = distinct * (CEILING_MEASURED // CEILING_WARMUP)
        load = await drive(url, posts, child=child, max_s=CEILING_MAX_S)
    report.ceiling = load
    print_load("ceiling: bare aiohttp hello-world, POST -> fixed TwiML", load)
    if load.errors:
        report.broken.append(f"ceiling: {load.errors} errors")


# 2. Ingest


def ally(group: int, member: int) -> str:
    """Distinct valid Dutch mobile numbers: +31 6 1 GGG MMMM for the ingest groups."""
    return f"+3161{group:03d}{member:04d}"


class Senders:
    """The ingest groups, grown on demand, and how many signals each ally may still send.

    Each ally stays within the flood limit (FLOOD_LIMIT signals per 10 minutes per group), so
    every post is a full signal; consecutive posts come from different groups.
    """

    def __init__(self, admin: Admin, hood_id: int) -> None:
        self.admin = admin
        self.hood_id = hood_id
        self.groups: list[list[str]] = []
        self.used: Counter[str] = Counter()
        self.seeded_s = 0.0

    async def grow(self, groups: int) -> None:
        started = time.perf_counter()
        first = len(self.groups)
        new = [[ally(g, m) for m in range(INGEST_GROUP_SIZE)] for g in range(first, first + groups)]
        await asyncio.gather(
            *(
                self.admin.group(self.hood_id, f"Bench {g}", f"BENCH{g}", phones)
                for g, phones in enumerate(new, first)
            )
        )
        self.groups.extend(new)
        self.seeded_s += time.perf_counter() - started

    @property
    def capacity(self) -> int:
        return sum(FLOOD_LIMIT - self.used[phone] for group in self.groups for phone in group)

    def take(self, n: int) -> list[str]:
        """Up to `n` senders, round after round over every ally with budget left."""
        order = [group[m] for m in range(INGEST_GROUP_SIZE) for group in self.groups]
        chosen: list[str] = []
        while len(chosen) < n:
            fresh = [phone for phone in order if self.used[phone] < FLOOD_LIMIT]
            if not fresh:
                break
            for phone in fresh[: n - len(chosen)]:
                self.used[phone] += 1
                chosen.append(phone)
        return chosen


async def signatures_checked(url: str) -> None:
    """The measured server must check every signature, as in production: a wrong one gets 403."""
    form = twiliosim.inbound_form(ally(0, 0), signal_text(0))
    post = signed_post(url.removesuffix("/sms/inbound"), form, "not-" + AUTH_TOKEN)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=post.body, headers=post.headers) as answer,
    ):
        if answer.status != 403:
            raise RuntimeError(
                f"a post with a wrong signature got {answer.status}, not 403: validation is off"
            )


def ingest_posts(base: str, senders: list[str], first: int) -> list[Post]:
    return [
        signed_post(base, twiliosim.inbound_form(phone, signal_text(first + n)), AUTH_TOKEN)
        for n, phone in enumerate(senders)
    ]


async def ingest(
    tmp: Path,
    report: Report,
    setup: Setup,
    database: str | None,
    name: str,
    label: str,
    command: Sequence[str] = ALERTNET_COMMAND,
    **extra: str,
) -> None:
    async with Phase(tmp, name) as phase:
        fake_url, record = await phase.fake_twilio()
        service = await phase.service(fake_url, setup.processes, database, command, **extra)
        base = service.base
        url = base + "/sms/inbound"
        urls = service.urls("/sms/inbound")
        await signatures_checked(url)
        admin = Admin(base, ADMIN_TOKEN)
        try:
            hood = await admin.post("/api/v1/neighbourhoods", {"name": "Bench"})
            senders = Senders(admin, hood["id"])
            await senders.grow(INGEST_GROUPS_FIRST)
            warm_posts = ingest_posts(base, senders.take(INGEST_WARMUP), 0)
            warm = await drive(urls, warm_posts, child=service, max_s=INGEST_WARMUP_MAX_S, classify=classify)
            # Enough allies for the measured run at the warm-up's pace, with room to spare.
            need = min(INGEST_MEASURED, int(warm.rate * INGEST_MAX_S * 1.5) + 1)
            while senders.capacity < need and len(senders.groups) < INGEST_GROUPS_MAX:
                missing = -(-(need - senders.capacity) // (FLOOD_LIMIT * INGEST_GROUP_SIZE))
                await senders.grow(min(missing, INGEST_GROUPS_MAX - len(senders.groups)))
            posts = ingest_posts(base, senders.take(need), len(warm_posts))
        finally:
            await admin.close()
        database_cpu = Postgres.cpu_all()
        with sampling(service.children[0], report.profile, name):
            load = await drive(urls, posts, child=service, max_s=INGEST_MAX_S, classify=classify)
        database_cpu = Postgres.cpu_all() - database_cpu
        handed = _lines(record)
        shared = await histogram(service, "alertnet_db_units_per_transaction")
        service.check()
    if command is SHELL_COMMAND:
        report.shell = load
    else:
        report.ingest[setup.key, label] = load
    print_load(f"ingest: alertnet /sms/inbound, {setup.title}, {label}", load, setup.processes)
    if setup.database == "postgresql":
        print(f"  PostgreSQL (all its processes) used {_share(database_cpu, load.elapsed_s):.0f}% of a core")
    if shared.get("count"):
        print(
            f"  group commit: {shared['count']:,.0f} write transactions took the inbound SMS, "
            f"{shared['sum'] / shared['count']:.1f} each on average (warm-up included)"
        )
    enqueued = (warm.count + load.count) * (INGEST_GROUP_SIZE - 1)
    done = (
        "nothing stored or sent: the intake was stubbed out"
        if command is SHELL_COMMAND
        else "each signal is stored, joins its group's incident, is audited\n"
        f"  and enqueues {INGEST_GROUP_SIZE - 1} SMS, which the sender workers send concurrently in the "
        f"same processes:\n  {handed} of {enqueued} handed to the fake Twilio by the end of the run"
    )
    print(
        f"  seeded {len(senders.groups)} groups x {INGEST_GROUP_SIZE} allies through the admin API "
        f"in {senders.seeded_s:.1f} s; warm-up of {warm.count} posts ({warm.rate:,.0f}/s) excluded;\n"
        f"  replies: {dict(load.kinds)}; {done}"
    )
    what = f"ingest ({setup.title}, {label})"
    if load.errors or warm.errors:
        report.broken.append(f"{what}: {load.errors + warm.errors} errors {dict(load.statuses)}")
    if any(kind != "fanned out" for kind in load.kinds + warm.kinds):
        report.broken.append(f"{what}: not every signal was fanned out: {dict(load.kinds)}")


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


# Seeding, for the fan-out and the timers

#: The seeding process sends nothing (adding groups and members sends no SMS): a closed port.
NOWHERE = "http://127.0.0.1:9"


async def seed(tmp: Path, kind: str, database: str | None, parts: set[str], spread_s: float) -> Seeded:
    started = time.perf_counter()
    async with Phase(tmp, f"seed-{kind}") as phase:
        service = await phase.service(NOWHERE, 1, database)
        seeded = Seeded(service.database, spread_s)
        admin = Admin(service.base, ADMIN_TOKEN)
        try:
            if "fanout" in parts:
                await fanout_groups(admin)
            if "timers" in parts:
                seeded.timer_groups = await timer_groups(admin, ack_timeout_s(spread_s))
        finally:
            await admin.close()
        service.check()
    made = [f"{FANOUT_RUNS} groups of {FANOUT_ALLIES} allies for the fan-out"] if "fanout" in parts else []
    made += [f"{TIMERS} groups for the timers"] if "timers" in parts else []
    print(
        f"  seeded {' and '.join(made)}\n  through the admin API (one process) in "
        f"{time.perf_counter() - started:.1f} s; each measurement below runs on a copy of that database"
    )
    return seeded


def _sqlite_copy(source: Path, target: Path) -> None:
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


async def copy_database(tmp: Path, seeded: Seeded, pg: Postgres | None, name: str) -> str:
    """A copy of the seeded database for one measurement: SQLite's backup, or PostgreSQL's template."""
    if pg is None:
        target = tmp / f"{name}.db"
        await asyncio.to_thread(_sqlite_copy, Path(seeded.database.removeprefix("sqlite:///")), target)
        return f"sqlite:///{target}"
    return await pg.database(name.replace("-", "_"), template=seeded.database)


# 3. Fan-out


class Arrivals(list[dict[str, str]]):
    """The fake Twilio's message list, noting when each message arrived and when a count is reached."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.target = 0
        self.reached = asyncio.Event()

    def append(self, item: dict[str, str]) -> None:
        super().append(item)
        self.times.append(time.perf_counter())
        if self.target and len(self) >= self.target:
            self.reached.set()


def fanout_phone(run: int, member: int) -> str:
    """+31 6 2R MMMMMM: each run's group has its own numbers, so a sender is in one group only."""
    return f"+3162{run}{member:06d}"


async def fanout_groups(admin: Admin) -> None:
    """FANOUT_RUNS groups of FANOUT_ALLIES allies, one for each run (seeded beforehand)."""
    hood = await admin.post("/api/v1/neighbourhoods", {"name": "Fan-out"})
    for run in range(FANOUT_RUNS):
        phones = [fanout_phone(run, n) for n in range(FANOUT_ALLIES)]
        await admin.group(hood["id"], f"Fan-out {run}", f"FAN{run}", phones)


async def fanout(tmp: Path, report: Report, setup: Setup, database: str, name: str) -> None:
    """The fan-out runs on a copy of the seeded database: its groups are there already."""
    runs = report.fanout.setdefault(setup.key, [])
    async with Phase(tmp, name) as phase:
        arrivals = Arrivals()
        fake = fake_twilio.FakeTwilio(record=phase.dir / "sent.jsonl", messages=arrivals)
        fake_url = await fake.start()
        try:
            service = await phase.service(
                fake_url,
                setup.processes,
                database,
                send_rate=str(FANOUT_SEND_RATE),
                send_concurrency=str(FANOUT_SEND_CONCURRENCY),
            )
            async with aiohttp.ClientSession() as session:
                for run in range(FANOUT_RUNS):
                    phones = [fanout_phone(run, n) for n in range(FANOUT_ALLIES)]
                    with sampling(service.children[0], report.profile if run == 0 else None, name):
                        runs.append(await fanout_once(session, service, arrivals, phones, run))
                    service.check()
        finally:
            await fake.stop()
    print_fanout(report, setup)


async def fanout_once(
    session: aiohttp.ClientSession, service: Service, arrivals: Arrivals, phones: list[str], run: int
) -> dict[str, Any]:
    """One signal, posted to the first process; with several, all their senders share the outbox."""
    base = service.base
    expected = len(phones) - 1
    first = len(arrivals)
    arrivals.reached.clear()
    arrivals.target = first + expected
    post = signed_post(base, twiliosim.inbound_form(phones[0], signal_text(10_000 + run)), AUTH_TOKEN)
    cpu0 = sum(service.cpu())
    started = time.perf_counter()
    async with session.post(base + "/sms/inbound", data=post.body, headers=post.headers) as response:
        await response.read()
        status = response.status
    answered = time.perf_counter()
    try:
        await asyncio.wait_for(arrivals.reached.wait(), FANOUT_TIMEOUT_S)
        done = arrivals.times[first + expected - 1]
    except TimeoutError:
        done = None
    cpu = (sum(service.cpu()) - cpu0) / ((done or time.perf_counter()) - started) * 100
    await asyncio.sleep(0.5)  # anything sent twice arrives now
    got = arrivals[first:]
    per_recipient = Counter(message["To"] for message in got)
    return {
        "status": status,
        "answer_ms": (answered - started) * 1000,
        "first_ms": (arrivals.times[first] - started) * 1000 if len(got) else None,
        "seconds": done - started if done is not None else None,
        "received": len(got),
        "expected": expected,
        "duplicates": sum(n - 1 for n in per_recipient.values()),
        "missing": len(set(phones[1:]) - set(per_recipient)),
        "to_sender": per_recipient[phones[0]],
        "cpu": cpu,
    }


# 4. Timers


def _utc(value: Any) -> datetime:
    """A timestamp as the database driver returns it (SQLite: naive UTC text) as an aware datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class TimerTable:
    """The ack timers and escalation pages in the database under test, read while alertnet runs
    (SQLite: a read-only connection; PostgreSQL: asyncpg)."""

    TIMERS = "SELECT id, due_at, fired_at FROM timers WHERE kind = 'ack_timeout'"
    PAGES = "SELECT count(*), count(DISTINCT incident_id) FROM deliveries WHERE purpose = 'escalation'"

    def __init__(self) -> None:
        self.sqlite: sqlite3.Connection | None = None
        self.postgres: Any = None

    @classmethod
    async def open(cls, url: str) -> TimerTable:
        table = cls()
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            table.sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            table.postgres = await asyncpg.connect(url, timeout=10)
        return table

    async def _fetch(self, sql: str) -> list[tuple[Any, ...]]:
        if self.sqlite is not None:
            conn = self.sqlite
            return await asyncio.to_thread(lambda: conn.execute(sql).fetchall())
        return [tuple(row) for row in await self.postgres.fetch(sql)]

    async def timers(self) -> list[tuple[int, datetime, datetime | None]]:
        rows = await self._fetch(self.TIMERS)
        return [(int(key), _utc(due), None if fired is None else _utc(fired)) for key, due, fired in rows]

    async def pages(self) -> tuple[int, int]:
        [(count, incidents_paged)] = await self._fetch(self.PAGES)
        return int(count), int(incidents_paged)

    async def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.postgres is not None:
            await self.postgres.close()


def ack_timeout_s(spread_s: float) -> int:
    """The groups' ack_timeout_s: the first timer falls due TIMER_SLACK_S after the last signal."""
    return math.ceil(spread_s) + TIMER_SLACK_S


async def timer_groups(admin: Admin, ack_s: int) -> list[int]:
    """TIMERS groups (no members), each with the responder in its chain and this ack_timeout_s."""
    hood = await admin.post("/api/v1/neighbourhoods", {"name": "Timers"})
    responder = await admin.post(
        f"/api/v1/neighbourhoods/{hood['id']}/responders",
        {"name": "Buurtregisseur", "phone": TIMER_RESPONDER},
    )
    policy = {
        "ack_timeout_s": ack_s,
        "chain": [{"responder_ids": [responder["id"]], "timeout_s": TIMER_STEP_S}],
    }
    queue = list(range(TIMERS))
    ids: dict[int, int] = {}

    async def worker() -> None:
        while queue:
            n = queue.pop()
            body = {"name": f"Timers {n}", "join_code": f"TIMER{n}", "escalation": policy}
            ids[n] = (await admin.post(f"/api/v1/neighbourhoods/{hood['id']}/groups", body))["id"]

    await asyncio.gather(*(worker() for _ in range(16)))
    return [ids[n] for n in range(TIMERS)]


async def post_signals(service: Service, group_ids: list[int], spread_s: float) -> Load:
    """One signal per group through POST /api/v1/signals, evenly paced over `spread_s` and
    round-robin over the processes: each opens an incident, whose ack timer falls due ack_s later."""
    load = Load()
    urls = service.urls("/api/v1/signals")
    session = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        connector=aiohttp.TCPConnector(limit=CONCURRENCY),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    started = time.perf_counter()

    async def one(n: int, group_id: int) -> None:
        await asyncio.sleep(max(0.0, started + n * spread_s / len(group_ids) - time.perf_counter()))
        sent = time.perf_counter()
        try:
            body = {"group_id": group_id, "text": signal_text(n)}
            async with session.post(urls[n % len(urls)], json=body) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            load.failures[type(exc).__name__] += 1
            return
        load.latencies.append(time.perf_counter() - sent)
        load.statuses[status] += 1
        if status == 202:
            load.kinds["opened an incident" if answer.get("new_incident") else "joined one"] += 1

    try:
        await asyncio.gather(*(one(n, group_id) for n, group_id in enumerate(group_ids)))
    finally:
        load.elapsed_s = time.perf_counter() - started
        await session.close()
    return load


async def watch_timers(
    service: Service, table: TimerTable, posting: asyncio.Task[Load], run: TimerRun
) -> None:
    """Poll the timers table until every timer fired, or TIMER_GRACE_S after the last was due.

    Each timer's fired_at is alertnet's clock when it decided to fire it; the poll that first sees
    it fired bounds when that decision committed (within TIMER_POLL_S)."""
    deadline: float | None = None
    while True:
        at = datetime.now(UTC)
        for key, due, fired in await table.timers():
            run.due[key] = due
            if fired is not None and key not in run.fired:
                run.fired[key], run.seen[key] = fired, at
        if posting.done():
            if deadline is None:
                run.posted, run.posted_until = posting.result(), datetime.now(UTC)
                last = max(run.due.values(), default=at)
                deadline = time.monotonic() + max(0.0, (last - at).total_seconds()) + TIMER_GRACE_S
            if len(run.fired) >= len(run.due) or time.monotonic() > deadline:
                return
        service.check()
        await asyncio.sleep(TIMER_POLL_S)


async def histogram(service: Service, name: str, within: float | None = None) -> dict[str, float]:
    """A histogram from every process's /metrics: count, sum, and the count up to `within`."""
    totals: dict[str, float] = {"count": 0.0, "sum": 0.0, "within": 0.0}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for url in service.urls("/metrics"):
            async with session.get(url) as response:
                text = await response.text()
            for family in text_string_to_metric_families(text):
                if family.name != name:
                    continue
                for sample in family.samples:
                    if sample.name.endswith(("_count", "_sum")):
                        totals[sample.name.rsplit("_", 1)[1]] += sample.value
                    elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == within:
                        totals["within"] += sample.value
    return dict(totals)


async def timers(tmp: Path, report: Report, setup: Setup, seeded: Seeded, database: str, name: str) -> None:
    """The timers run on a copy of the seeded database: its groups are there already."""
    run = TimerRun(spread_asked_s=seeded.spread_s)
    group_ids, spread_s = seeded.timer_groups, seeded.spread_s
    async with Phase(tmp, name) as phase:
        fake_url, record = await phase.fake_twilio()
        service = await phase.service(fake_url, setup.processes, database)
        table = await TimerTable.open(service.database)
        posting = asyncio.create_task(post_signals(service, group_ids, spread_s))
        try:
            with sampling(service.children[0], report.profile, name):
                await watch_timers(service, table, posting, run)
            run.pages = await table.pages()
        finally:
            posting.cancel()
            await asyncio.gather(posting, return_exceptions=True)
            await table.close()
        run.metric = await histogram(service, "alertnet_timer_lateness_seconds", TARGET_LATENESS_S)
        await asyncio.sleep(0.5)  # the last pages reach the fake
        run.handed = _lines(record)
        service.check()
    report.timers[setup.key] = run
    print_timers(report, setup, run)


# Printing


def _share(seconds: float, elapsed: float) -> float:
    return seconds / elapsed * 100 if elapsed else 0.0


def _servers(processes: int) -> str:
    return "server" if processes == 1 else f"servers ({processes} processes together)"


def print_load(title: str, load: Load, processes: int = 1) -> None:
    failures = f", {dict(load.failures)}" if load.failures else ""
    print(f"\n{title}")
    print(
        f"  {load.count} requests in {load.elapsed_s:.2f} s = {load.rate:,.0f}/s at concurrency "
        f"{CONCURRENCY}; latency ms p50 {load.pct(50):.1f}  p95 {load.pct(95):.1f}  "
        f"p99 {load.pct(99):.1f}  max {max(load.latencies, default=0) * 1000:.1f}"
    )
    print(
        f"  errors {load.errors} (statuses {dict(load.statuses)}{failures}); CPU: {_servers(processes)} "
        f"{_share(load.server_cpu_s, load.elapsed_s):.0f}% of a core "
        f"({_share(load.server_sys_s, load.elapsed_s):.0f}% in the kernel), "
        f"load generator {_share(load.client_cpu_s, load.elapsed_s):.0f}%"
    )
    if _share(load.client_cpu_s, load.elapsed_s) > 90:
        print("  the load generator used a whole core: here it, not the server, sets the pace")


def _run_broken(run: dict[str, Any]) -> bool:
    return bool(
        run["status"] != 200 or run["duplicates"] or run["missing"] or run["to_sender"] or not run["seconds"]
    )


def print_fanout(report: Report, setup: Setup) -> None:
    shared = (
        f"; posted to process 1:\n  the senders of all {setup.processes} processes share the outbox "
        "(jobs claimed with FOR UPDATE SKIP LOCKED)"
        if setup.processes > 1
        else ""
    )
    print(
        f"\nfan-out, {setup.title}: one inbound SMS to a group of {FANOUT_ALLIES} allies (a fresh group "
        f"each run),\n  until the fake Twilio holds all {FANOUT_ALLIES - 1}{shared}\n"
        f"  ALERTNET_SEND_RATE={FANOUT_SEND_RATE} (the default 100/s would take 10 s by design: Twilio's "
        f"pace),\n  ALERTNET_SEND_CONCURRENCY={FANOUT_SEND_CONCURRENCY}"
        + (" (each process)" if setup.processes > 1 else "")
        + "; fake Twilio in this process, zero latency"
    )
    for n, run in enumerate(report.fanout.get(setup.key, []), 1):
        seconds = (
            f"{run['seconds']:.3f} s ({run['expected'] / run['seconds']:,.0f} msg/s)"
            if run["seconds"]
            else "TIMEOUT"
        )
        first = f"{run['first_ms']:.0f} ms" if run["first_ms"] is not None else "never"
        print(
            f"  run {n}: {seconds}; webhook answered {run['status']} in {run['answer_ms']:.0f} ms, "
            f"first SMS at {first}; {_servers(setup.processes)} CPU {run['cpu']:.0f}% of a core\n"
            f"         received {run['received']}/{run['expected']}, duplicates {run['duplicates']}, "
            f"missing {run['missing']}, sent to the sender {run['to_sender']}"
        )
        if _run_broken(run):
            report.broken.append(f"fan-out ({setup.title}) run {n}: {run}")


def fanout_median(runs: list[dict[str, Any]]) -> float | None:
    times = [run["seconds"] for run in runs if run["seconds"]]
    return statistics.median(times) if times and len(times) == len(runs) else None


def _seconds(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50):.3f} s  p99 {percentile(values, 99):.3f} s  "
        f"max {max(values, default=float('nan')):.3f} s"
    )


def _signal_errors(load: Load) -> int:
    """POST /api/v1/signals answers 202."""
    return load.count - load.statuses[202] + sum(load.failures.values())


def print_timers(report: Report, setup: Setup, run: TimerRun) -> None:
    posted, spread = run.posted, run.spread_asked_s
    print(
        f"\ntimers, {setup.title}: {TIMERS} escalation timers due within {spread:.0f} s "
        f"({60 / spread:.1f} times a minute's 1,000)\n"
        f"  {TIMERS} groups (seeded beforehand; ack_timeout_s {run.ack_s}, one responder in the chain);\n"
        "  one signal each through POST /api/v1/signals, paced evenly over "
        f"{spread:.0f} s ({TIMERS / spread:.0f}/s"
        + (", round-robin over the processes" if setup.processes > 1 else "")
        + f"):\n  {posted.statuses[202]} accepted in {posted.elapsed_s:.1f} s, p50 {posted.pct(50):.0f} ms, "
        f"p99 {posted.pct(99):.0f} ms, errors {_signal_errors(posted)}; {dict(posted.kinds)}"
    )
    overlap = run.due_while_posting()
    lagged = (
        f";\n  {overlap} fell due while signals were still being posted (the server lagged the pace)"
        if overlap
        else ", the first after the last signal"
    )
    print(
        f"  {len(run.due)} ack timers, due over {run.spread_s():.1f} s (first to last){lagged}\n"
        f"  fired {len(run.fired)}, each in one transaction (incident escalated, page to the responder, "
        f"step timer, audit);\n  at most {run.busiest_second()} in one second\n"
        f"  lateness, fired_at - due_at (alertnet's clock):  {_seconds(run.lateness())}\n"
        f"  committed by (first poll seeing it, every {TIMER_POLL_S} s): {_seconds(run.visible())}"
    )
    metric = run.metric
    if metric.get("count"):
        print(
            f"  /metrics alertnet_timer_lateness_seconds: {metric['count']:.0f} observations, mean "
            f"{metric['sum'] / metric['count']:.3f} s, {metric.get('within', 0) / metric['count']:.1%} "
            f"within {TARGET_LATENESS_S:.0f} s"
        )
    pages, paged = run.pages
    print(
        f"  {pages} escalation pages for {paged} incidents (a timer fired twice would page twice);\n"
        f"  {run.handed} handed to the fake Twilio by the end (ALERTNET_SEND_RATE 100/s, the default)"
    )
    _timers_broken(report, setup, run)


def _timers_broken(report: Report, setup: Setup, run: TimerRun) -> None:
    what = f"timers ({setup.title})"
    if _signal_errors(run.posted) or run.posted.kinds["opened an incident"] != TIMERS:
        report.broken.append(f"{what}: signals {dict(run.posted.statuses)} {dict(run.posted.kinds)}")
    if not run.complete:
        report.broken.append(f"{what}: {len(run.fired)} of {len(run.due)} timers fired (expected {TIMERS})")
    if run.pages != (len(run.fired), len(run.fired)):
        report.broken.append(
            f"{what}: {run.pages[0]} pages for {run.pages[1]} incidents, {len(run.fired)} fired"
        )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


Cell = Callable[[Setup], str]


def _ingest_rows(report: Report, label: str) -> list[tuple[str, str, Cell]]:
    def rate(setup: Setup) -> str:
        load = report.ingest.get((setup.key, label))
        return f"{load.rate:,.0f}/s {verdict(load.rate >= TARGET_RATE)}" if load else "-"

    def p99(setup: Setup) -> str:
        load = report.ingest.get((setup.key, label))
        return f"{load.pct(99):.1f} ms {verdict(load.pct(99) < TARGET_P99_MS)}" if load else "-"

    def ratio(setup: Setup) -> str:
        load, top = report.ingest.get((setup.key, label)), report.ceiling
        return f"{load.rate / top.rate:.1%}" if load and top and top.rate else "-"

    return [
        (f"ingest, {label}: signals/s", f">= {TARGET_RATE:,.0f}/s", rate),
        (f"ingest, {label}: p99", f"< {TARGET_P99_MS:.0f} ms", p99),
        (f"ingest, {label}: ratio to ceiling", "(report)", ratio),
    ]


def _fanout_rows(report: Report) -> list[tuple[str, str, Cell]]:
    def seconds(setup: Setup) -> str:
        runs = report.fanout.get(setup.key)
        if not runs:
            return "-"
        median = fanout_median(runs)
        return "incomplete MISS" if median is None else f"{median:.3f} s {verdict(median < TARGET_FANOUT_S)}"

    def duplicates(setup: Setup) -> str:
        runs = report.fanout.get(setup.key)
        count = sum(run["duplicates"] for run in runs or [])
        return f"{count} {verdict(count == 0)}" if runs else "-"

    return [
        (
            f"fan-out: {FANOUT_ALLIES - 1} SMS to the provider (median of {FANOUT_RUNS})",
            f"< {TARGET_FANOUT_S:.1f} s",
            seconds,
        ),
        ("fan-out: duplicates", "0", duplicates),
    ]


def _timer_rows(report: Report) -> list[tuple[str, str, Cell]]:
    spread = next(iter(report.timers.values())).spread_asked_s

    def lateness(p: float | None, target: bool = False) -> Cell:
        def cell(setup: Setup) -> str:
            run = report.timers.get(setup.key)
            if run is None or not run.fired:
                return "-"
            values = run.lateness()
            value = max(values) if p is None else percentile(values, p)
            return f"{value:.3f} s" + (
                f" {verdict(value < TARGET_LATENESS_S and run.complete)}" if target else ""
            )

        return cell

    def fired(setup: Setup) -> str:
        run = report.timers.get(setup.key)
        if run is None:
            return "-"
        ok = run.complete and run.pages == (TIMERS, TIMERS)
        return f"{len(run.fired)}/{TIMERS} {verdict(ok)}"

    return [
        (f"timers: {TIMERS} due within {spread:.0f} s, fired once", f"{TIMERS}/{TIMERS}", fired),
        ("timers: lateness p50", "(report)", lateness(50)),
        ("timers: lateness p99", f"< {TARGET_LATENESS_S:.0f} s", lateness(99, target=True)),
        ("timers: lateness max", "(report)", lateness(None)),
    ]


def table(report: Report) -> list[list[str]]:
    labels = list(dict.fromkeys(label for _key, label in report.ingest))
    rows = [row for label in labels for row in _ingest_rows(report, label)]
    if report.fanout:
        rows += _fanout_rows(report)
    if report.timers:
        rows += _timer_rows(report)
    return [[name, target, *(cell(setup) for setup in report.setups)] for name, target, cell in rows]


def print_table(report: Report) -> None:
    print("\nsummary (figures, not a timed test; how they were taken is printed above)")
    top = report.ceiling
    if top is not None:
        print(
            f"  ceiling, bare aiohttp hello-world on this machine: {top.rate:,.0f} requests/s, "
            f"p50 / p99 {top.pct(50):.1f} / {top.pct(99):.1f} ms"
        )
    if report.shell is not None:
        print(
            f"  alertnet's HTTP shell alone (intake stubbed out, SQLite): {report.shell.rate:,.0f} "
            f"signals/s, p99 {report.shell.pct(99):.1f} ms: the most ingest can reach here"
        )
    for reason in report.skipped:
        print(f"  skipped: {reason}")
    body = table(report)
    if not body:
        return
    rows = [["measurement", "target", *(setup.title for setup in report.setups)], *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print(("  " + "  ".join("-" * width for width in widths)).rstrip())


def header() -> None:
    cores = os.cpu_count()
    load1, _, _ = os.getloadavg()
    busy = "  (a busy machine: the figures will be low)" if cores and load1 > cores / 4 else ""
    print(
        f"alertnet benchmark (issues 3, 4, 5): Python {platform.python_version()}, aiohttp "
        f"{aiohttp.__version__}, {cores} CPU cores, {platform.machine()}\n"
        f"  each server is a separate process on 127.0.0.1; the load comes from this process, "
        f"{CONCURRENCY} workers\n  over {CONCURRENCY} connections. With {cores} cores the load generator "
        "(the fake Twilio, and PostgreSQL) compete with\n  the server for CPU: the figures are lower bounds "
        "for a server with the machine to itself.\n"
        f"  load average at the start: {load1:.2f}{busy}"
    )


class Progress:
    """Progress lines, with the time since the start."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, text: str) -> None:
        print(f"\n[{time.perf_counter() - self.started:5.0f} s] {text}")


async def main_async(args: argparse.Namespace) -> int:
    report = Report(profile=args.profile)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    header()
    progress = Progress()
    # SIGTERM (`timeout`, a CI runner) ends the run as Ctrl-C does: every child and server is stopped.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    # A longer --timer-spread makes each of the three timer parts longer by twice the difference.
    overall_s = OVERALL_S + 6 * max(0.0, args.timer_spread - TIMER_SPREAD_S)
    tmp = Path(tempfile.mkdtemp(prefix="alertnet-bench-"))
    try:
        await asyncio.wait_for(phases(tmp, report, args, progress), overall_s)
    except TimeoutError:
        report.broken.append(f"the benchmark did not finish within {overall_s:.0f} s")
    except Exception as exc:  # report it with the figures taken so far; the children are stopped
        report.broken.append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        if args.keep:
            print(f"\nlogs and databases kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(report)
    print(
        f"\n  load average at the end: {os.getloadavg()[0]:.2f}; took "
        f"{time.perf_counter() - progress.started:.0f} s. Where the time goes: "
        "`python -m bench.breakdown`, and `python -m bench.run --profile DIR` (py-spy)."
    )
    if report.broken:
        print("\nBROKEN:\n  " + "\n  ".join(report.broken), file=sys.stderr)
        return 1
    return 0


T = TypeVar("T")


async def part(report: Report, what: str, work: Awaitable[T], limit: float) -> T | None:
    """Run one part within its bound; a failure is reported (None), and the next part still runs."""
    try:
        return await asyncio.wait_for(work, limit)
    except TimeoutError:
        report.broken.append(f"{what}: did not finish within {limit:.0f} s")
    except Exception as exc:  # the children are stopped; the other parts still run
        report.broken.append(f"{what}: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    return None


async def postgres_server(report: Report, progress: Progress) -> Postgres | None:
    bin_dir = pg_bin()
    if bin_dir is None:
        reason = "PostgreSQL: no server binaries (initdb) found; install PostgreSQL to measure it"
        report.skipped.append(reason)
        progress(f"skipped {reason}")
        return None
    progress(f"starting a throwaway PostgreSQL cluster ({bin_dir})")
    server = Postgres(bin_dir)
    await server.start()
    print(f"  PostgreSQL {await server.version()} on 127.0.0.1, fsync off, a fresh database per measurement")
    return server


async def setup_parts(
    tmp: Path,
    report: Report,
    args: argparse.Namespace,
    progress: Progress,
    setup: Setup,
    pg: Postgres | None,
    seeded: Seeded | None,
) -> None:
    """Ingest (on an empty database), fan-out and timers (on copies of the seeded one) on one setup."""
    for name in ("ingest", "fanout", "timers"):
        phase, what = f"{name}-{setup.key}", f"{name} ({setup.title})"
        if name not in args.only or (name != "ingest" and seeded is None):
            continue
        progress(f"{setup.title}: {name}")
        if name == "ingest":
            empty = None if pg is None else await pg.database(phase.replace("-", "_"))
            work = ingest(tmp, report, setup, empty, phase, "send rate 100/s (default)")
            await part(report, what, work, PART_MAX_S["ingest"])
            if args.flat_out:
                await flat_out(tmp, report, setup, pg)
            if args.shell_ceiling and setup.key == "sqlite":
                label = "intake stubbed out (bench/shell.py)"
                work = ingest(tmp, report, setup, None, phase + "-shell", label, SHELL_COMMAND)
                await part(report, f"{what}, {label}", work, PART_MAX_S["ingest"])
            continue
        assert seeded is not None
        database = await copy_database(tmp, seeded, pg, phase)
        if name == "fanout":
            await part(report, what, fanout(tmp, report, setup, database, phase), PART_MAX_S["fanout"])
        else:
            work = timers(tmp, report, setup, seeded, database, phase)
            await part(report, what, work, 2 * seeded.spread_s + 120)


async def flat_out(tmp: Path, report: Report, setup: Setup, pg: Postgres | None) -> None:
    phase, label = f"ingest-{setup.key}-flat", f"send rate {FANOUT_SEND_RATE}/s"
    empty = None if pg is None else await pg.database(phase.replace("-", "_"))
    work = ingest(tmp, report, setup, empty, phase, label, send_rate=str(FANOUT_SEND_RATE))
    await part(report, f"ingest ({setup.title}, {label})", work, PART_MAX_S["ingest"])


async def database_parts(
    tmp: Path, report: Report, args: argparse.Namespace, progress: Progress, kind: str, pg: Postgres | None
) -> None:
    """Every setup on one kind of database; the fan-out and timer groups are seeded once for them."""
    seeded = None
    wanted = {"fanout", "timers"} & set(args.only)
    if wanted:
        progress(f"{kind}: seeding the groups of the fan-out and the timers")
        database = None if pg is None else await pg.database(f"bench_seed_{kind}")
        work = seed(tmp, kind, database, wanted, args.timer_spread)
        seeded = await part(report, f"seeding ({kind})", work, PART_MAX_S["seed"])
    for setup in SETUPS:
        if setup.database == kind:
            report.setups.append(setup)
            await setup_parts(tmp, report, args, progress, setup, pg, seeded)


async def phases(tmp: Path, report: Report, args: argparse.Namespace, progress: Progress) -> None:
    if "ceiling" in args.only:
        progress("ceiling")
        await part(report, "ceiling", ceiling(tmp, report), PART_MAX_S["ceiling"])
    if not set(args.only) - {"ceiling"}:
        return
    pg: Postgres | None = None
    try:
        for kind in DATABASES:
            if kind not in args.db:
                continue
            if kind == "postgresql":
                pg = await postgres_server(report, progress)
                if pg is None:
                    continue
            await database_parts(tmp, report, args, progress, kind, pg)
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.stop)


def listed(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An option's value: names from `choices`, separated by commas (or given as several words)."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        wrong = [name for name in names if name not in choices]
        if wrong:
            raise argparse.ArgumentTypeError(f"{', '.join(wrong)}: choose from {', '.join(choices)}")
        return names

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    parser.add_argument(
        "--only",
        nargs="+",
        type=listed(PARTS),
        metavar="PART",
        help=f"the parts to run, comma-separated: {','.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--db",
        nargs="+",
        type=listed(DATABASES),
        metavar="DB",
        help="the databases to run ingest, fanout and timers on: sqlite,postgresql (default: both; "
        "postgresql measures 1 and 3 processes)",
    )
    parser.add_argument(
        "--timer-spread",
        type=float,
        default=TIMER_SPREAD_S,
        metavar="S",
        help=f"the {TIMERS} timers fall due evenly over S seconds (default {TIMER_SPREAD_S:.0f}; "
        "60 for the issue's minute, slower)",
    )
    parser.add_argument(
        "--flat-out",
        action="store_true",
        help=f"measure ingest a second time with the sender unthrottled (send rate {FANOUT_SEND_RATE}/s)",
    )
    parser.add_argument(
        "--shell-ceiling",
        action="store_true",
        help="on SQLite, measure ingest a second time with the intake stubbed out (bench/shell.py): "
        "the most alertnet's HTTP shell can take, however fast the intake",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the (first) alertnet process with py-spy while it is measured; raw stacks go to DIR",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.timer_spread <= 120:
        parser.error("--timer-spread: 1 to 120 seconds")
    args.only = [name for names in args.only for name in names] if args.only else list(PARTS)
    args.db = [name for names in args.db for name in names] if args.db else list(DATABASES)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress under `make`
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: stopping every child process and server", file=sys.stderr)
        return 130
    finally:
        Child.stop_all()
        Postgres.stop_all()


if __name__ == "__main__":
    sys.exit(main())
