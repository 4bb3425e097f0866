"""The `alertnet` command as an operator runs it: real processes, a real database file."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .ports import free_port

ALERTNET = [sys.executable, "-m", "alertnet"]
#: The newest migration: revisions are numbered like their files.
HEAD = max(
    path.name[:4] for path in (Path(__file__).parent.parent / "alertnet/migrations/versions").glob("0*.py")
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTNET_")}
    env.update(
        {"ALERTNET_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "ALERTNET_LOG_FORMAT": "json", **extra}
    )
    return env


def run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ALERTNET, *args],
        env=_env(tmp_path, **extra),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextmanager
def running(tmp_path: Path, *command: str) -> Iterator[tuple[str, Path]]:
    """`alertnet COMMAND --port P` until it answers /healthz; its base URL and output file. Stopped after."""
    port = free_port()
    output = tmp_path / f"{command[0]}.out"
    with output.open("w") as out:
        proc = subprocess.Popen(
            [*ALERTNET, *command, "--port", str(port)],
            env=_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(base + "/healthz")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"alertnet {command[0]} did not start: {output.read_text()}") from None
                time.sleep(0.1)
        yield base, output
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`alertnet serve` on a free port, stopped after the test."""
    with running(tmp_path, "serve") as (base, _):
        yield base


@pytest.mark.slow
def test_serve_migrates_and_answers(server: str, tmp_path: Path) -> None:
    """`alertnet serve` creates its database and answers /healthz and /readyz."""
    assert get(server + "/healthz") == (200, {"status": "ok"})
    assert get(server + "/readyz")[0] == 200
    assert (tmp_path / "cli.db").exists()


@pytest.mark.slow
def test_token_from_cli_works_on_server(server: str, tmp_path: Path) -> None:
    """An admin token made on the command line opens the API of the running service."""
    made = run(tmp_path, "token", "create", "--role", "admin", "--label", "ops")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("an_")
    assert "\n" not in secret
    assert get(server + "/api/v1/neighbourhoods", secret) == (200, {"items": []})
    assert get(server + "/api/v1/neighbourhoods", "an_wrong")[0] == 401


def test_coordinator_token_needs_existing_neighbourhood(tmp_path: Path) -> None:
    """A scoped token for a neighbourhood that does not exist is refused with a clear message."""
    made = run(tmp_path, "token", "create", "--role", "coordinator", "--neighbourhood", "42")
    assert made.returncode == 2
    assert "no such neighbourhood" in made.stderr


def test_migrate_reports_revision(tmp_path: Path) -> None:
    """`alertnet migrate` brings an empty database to the newest revision, twice without harm."""
    for _ in range(2):
        done = run(tmp_path, "migrate")
        assert done.returncode == 0, done.stderr
        assert f"database at migration {HEAD}" in done.stdout


def test_audit_verify_exit_codes(tmp_path: Path) -> None:
    """`alertnet audit verify` exits 0 on an intact chain and 1, naming the seq, on a broken one."""
    for _ in range(3):
        assert run(tmp_path, "token", "create", "--role", "admin").returncode == 0
    ok = run(tmp_path, "audit", "verify")
    assert ok.returncode == 0
    intact, head = ok.stdout.splitlines()
    assert intact == "audit chain intact: 3 events"
    anchor = head.split()[1]
    assert anchor.startswith("3:")
    assert run(tmp_path, "audit", "verify", "--expect", anchor).returncode == 0
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 3")
    assert run(tmp_path, "audit", "verify").returncode == 0
    cut = run(tmp_path, "audit", "verify", "--expect", anchor)
    assert cut.returncode == 1
    assert "BROKEN at seq 3: missing" in cut.stdout
    assert "nothing up to it can be trusted" in cut.stdout
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    broken = run(tmp_path, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at seq 2" in broken.stdout
    refused = run(tmp_path, "audit", "verify", "--expect", "3")
    assert refused.returncode == 2
    assert "SEQ:HASH" in refused.stderr


def test_bad_config_stops_startup_naming_key(tmp_path: Path) -> None:
    """A bad value stops start-up with exit 2 and the variable's name, before anything runs."""
    done = run(tmp_path, "serve", ALERTNET_PORT="eighty")
    assert done.returncode == 2
    assert "ALERTNET_PORT" in done.stderr
    assert not (tmp_path / "cli.db").exists()


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["migrate"], ["token", "create"], ["audit", "verify"], ["demo"]]
)
def test_help(tmp_path: Path, command: list[str]) -> None:
    """Every command explains itself."""
    done = run(tmp_path, *command, "--help")
    assert done.returncode == 0
    assert "usage: alertnet" in done.stdout


def test_audit_verify_does_not_migrate(tmp_path: Path) -> None:
    """Verifying a database that has no schema says so and writes nothing."""
    sqlite3.connect(tmp_path / "cli.db").close()
    done = run(tmp_path, "audit", "verify")
    assert done.returncode == 2
    assert "alertnet migrate" in done.stderr
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


@pytest.mark.slow
def test_demo_as_a_newcomer_runs_it(tmp_path: Path) -> None:
    """`alertnet demo` seeds, serves, and prints commands that work as printed: the first signal
    reaches the four other allies and the coordinator, shown in the demo's terminal, masked."""
    with running(tmp_path, "demo") as (_, out):
        banner = out.read_text()  # printed before it serves
        (command,) = re.findall(
            r"^  (.+ sms .+ \"Verdachte man bij de fietsenstalling\")$", banner, re.MULTILINE
        )
        done = subprocess.run(
            shlex.split(command), env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        assert (
            done.stdout.strip()
            == "reply: Melding #1 is doorgestuurd naar 5 bondgenoten. In gevaar? Bel eerst 112."
        )
        deadline = time.monotonic() + 30
        while out.read_text().count("  SMS to ") < 5:
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        shown = out.read_text().split("Stop with Ctrl-C.", 1)[1]
        assert "  | [Molenwijk Noord #1] Verdachte man bij de fietsenstalling - Ans" in shown
        assert "SMS to +31 6 •• •• 50 02 (1 segment)" in shown
        assert not re.search(r"\+316\d{8}", shown), shown


def test_audit_verify_of_a_missing_file(tmp_path: Path) -> None:
    """A mistyped backup path is named, not created as an empty database."""
    missing = tmp_path / "backup-2026-11-24.db"
    done = run(tmp_path, "audit", "verify", ALERTNET_DATABASE_URL=f"sqlite:///{missing}")
    assert done.returncode == 2
    assert f"no database file at {missing}" in done.stderr
    assert not missing.exists()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_taken_port_is_one_clear_line(tmp_path: Path, command: str) -> None:
    """Another program on the port: exit 1 and a line that says so, not a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(tmp_path, command, "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"alertnet: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in done.stderr


def test_a_host_that_does_not_resolve_is_one_clear_line(tmp_path: Path) -> None:
    done = run(tmp_path, "serve", "--port", str(free_port()), ALERTNET_HOST="no-such-host.invalid")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("alertnet: cannot listen on no-such-host.invalid:")
    assert "Traceback" not in done.stderr
