"""Helpers for tests on real processes: ports, waiting, a fake Twilio process, the admin API, the CLI.

Shared by the crash tests (one `alertnet serve` on SQLite, killed and restarted) and the
multi-process tests (several `alertnet serve` on one PostgreSQL).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertnet import twiliosim

from .fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FROM
from .ports import free_port

ROOT = Path(__file__).resolve().parent.parent
FAKE_TWILIO = [sys.executable, "-m", "tests.fake_twilio"]
ADMIN_TOKEN = "crash-test-admin-token-0123456789"


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, detail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{detail()}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started, whatever state it is in."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@dataclass
class FakeTwilioProcess:
    url: str
    record: Path

    def messages(self) -> list[dict[str, str]]:
        """Every message accepted so far (complete lines only: the fake may be mid-write)."""
        text = self.record.read_text(encoding="utf-8") if self.record.exists() else ""
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def per_recipient(self) -> Counter[str]:
        return Counter(m["To"] for m in self.messages())


@contextmanager
def fake_twilio(tmp_path: Path, latency_s: float = 0.0) -> Iterator[FakeTwilioProcess]:
    """The fake Twilio as a process of its own, recording what it accepts to a file."""
    port = free_port()
    record = tmp_path / "twilio.jsonl"
    log = tmp_path / "twilio.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*FAKE_TWILIO, "--port", str(port), "--record", str(record), "--latency", str(latency_s)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: listening(port, proc), 20, "the fake Twilio", log.read_text)
        yield FakeTwilioProcess(f"http://127.0.0.1:{port}", record)
    finally:
        stop(proc)


def listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"process exited with {proc.returncode} before listening on {port}")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Admin:
    """The admin API over one kept-alive connection: hundreds of requests stay fast."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        self.conn.request("POST", path, json.dumps(body), headers)
        response = self.conn.getresponse()
        data = response.read()
        assert response.status == 201, f"POST {path} -> {response.status}: {data!r}"
        result: dict[str, Any] = json.loads(data)
        return result

    def get(self, path: str) -> dict[str, Any]:
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        response = self.conn.getresponse()
        data = response.read()
        assert response.status == 200, f"GET {path} -> {response.status}: {data!r}"
        result: dict[str, Any] = json.loads(data)
        return result

    def close(self) -> None:
        self.conn.close()


def sms(base_url: str, sender: str, text: str, sid: str | None = None) -> list[str]:
    """Post a signed inbound SMS to a service as Twilio does; returns the replies."""
    form = twiliosim.inbound_form(sender, text, to=FROM, sid=sid)
    return twiliosim.post(base_url + "/sms/inbound", form, AUTH_TOKEN, timeout_s=10)


def run_audit_verify(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`alertnet audit verify` against the database the environment names."""
    return subprocess.run(
        [sys.executable, "-m", "alertnet", "audit", "verify"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def service_env(
    database_url: str, twilio_url: str, public_url: str, *, rate: int, concurrency: int, lease_s: float
) -> dict[str, str]:
    """The environment of an `alertnet serve` that sends through the fake Twilio (and nothing inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTNET_")}
    env.update(
        ALERTNET_DATABASE_URL=database_url,
        ALERTNET_HOST="127.0.0.1",
        ALERTNET_ADMIN_TOKEN=ADMIN_TOKEN,
        ALERTNET_SMS_PROVIDER="twilio",
        ALERTNET_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        ALERTNET_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        ALERTNET_TWILIO_FROM=FROM,
        ALERTNET_TWILIO_API_BASE=twilio_url,
        ALERTNET_PUBLIC_URL=public_url,
        ALERTNET_SEND_CONCURRENCY=str(concurrency),
        ALERTNET_SEND_RATE=str(rate),
        ALERTNET_OUTBOX_LEASE_S=str(lease_s),
        ALERTNET_LOG_FORMAT="json",
    )
    return env


def start_serve(port: int, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """`alertnet serve` as a real process, its output in `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "alertnet", "serve", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
