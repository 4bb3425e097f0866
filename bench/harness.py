"""What every measurement needs: child processes on 127.0.0.1, a load generator, percentiles, CPU time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp

from alertnet import twiliosim

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONCURRENCY = 32
_TICKS = os.sysconf("SC_CLK_TCK")


class Child:
    """One child process; its output goes to a log file (never a pipe that could fill up)."""

    #: Every child started, so a last `stop_all` leaves none behind whatever happened.
    started: ClassVar[list[Child]] = []

    def __init__(self, name: str, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        # Only the settings we pass: an ALERTNET_* variable of the caller's shell must not leak in.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ALERTNET_")}
        full_env = {**inherited, **(env or {})}
        self.proc = subprocess.Popen(
            list(args), cwd=ROOT, env=full_env, stdout=self._out, stderr=subprocess.STDOUT
        )
        Child.started.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu(self) -> tuple[float, float]:
        """User and system CPU seconds of the process (all its threads) so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0, 0.0
        return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS

    def stop(self) -> None:
        """SIGTERM (alertnet shuts down cleanly), then SIGKILL after 5 s; by pid, only our own child."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()

    @classmethod
    def stop_all(cls) -> None:
        for child in reversed(cls.started):
            child.stop()
        cls.started.clear()


async def wait_http(child: Child, url: str, timeout_s: float = 20.0) -> None:
    """Wait until GET `url` answers 200."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            child.check()
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{child.name} not ready at {url} after {timeout_s:.0f} s:\n{child.tail()}"
                )
            await asyncio.sleep(0.05)


async def wait_port(child: Child, port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        child.check()
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not listening on {port}:\n{child.tail()}") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


@dataclass(frozen=True)
class Post:
    """One prepared inbound SMS post: body encoded and signature computed before the clock runs."""

    body: bytes
    headers: dict[str, str]


def signed_post(public_url: str, form: dict[str, str], auth_token: str | None) -> Post:
    headers = twiliosim.headers(public_url + "/sms/inbound", form, auth_token)
    return Post(urllib.parse.urlencode(form).encode(), headers)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank), or NaN without values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


class Measured(Protocol):
    """What `drive` charges the CPU time to: one child process, or several together."""

    def cpu(self) -> tuple[float, float]: ...


@dataclass
class Load:
    """The outcome of driving a list of posts at a fixed concurrency."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    server_cpu_s: float = 0.0
    #: Of which in the kernel (system calls, thread wake-ups).
    server_sys_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + sum(self.failures.values())

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s else 0.0

    def pct(self, p: float) -> float:
        """The p-th percentile latency in ms (nearest rank)."""
        return percentile(self.latencies, p) * 1000


async def drive(
    url: str | Sequence[str],
    posts: Sequence[Post],
    *,
    child: Measured,
    max_s: float,
    classify: Callable[[str], str] | None = None,
    concurrency: int = CONCURRENCY,
) -> Load:
    """POST every prepared body to `url` from `concurrency` workers over at most `concurrency`
    connections; stop early after `max_s`. Latency is measured per request, send to body read.

    Several URLs (processes sharing one database) take the posts round-robin."""
    urls = [url] if isinstance(url, str) else list(url)
    load = Load()
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    next_index = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(posts) and time.perf_counter() < stop_at:
                post = posts[next_index]
                target = urls[next_index % len(urls)]
                next_index += 1
                await _one(session, target, post, load, classify)

        (user0, sys0), client0 = child.cpu(), time.process_time()
        started = time.perf_counter()
        stop_at = started + max_s
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        load.elapsed_s = time.perf_counter() - started
        user1, sys1 = child.cpu()
        load.server_cpu_s = user1 + sys1 - user0 - sys0
        load.server_sys_s = sys1 - sys0
        load.client_cpu_s = time.process_time() - client0
    return load


async def _one(
    session: aiohttp.ClientSession, url: str, post: Post, load: Load, classify: Callable[[str], str] | None
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=post.body, headers=post.headers) as response:
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        load.failures[type(exc).__name__] += 1
        return
    load.latencies.append(time.perf_counter() - started)
    load.statuses[status] += 1
    if classify is not None and status == 200:
        load.kinds[classify(text)] += 1


class Admin:
    """The admin API of a running alertnet, with the bootstrap token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=16),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.base + path, json=body) as response:
            answer: dict[str, Any] = await response.json()
            if response.status != 201:
                raise RuntimeError(f"POST {path} answered {response.status}: {answer}")
            return answer

    async def group(self, hood_id: int, name: str, join_code: str, phones: Sequence[str]) -> int:
        """A group with these members, added 16 at a time."""
        group = await self.post(
            f"/api/v1/neighbourhoods/{hood_id}/groups", {"name": name, "join_code": join_code}
        )
        queue = list(phones)

        async def worker() -> None:
            while queue:
                phone = queue.pop()
                await self.post(f"/api/v1/groups/{group['id']}/members", {"phone": phone})

        await asyncio.gather(*(worker() for _ in range(16)))
        return int(group["id"])

    async def close(self) -> None:
        await self.session.close()
