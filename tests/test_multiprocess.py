"""Several `alertnet serve` processes on one PostgreSQL, on real processes.

Three services start at once on one fresh database (each migrates on start; an advisory
lock makes that happen once), behind them one fake Twilio process that records every
message it accepts in a file. Inbound SMS are spread over the three round-robin. Each
fan-out reaches every ally exactly once and never the sender; the escalation timer of
the incident fires once across the three; a service killed with SIGKILL in the middle of
a fan-out leaves its leased jobs to the others, who finish them once the lease runs out;
and the audit chain, written by all three, verifies.

The three services share one module-scoped deployment; the tests run in file order and
the last one kills a service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from .databases import ENV_URL, Postgres, connect, pg_bin, run_in_thread
from .processes import (
    Admin,
    FakeTwilioProcess,
    fake_twilio,
    free_port,
    run_audit_verify,
    service_env,
    sms,
    start_serve,
    stop,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        pg_bin() is None and not os.environ.get(ENV_URL),
        reason=f"no PostgreSQL here: no initdb found and {ENV_URL} is not set",
    ),
]

NODES = 3
ALLIES = 300
#: ALERTNET_SEND_RATE: low, so that a fan-out to 300 lasts long enough to kill a process in it.
RATE = 100
CONCURRENCY = 8
#: Short, so a killed process's leased jobs come back within the test.
LEASE_S = 6  # the provider time-out is a third: 2 s, room for a loaded machine
#: What each message costs at the fake Twilio, so that sends are in flight when the kill lands.
LATENCY_S = 0.05
ACK_TIMEOUT_S = 3
OFFICER = "+31630000001"
GROUP = "Molenwijk Noord"


def ally(n: int) -> str:
    return f"+316200{n:05d}"


ALL_ALLIES = frozenset(ally(n) for n in range(ALLIES))


class Database:
    """A fresh, empty database of its own on the test PostgreSQL server: the services migrate it."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"alertnet_multi_{uuid.uuid4().hex[:8]}"
        self.url = sa.make_url(server_url).set(database=self.name).render_as_string(hide_password=False)

    def create(self) -> None:
        self._execute(self.server_url, f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._execute(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def fetch(self, query: str, *args: Any) -> list[Any]:
        async def work() -> list[Any]:
            conn = await connect(self.url)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return run_in_thread(work)

    def scalar(self, query: str, *args: Any) -> Any:
        return self.fetch(query, *args)[0][0]

    def _execute(self, url: str, statement: str) -> None:
        async def work() -> None:
            conn = await connect(url)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        run_in_thread(work)


class Node:
    """One `alertnet serve` process on the shared database."""

    def __init__(self, index: int, tmp_path: Path, twilio_url: str, database_url: str) -> None:
        self.name = f"node{index + 1}"
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{self.name}.log"
        self.env = service_env(
            database_url, twilio_url, self.url, rate=RATE, concurrency=CONCURRENCY, lease_s=LEASE_S
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process; `wait_up` waits for it (so several can start at the same time)."""
        self.proc = start_serve(self.port, self.env, self.tmp_path, self.log)

    def wait_up(self) -> None:
        wait_for(lambda: self.status("/healthz") == 200, 60, f"{self.name} to start", self.tail)

    def status(self, path: str) -> int | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def metrics(self) -> defaultdict[str, float]:
        """Every sample of /metrics, keyed by name and labels as Prometheus prints them (0 if absent)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        samples: defaultdict[str, float] = defaultdict(float)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                samples[key] = float(value)
        return samples

    def kill_9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)

    def kill(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def tail(self) -> str:
        return f"--- {self.name}.log\n" + self.log.read_text(errors="replace")[-4000:]

    def errors(self) -> list[str]:
        return [
            line for line in self.log.read_text(errors="replace").splitlines() if '"level": "error"' in line
        ]


FANOUT_SENT = 'alertnet_sms_total{purpose="fanout",result="accepted"}'
POSSIBLE_DUPLICATES = "alertnet_sms_possible_duplicates_total"
TIMERS_FIRED = "alertnet_timer_lateness_seconds_count"


@dataclass
class Deployment:
    db: Database
    twilio: FakeTwilioProcess
    nodes: list[Node]
    startup_s: float
    group_id: int

    def logs(self) -> str:
        return "\n".join(node.tail() for node in self.nodes)

    def outbox(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM outbox"))

    def about(self, text: str) -> Counter[str]:
        """Messages the fake accepted whose body carries `text`, per recipient but the officer.

        The officer's page quotes every signal of the incident, so it is left out here.
        """
        return Counter(m["To"] for m in self.twilio.messages() if m["To"] != OFFICER and text in m["Body"])


def seed(node: Node) -> int:
    """Through the admin API: a neighbourhood, its officer, a group of ALLIES allies; the group's id."""
    admin = Admin(node.port)
    try:
        hood = admin.post("/api/v1/neighbourhoods", {"name": "Molenwijk"})
        officer = admin.post(
            f"/api/v1/neighbourhoods/{hood['id']}/responders", {"name": "Jansen", "phone": OFFICER}
        )
        policy = {
            # Only the ack time-out escalates here, not the number of neighbours who report.
            "threshold_reporters": 100,
            "ack_timeout_s": ACK_TIMEOUT_S,
            "chain": [{"responder_ids": [officer["id"]], "timeout_s": 60}],
        }
        group = admin.post(
            f"/api/v1/neighbourhoods/{hood['id']}/groups",
            {"name": GROUP, "join_code": "MOLEN", "escalation": policy},
        )
        for phone in sorted(ALL_ALLIES):
            admin.post(f"/api/v1/groups/{group['id']}/members", {"phone": phone})
        group_id: int = group["id"]
        return group_id
    finally:
        admin.close()


@pytest.fixture(scope="module")
def deployment(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Three services started at the same moment on one fresh PostgreSQL database, and one group."""
    tmp_path = tmp_path_factory.mktemp("multiprocess")
    db = Database(postgres.server_url)
    db.create()
    with ExitStack() as stack:
        stack.callback(db.drop)
        twilio = stack.enter_context(fake_twilio(tmp_path, LATENCY_S))
        nodes = [Node(i, tmp_path, twilio.url, db.url) for i in range(NODES)]
        for node in nodes:
            stack.callback(node.kill)  # runs before the database is dropped
        started = time.monotonic()
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_up()
        startup_s = time.monotonic() - started
        yield Deployment(db, twilio, nodes, startup_s, seed(nodes[0]))


@pytest.mark.timeout(150)
def test_three_processes_start_at_once_and_migrate_once(deployment: Deployment) -> None:
    """All three migrate on start, at the same moment: the advisory lock lets one do it, all come up."""
    print(f"\nmulti-process: {NODES} services up on one fresh database in {deployment.startup_s:.1f} s")
    assert [node.status("/readyz") for node in deployment.nodes] == [200] * NODES
    versions = deployment.db.fetch("SELECT version_num FROM alembic_version")
    assert len(versions) == 1, versions
    for node in deployment.nodes:
        assert node.errors() == [], node.tail()


def reply_sent(count: int) -> list[str]:
    return [f"Melding #1 is doorgestuurd naar {count} bondgenoten. In gevaar? Bel eerst 112."]


def reply_joined(count: int) -> list[str]:
    return [f"Je melding is toegevoegd aan #1 en doorgestuurd naar {count} bondgenoten."]


@pytest.mark.timeout(150)
def test_each_ally_gets_each_signal_once_and_the_ack_timer_fires_once(deployment: Deployment) -> None:
    """Signals spread over the three; one SMS per ally per fan-out; the ack time-out pages once."""
    d, nodes = deployment, deployment.nodes
    started = time.monotonic()
    opener = (ally(0), "Verdachte man bij de fietsenstalling aan de Molenwijk")
    sid = "SM" + uuid.uuid4().hex
    assert sms(nodes[0].url, *opener, sid=sid) == reply_sent(ALLIES - 1)
    # Twilio retries the same MessageSid, and this time reaches another process: handled once.
    assert sms(nodes[1].url, *opener, sid=sid) == reply_sent(ALLIES - 1)

    # More neighbours report at the same moment, each through another process.
    joiners = [(ally(n), f"Ik zie hem ook, hij loopt nu richting portiek {n}") for n in range(1, 4)]
    with ThreadPoolExecutor(len(joiners)) as pool:
        replies = list(pool.map(lambda i: sms(nodes[(i + 1) % NODES].url, *joiners[i]), range(len(joiners))))
    assert replies == [reply_joined(ALLIES - 1)] * len(joiners)
    # The same text again from the same neighbour, at yet another process: one signal, not two.
    assert sms(nodes[0].url, *joiners[0]) == ["Deze melding hadden we al (#1)."]

    signals = [opener, *joiners]
    expected = {(phone, text) for sender, text in signals for phone in ALL_ALLIES - {sender}}

    def seen() -> Counter[tuple[str, str]]:
        return Counter(
            (m["To"], text)
            for m in d.twilio.messages()
            if m["To"] != OFFICER  # the officer's page quotes every signal
            for _, text in signals
            if text in m["Body"]
        )

    def officer_pages() -> int:
        return sum(1 for m in d.twilio.messages() if m["To"] == OFFICER)

    wait_for(
        lambda: set(seen()) >= expected and officer_pages() >= 1 and d.outbox() == 0,
        40,
        "every fan-out to finish and the officer to be paged",
        lambda: (
            f"{len(set(seen()) & expected)} of {len(expected)} sent, "
            f"{officer_pages()} pages, {d.outbox()} in the outbox\n{d.logs()}"
        ),
    )
    done_s = time.monotonic() - started
    time.sleep(1.5)  # longer than a worker's poll: a stray second send or second firing would show
    counts = seen()
    to_allies = sum(1 for m in d.twilio.messages() if m["To"] in ALL_ALLIES)
    metrics = [node.metrics() for node in nodes]
    print(
        f"\nmulti-process fan-outs: {len(signals)} signals over {NODES} processes, "
        f"{sum(counts.values())} SMS to allies in {done_s:.1f} s "
        f"(~{sum(counts.values()) / done_s:.0f}/s with ALERTNET_SEND_RATE={RATE}); per process "
        + ", ".join(f"{n.name} {m[FANOUT_SENT]:g}" for n, m in zip(nodes, metrics, strict=True))
        + "; ack timer fired by "
        + ", ".join(f"{n.name} {m[TIMERS_FIRED]:g}" for n, m in zip(nodes, metrics, strict=True))
    )
    duplicated = {pair: n for pair, n in counts.items() if n > 1}
    assert duplicated == {}, f"sent more than once: {sorted(duplicated.items())[:10]}"
    assert set(counts) == expected, "a fan-out missed an ally or reached its own sender"
    assert to_allies == len(expected), "an ally got a message that is none of the fan-outs"
    assert officer_pages() == 1

    incidents = d.db.fetch(
        "SELECT id, state, escalation_trigger FROM incidents WHERE group_id = $1", d.group_id
    )
    assert [(row["state"], row["escalation_trigger"]) for row in incidents] == [("escalated", "no_ack")]
    incident_id = incidents[0]["id"]
    timers = d.db.fetch(
        "SELECT kind, fired_at IS NOT NULL AS fired FROM timers WHERE incident_id = $1 ORDER BY id",
        incident_id,
    )
    assert [(row["kind"], row["fired"]) for row in timers] == [("ack_timeout", True), ("step_timeout", False)]
    pages = d.db.scalar(
        "SELECT count(*) FROM audit_events WHERE type = 'escalation.paged' AND subject = $1",
        f"incident:{incident_id}",
    )
    assert pages == 1
    assert sum(m[TIMERS_FIRED] for m in metrics) == 1


@pytest.mark.timeout(150)
def test_kill_9_mid_fan_out_the_others_finish_its_jobs(deployment: Deployment) -> None:
    """SIGKILL one process while it fans out to 300: the other two send its leased jobs after the lease."""
    d = deployment
    victim, survivors = d.nodes[1], [d.nodes[0], d.nodes[2]]
    sender, text = ally(42), "Twee mannen proberen fietsen los te knippen bij de flat"
    expected = ALL_ALLIES - {sender}
    before = [node.metrics() for node in survivors]

    # It joins the incident of the test before, or opens one when this test runs alone.
    assert sms(victim.url, sender, text) in (reply_joined(len(expected)), reply_sent(len(expected)))
    wait_for(lambda: sum(d.about(text).values()) >= 30, 20, "the fan-out to start", d.logs)
    victim.kill_9()
    killed_at = time.monotonic()
    sent_before = sum(d.about(text).values())
    assert sent_before < len(expected), "the fan-out finished before the kill"

    wait_for(
        lambda: set(d.about(text)) >= expected and d.outbox() == 0,
        40,
        "the other processes to finish the fan-out",
        lambda: f"{len(d.about(text))} of {len(expected)} reached, {d.outbox()} in the outbox\n{d.logs()}",
    )
    finished_s = time.monotonic() - killed_at
    time.sleep(1.5)  # nothing further should arrive
    reached = d.about(text)
    duplicates = sum(reached.values()) - len(reached)
    after = [node.metrics() for node in survivors]
    by_survivor = {
        node.name: a[FANOUT_SENT] - b[FANOUT_SENT]
        for node, a, b in zip(survivors, after, before, strict=True)
    }
    possible = sum(
        a[POSSIBLE_DUPLICATES] - b[POSSIBLE_DUPLICATES] for a, b in zip(after, before, strict=True)
    )
    print(
        f"\nmulti-process kill -9: {sent_before} of {len(expected)} sent before the kill; "
        f"{victim.name} (killed) sent {sum(reached.values()) - sum(by_survivor.values()):g}, "
        + ", ".join(f"{name} {sent:g}" for name, sent in by_survivor.items())
        + f"; every ally reached {finished_s:.1f} s after the kill (lease {LEASE_S} s); "
        f"{duplicates} duplicates, possible-duplicates metric {possible:g}"
    )
    assert set(reached) == expected, "a message went to someone outside the group, or to the sender"
    assert duplicates <= CONCURRENCY
    assert possible >= duplicates, "the survivors' metric understates the duplicates"
    assert possible >= 1, "the killed process held no leased job: the kill did not land mid fan-out"

    for node in survivors:
        assert node.terminate() == 0, node.tail()
        assert node.errors() == [], node.tail()
    verdict = run_audit_verify(victim.env, victim.tmp_path)
    print(f"multi-process audit verify: {verdict.stdout.strip()}")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert verdict.stdout.startswith("audit chain intact")
