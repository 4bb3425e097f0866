"""Crash tests on real processes: `alertnet serve` killed in the middle of a fan-out.

A fake Twilio runs as its own process and records every message it accepts in a file,
so what was sent survives the service's death. The service is killed (SIGKILL, or
stopped with SIGTERM) while it fans a signal out to hundreds of allies, then started
again on the same database. Every ally must get the signal. After SIGKILL at most
ALERTNET_SEND_CONCURRENCY messages may go out twice (the sends whose outcome was not yet
recorded), and the service's own count of possible duplicates must not understate
them. After SIGTERM the sender drains and records what is in flight: no duplicates.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .processes import (
    Admin,
    fake_twilio,
    free_port,
    run_audit_verify,
    service_env,
    sms,
    start_serve,
    stop,
    wait_for,
)

CONCURRENCY = 8
#: Messages a second the service hands to Twilio: a 499-ally fan-out takes a few seconds.
RATE = 200
#: What each message costs at the fake Twilio, so that sends are in flight when the kill lands.
LATENCY_S = 0.05
#: Short, so the dead worker's claimed jobs come back within the test.
LEASE_S = 6  # the provider time-out is a third: 2 s, room for a loaded machine


def ally(n: int) -> str:
    return f"+316100{n:05d}"


class Service:
    """`alertnet serve` on a fixed port and database, started (and restarted) as a real process."""

    def __init__(self, tmp_path: Path, twilio_url: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp_path / "a.db"
        self.env = service_env(
            f"sqlite:///{self.db}", twilio_url, self.url, rate=RATE, concurrency=CONCURRENCY, lease_s=LEASE_S
        )
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.tmp_path / f"serve-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        self.proc = start_serve(self.port, self.env, self.tmp_path, self.log)
        wait_for(self._healthy, 30, "alertnet serve to start", self.log.read_text)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"alertnet serve exited with {self.proc.returncode}:\n{self.log.read_text()}"
            )
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def signal(self, signum: int) -> int:
        """Send a signal to the running service and wait for it to exit; returns its exit code."""
        assert self.proc is not None
        os.kill(self.proc.pid, signum)
        return self.proc.wait(timeout=40)

    def kill(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} not in /metrics"
        return float(found.group(1))

    def outbox_pending(self) -> int:
        with sqlite3.connect(self.db, timeout=10) as conn:
            return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def logs(self) -> str:
        return "\n".join(
            f"--- serve-{n}.log\n" + (self.tmp_path / f"serve-{n}.log").read_text()[-4000:]
            for n in range(1, self.runs + 1)
        )


def make_group(service: Service, allies: int) -> None:
    """One neighbourhood, one group, `allies` active members: ally(0) ... ally(allies - 1)."""
    admin = Admin(service.port)
    try:
        hood = admin.post("/api/v1/neighbourhoods", {"name": "Molenwijk"})
        group = admin.post(
            f"/api/v1/neighbourhoods/{hood['id']}/groups", {"name": "Molenwijk Noord", "join_code": "MOLEN"}
        )
        for n in range(allies):
            admin.post(f"/api/v1/groups/{group['id']}/members", {"phone": ally(n)})
    finally:
        admin.close()


def signal_from(service: Service, sender: str, text: str) -> list[str]:
    """Post a signed inbound SMS as Twilio does; returns the replies."""
    return sms(service.url, sender, text)


def audit_verify(service: Service) -> subprocess.CompletedProcess[str]:
    return run_audit_verify(service.env, service.tmp_path)


@dataclass
class Outcome:
    before: int
    allies: Counter[str]
    possible_duplicates: float

    @property
    def duplicates(self) -> int:
        return sum(self.allies.values()) - len(self.allies)

    def report(self, how: str, started: float) -> None:
        print(
            f"\ncrash test ({how}): {len(self.allies)} allies reached, {self.duplicates} duplicates, "
            f"{self.before} sent before the signal, "
            f"possible-duplicates metric {self.possible_duplicates:g}, "
            f"{time.monotonic() - started:.1f} s"
        )


def fan_out_interrupted(tmp_path: Path, allies: int, signum: int) -> Outcome:
    """Fan a signal out to `allies` - 1 allies, interrupt the service with `signum`, restart, settle."""
    with ExitStack() as stack:
        twilio = stack.enter_context(fake_twilio(tmp_path, LATENCY_S))
        service = Service(tmp_path, twilio.url)
        stack.callback(service.kill)
        service.start()
        make_group(service, allies)
        expected = {ally(n) for n in range(1, allies)}

        replies = signal_from(service, ally(0), "Verdachte man bij de fietsenstalling")
        assert replies == [
            f"Melding #1 is doorgestuurd naar {allies - 1} bondgenoten. In gevaar? Bel eerst 112."
        ]
        low, high = max(1, allies // 10), allies * 4 // 5
        wait_for(
            lambda: len(twilio.messages()) >= low,
            30,
            f"{low} messages at the fake",
            service.logs,
        )
        sent = len(twilio.messages())
        assert sent < high, f"the fan-out ran too fast to interrupt ({sent} of {allies - 1} sent)"
        code = service.signal(signum)
        before = len(twilio.messages())
        if signum == signal.SIGTERM:
            assert code == 0, service.logs()
        assert before < len(expected), "the fan-out finished before the service stopped"

        service.start()
        wait_for(
            lambda: set(twilio.per_recipient()) >= expected and service.outbox_pending() == 0,
            60,
            "every ally to be reached and the outbox to drain",
            lambda: f"{len(twilio.per_recipient())} of {len(expected)} reached\n{service.logs()}",
        )
        time.sleep(0.5)  # nothing further should arrive; give a stray resend the chance to show
        reached = twilio.per_recipient()
        assert set(reached) == expected, "a message went to someone outside the group, or to the reporter"
        possible = service.metric("alertnet_sms_possible_duplicates_total")

        assert service.signal(signal.SIGTERM) == 0, service.logs()
        verdict = audit_verify(service)
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr
        assert verdict.stdout.startswith("audit chain intact")
        return Outcome(before, reached, possible)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_9_during_fan_out_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL while 499 allies are being sent to; after a restart all 499 have the signal.

    Duplicates are possible only for sends in flight at the kill: no more than the
    concurrency, and the service's possible-duplicates metric counts at least as many.
    """
    started = time.monotonic()
    outcome = fan_out_interrupted(tmp_path, 500, signal.SIGKILL)
    outcome.report("SIGKILL", started)
    assert len(outcome.allies) == 499
    assert outcome.duplicates <= CONCURRENCY
    assert outcome.possible_duplicates >= outcome.duplicates


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_during_fan_out_sends_nothing_twice(tmp_path: Path) -> None:
    """SIGTERM (a graceful stop) mid fan-out: the sender records what is in flight, so no duplicates."""
    started = time.monotonic()
    outcome = fan_out_interrupted(tmp_path, 200, signal.SIGTERM)
    outcome.report("SIGTERM", started)
    assert len(outcome.allies) == 199
    duplicated = sorted(phone for phone, count in outcome.allies.items() if count > 1)
    assert outcome.duplicates == 0, f"sent twice after a graceful stop: {duplicated}"
    assert outcome.possible_duplicates == 0


OFFICER = "+31630000001"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_escalation_timer_fires_once_after_kill_9(tmp_path: Path) -> None:
    """The ack time-out falls due while the service is dead: after the restart it fires, once."""
    with ExitStack() as stack:
        twilio = stack.enter_context(fake_twilio(tmp_path, LATENCY_S))
        service = Service(tmp_path, twilio.url)
        stack.callback(service.kill)
        service.start()
        admin = Admin(service.port)
        hood = admin.post("/api/v1/neighbourhoods", {"name": "Molenwijk"})
        officer = admin.post(
            f"/api/v1/neighbourhoods/{hood['id']}/responders", {"name": "Jansen", "phone": OFFICER}
        )
        policy = {"ack_timeout_s": 600, "chain": [{"responder_ids": [officer["id"]], "timeout_s": 600}]}
        group = admin.post(
            f"/api/v1/neighbourhoods/{hood['id']}/groups",
            {"name": "Molenwijk Noord", "join_code": "MOLEN", "escalation": policy},
        )
        for n in range(3):
            admin.post(f"/api/v1/groups/{group['id']}/members", {"phone": ally(n)})
        admin.close()

        signal_from(service, ally(0), "Verdacht busje")
        service.signal(signal.SIGKILL)
        with sqlite3.connect(service.db) as conn:  # the timer falls due while nobody runs
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            conn.execute("UPDATE timers SET due_at = ? WHERE kind = 'ack_timeout'", (now,))
        assert twilio.per_recipient()[OFFICER] == 0

        service.start()
        wait_for(lambda: twilio.per_recipient()[OFFICER] == 1, 20, "the officer to be paged", service.logs)
        # The page's outcome must be recorded first: a kill before that would resend it (an allowed,
        # counted duplicate), which is not what this test is about.
        wait_for(lambda: service.outbox_pending() == 0, 20, "the page to be recorded", service.logs)
        service.signal(signal.SIGKILL)
        service.start()  # a second restart must not fire it again, not even once a lease ran out
        time.sleep(LEASE_S + 1)
        assert twilio.per_recipient()[OFFICER] == 1
        assert service.signal(signal.SIGTERM) == 0
        with sqlite3.connect(service.db) as conn:
            fired = conn.execute(
                "SELECT count(*) FROM timers WHERE kind = 'ack_timeout' AND fired_at IS NOT NULL"
            )
            assert fired.fetchone() == (1,)
        assert audit_verify(service).returncode == 0
