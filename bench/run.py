"""`make bench`: the figures of issue 3, on this machine, in one run.

1. ceiling: a bare aiohttp hello-world answering POST with fixed TwiML (bench/hello.py);
2. ingest: signed inbound SMS posts to `alertnet serve` (SQLite, Twilio provider against the
   fake Twilio at zero latency), 32 at a time;
3. fan-out: one signal to a group of 1,000 allies, until the fake Twilio holds all 999 messages.

Every server is a real process on 127.0.0.1 with a free port; the load comes from this process.
It prints figures and a target table. Exit status: 0 when the figures were measured (even when a
target is missed: it is a report), 1 when something broke (errors, lost or duplicate messages).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from alertnet import incidents, twiliosim
from alertnet.settings import Settings
from tests import fake_twilio

from .harness import (
    CONCURRENCY,
    PYTHON,
    Admin,
    Child,
    Load,
    Post,
    drive,
    free_port,
    signed_post,
    wait_http,
    wait_port,
)
from .profile import sampling

#: The server under test (an experiment may point this at a wrapper that patches alertnet first).
ALERTNET_COMMAND = [PYTHON, "-m", "alertnet", "serve"]
ADMIN_TOKEN = "bench-admin-token-" + "x" * 24
#: The token alertnet checks inbound signatures with (and authenticates to the fake with).
AUTH_TOKEN = "bench-twilio-auth-token"
#: Whole run, all phases: the benchmark never hangs.
OVERALL_S = 170

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

TARGET_RATE = 1_500.0
TARGET_P99_MS = 50.0
TARGET_FANOUT_S = 1.0

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
class Report:
    ceiling: Load | None = None
    ingest: dict[str, Load] = field(default_factory=dict)
    fanout: list[dict[str, Any]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    #: Where py-spy profiles go (--profile), or None.
    profile: Path | None = None


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
        for child in reversed(self.children):
            await asyncio.to_thread(child.stop)

    async def fake_twilio(self) -> tuple[str, Path]:
        port = free_port()
        record = self.dir / "sent.jsonl"
        child = self.start(
            "fake-twilio", [PYTHON, "-m", "tests.fake_twilio", "--port", str(port), "--record", str(record)]
        )
        await wait_port(child, port)
        return f"http://127.0.0.1:{port}", record

    async def alertnet(self, fake_url: str, **extra: str) -> tuple[Child, str]:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "ALERTNET_DATABASE_URL": f"sqlite:///{self.dir / 'bench.db'}",
            "ALERTNET_HOST": "127.0.0.1",
            "ALERTNET_PORT": str(port),
            "ALERTNET_PUBLIC_URL": base,
            "ALERTNET_ADMIN_TOKEN": ADMIN_TOKEN,
            "ALERTNET_SMS_PROVIDER": "twilio",
            "ALERTNET_TWILIO_ACCOUNT_SID": fake_twilio.ACCOUNT_SID,
            "ALERTNET_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "ALERTNET_TWILIO_FROM": fake_twilio.FROM,
            "ALERTNET_TWILIO_API_BASE": fake_url,
            "ALERTNET_LOG_FORMAT": "json",
            **{f"ALERTNET_{key.upper()}": value for key, value in extra.items()},
        }
        child = self.start("alertnet", ALERTNET_COMMAND, env)
        await wait_http(child, base + "/readyz")
        return child, base


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


async def ingest(tmp: Path, report: Report, name: str, label: str, **extra: str) -> None:
    async with Phase(tmp, name) as phase:
        fake_url, record = await phase.fake_twilio()
        child, base = await phase.alertnet(fake_url, **extra)
        url = base + "/sms/inbound"
        await signatures_checked(url)
        admin = Admin(base, ADMIN_TOKEN)
        try:
            hood = await admin.post("/api/v1/neighbourhoods", {"name": "Bench"})
            senders = Senders(admin, hood["id"])
            await senders.grow(INGEST_GROUPS_FIRST)
            warm_posts = ingest_posts(base, senders.take(INGEST_WARMUP), 0)
            warm = await drive(url, warm_posts, child=child, max_s=INGEST_WARMUP_MAX_S, classify=classify)
            # Enough allies for the measured run at the warm-up's pace, with room to spare.
            need = min(INGEST_MEASURED, int(warm.rate * INGEST_MAX_S * 1.5) + 1)
            while senders.capacity < need and len(senders.groups) < INGEST_GROUPS_MAX:
                missing = -(-(need - senders.capacity) // (FLOOD_LIMIT * INGEST_GROUP_SIZE))
                await senders.grow(min(missing, INGEST_GROUPS_MAX - len(senders.groups)))
            posts = ingest_posts(base, senders.take(need), len(warm_posts))
        finally:
            await admin.close()
        with sampling(child, report.profile, name):
            load = await drive(url, posts, child=child, max_s=INGEST_MAX_S, classify=classify)
        handed = _lines(record)
        child.check()
    report.ingest[label] = load
    print_load(f"ingest: alertnet /sms/inbound, {label}", load)
    print(
        f"  seeded {len(senders.groups)} groups x {INGEST_GROUP_SIZE} allies through the admin API "
        f"in {senders.seeded_s:.1f} s; warm-up of {warm.count} posts ({warm.rate:,.0f}/s) excluded;\n"
        f"  replies: {dict(load.kinds)}; each signal is stored, joins its group's incident, is audited\n"
        f"  and enqueues {INGEST_GROUP_SIZE - 1} SMS, which the sender worker sends concurrently in the "
        f"same process:\n  {handed} of {(warm.count + load.count) * (INGEST_GROUP_SIZE - 1)} handed to the "
        "fake Twilio by the end of the run"
    )
    if load.errors or warm.errors:
        report.broken.append(f"ingest ({label}): {load.errors + warm.errors} errors {dict(load.statuses)}")
    if any(kind != "fanned out" for kind in load.kinds + warm.kinds):
        report.broken.append(f"ingest ({label}): not every signal was fanned out: {dict(load.kinds)}")


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


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


async def fanout(tmp: Path, report: Report) -> None:
    async with Phase(tmp, "fanout") as phase:
        arrivals = Arrivals()
        fake = fake_twilio.FakeTwilio(record=phase.dir / "sent.jsonl", messages=arrivals)
        fake_url = await fake.start()
        try:
            child, base = await phase.alertnet(
                fake_url, send_rate=str(FANOUT_SEND_RATE), send_concurrency=str(FANOUT_SEND_CONCURRENCY)
            )
            admin = Admin(base, ADMIN_TOKEN)
            try:
                hood = await admin.post("/api/v1/neighbourhoods", {"name": "Fan-out"})
                async with aiohttp.ClientSession() as session:
                    for run in range(FANOUT_RUNS):
                        phones = [fanout_phone(run, n) for n in range(FANOUT_ALLIES)]
                        await admin.group(hood["id"], f"Fan-out {run}", f"FAN{run}", phones)
                        await asyncio.sleep(0.2)  # let the seeding's writes settle
                        with sampling(child, report.profile if run == 0 else None, "fanout"):
                            report.fanout.append(
                                await fanout_once(session, child, base, arrivals, phones, run)
                            )
                        child.check()
            finally:
                await admin.close()
        finally:
            await fake.stop()
    print_fanout(report)


async def fanout_once(
    session: aiohttp.ClientSession, child: Child, base: str, arrivals: Arrivals, phones: list[str], run: int
) -> dict[str, Any]:
    expected = len(phones) - 1
    first = len(arrivals)
    arrivals.reached.clear()
    arrivals.target = first + expected
    post = signed_post(base, twiliosim.inbound_form(phones[0], signal_text(10_000 + run)), AUTH_TOKEN)
    cpu0 = sum(child.cpu())
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
    cpu = (sum(child.cpu()) - cpu0) / ((done or time.perf_counter()) - started) * 100
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


# Printing


def _share(seconds: float, elapsed: float) -> float:
    return seconds / elapsed * 100 if elapsed else 0.0


def print_load(title: str, load: Load) -> None:
    failures = f", {dict(load.failures)}" if load.failures else ""
    print(f"\n{title}")
    print(
        f"  {load.count} requests in {load.elapsed_s:.2f} s = {load.rate:,.0f}/s at concurrency "
        f"{CONCURRENCY}; latency ms p50 {load.pct(50):.1f}  p95 {load.pct(95):.1f}  "
        f"p99 {load.pct(99):.1f}  max {max(load.latencies, default=0) * 1000:.1f}"
    )
    print(
        f"  errors {load.errors} (statuses {dict(load.statuses)}{failures}); CPU: server "
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


def print_fanout(report: Report) -> None:
    print(
        f"\nfan-out: one inbound SMS to a group of {FANOUT_ALLIES} allies (a fresh group each run), until "
        f"the fake Twilio holds all {FANOUT_ALLIES - 1}\n  ALERTNET_SEND_RATE={FANOUT_SEND_RATE} "
        f"(the default 100/s would take 10 s by design: Twilio's pace), ALERTNET_SEND_CONCURRENCY="
        f"{FANOUT_SEND_CONCURRENCY};\n  fake Twilio in this process, zero latency"
    )
    for n, run in enumerate(report.fanout, 1):
        seconds = (
            f"{run['seconds']:.3f} s ({run['expected'] / run['seconds']:,.0f} msg/s)"
            if run["seconds"]
            else "TIMEOUT"
        )
        first = f"{run['first_ms']:.0f} ms" if run["first_ms"] is not None else "never"
        print(
            f"  run {n}: {seconds}; webhook answered {run['status']} in {run['answer_ms']:.0f} ms, "
            f"first SMS at {first}; server CPU {run['cpu']:.0f}% of a core\n"
            f"         received {run['received']}/{run['expected']}, duplicates {run['duplicates']}, "
            f"missing {run['missing']}, sent to the sender {run['to_sender']}"
        )
        if _run_broken(run):
            report.broken.append(f"fan-out run {n}: {run}")


def fanout_median(report: Report) -> float | None:
    times = [run["seconds"] for run in report.fanout if run["seconds"]]
    return statistics.median(times) if times and len(times) == len(report.fanout) else None


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


Row = tuple[str, str, str, str]


def _ingest_rows(label: str, load: Load, top: Load | None) -> list[Row]:
    rows = [
        (
            f"ingest, {label}: signals/s",
            f">= {TARGET_RATE:,.0f}/s",
            f"{load.rate:,.0f}/s",
            verdict(load.rate >= TARGET_RATE),
        ),
        (
            f"ingest, {label}: p99",
            f"< {TARGET_P99_MS:.0f} ms",
            f"{load.pct(99):.1f} ms",
            verdict(load.pct(99) < TARGET_P99_MS),
        ),
    ]
    if top is not None and top.rate:
        rows.append((f"ingest, {label}: ratio to ceiling", "(report)", f"{load.rate / top.rate:.1%}", ""))
    return rows


def _fanout_rows(report: Report) -> list[Row]:
    median = fanout_median(report)
    measured = f"{median:.3f} s (median of {len(report.fanout)})" if median is not None else "incomplete"
    duplicates = sum(run["duplicates"] for run in report.fanout)
    return [
        (
            f"fan-out: {FANOUT_ALLIES - 1} SMS handed to the provider",
            f"< {TARGET_FANOUT_S:.1f} s",
            measured,
            verdict(median is not None and median < TARGET_FANOUT_S),
        ),
        ("fan-out: duplicates", "0", str(duplicates), verdict(duplicates == 0)),
    ]


def table(report: Report) -> list[Row]:
    rows: list[Row] = []
    top = report.ceiling
    if top is not None:
        rows.append(("ceiling: hello-world requests/s", "(reference)", f"{top.rate:,.0f}/s", ""))
        rows.append(
            ("ceiling: hello-world p50 / p99", "(reference)", f"{top.pct(50):.1f} / {top.pct(99):.1f} ms", "")
        )
    for label, load in report.ingest.items():
        rows.extend(_ingest_rows(label, load, top))
    if report.fanout:
        rows.extend(_fanout_rows(report))
    return rows


def print_table(report: Report) -> None:
    rows = [("measurement", "target", "measured", ""), *table(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print("\nsummary (figures, not a timed test; how they were taken is printed above)")
    for n, row in enumerate(rows):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print(("  " + "  ".join("-" * width for width in widths)).rstrip())


def header() -> None:
    cores = os.cpu_count()
    load1, _, _ = os.getloadavg()
    busy = "  (a busy machine: the figures will be low)" if cores and load1 > cores / 4 else ""
    print(
        f"alertnet benchmark (issue 3): Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"{cores} CPU cores, {platform.machine()}\n"
        f"  each server is a separate process on 127.0.0.1; the load comes from this process, "
        f"{CONCURRENCY} workers\n  over {CONCURRENCY} connections. With {cores} cores the load generator "
        "(and the fake Twilio) compete with the\n  server for CPU: the figures are lower bounds for a "
        "server with the machine to itself.\n"
        f"  load average at the start: {load1:.2f}{busy}"
    )


async def main_async(args: argparse.Namespace) -> int:
    report = Report(profile=args.profile)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    header()
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="alertnet-bench-"))
    try:
        await asyncio.wait_for(phases(tmp, report, args), OVERALL_S)
    except TimeoutError:
        report.broken.append(f"the benchmark did not finish within {OVERALL_S} s")
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
        f"\n  took {time.perf_counter() - started:.0f} s. Where the time goes: `python -m bench.breakdown`, "
        "and `python -m bench.run --profile DIR` (py-spy)."
    )
    if report.broken:
        print("\nBROKEN:\n  " + "\n  ".join(report.broken), file=sys.stderr)
        return 1
    return 0


async def phases(tmp: Path, report: Report, args: argparse.Namespace) -> None:
    if "ceiling" in args.only:
        await ceiling(tmp, report)
    if "ingest" in args.only:
        await ingest(tmp, report, "ingest", "send rate 100/s (default)")
        if args.flat_out:
            await ingest(
                tmp,
                report,
                "ingest-flat-out",
                f"send rate {FANOUT_SEND_RATE}/s",
                send_rate=str(FANOUT_SEND_RATE),
            )
    if "fanout" in args.only:
        await fanout(tmp, report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    parser.add_argument(
        "--only", nargs="+", choices=["ceiling", "ingest", "fanout"], default=["ceiling", "ingest", "fanout"]
    )
    parser.add_argument(
        "--flat-out",
        action="store_true",
        help=f"measure ingest a second time with the sender unthrottled (send rate {FANOUT_SEND_RATE}/s)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the alertnet process with py-spy while it is measured; raw stacks go to DIR",
    )
    try:
        return asyncio.run(main_async(parser.parse_args(argv)))
    finally:
        Child.stop_all()


if __name__ == "__main__":
    sys.exit(main())
