"""A fake Twilio REST API on 127.0.0.1: the real twilio library talks to it over real HTTP.

It records every message it accepts, can fail on purpose (429/503 storms, permanent error
codes, latency), and can post signed status callbacks the way Twilio does. Run it alone
with `python -m tests.fake_twilio --port N --record FILE` for tests on real processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "fake-twilio-auth-token"
FROM = "+3197010000001"


@dataclass(frozen=True)
class Fault:
    status: int
    code: int
    retry_after_s: float | None = None


#: Decides, per request, whether to fail it; None lets it through.
FaultPolicy = Callable[[dict[str, str]], Fault | None]


def storm(
    fraction: float, seed: int = 7, retry_after_s: float = 0.2, max_per_recipient: int = 3
) -> FaultPolicy:
    """Fail about `fraction` of requests with 429 (with Retry-After) or 503.

    No recipient is refused more than `max_per_recipient` times, so a test's run time does
    not hang on one unlucky streak (backoff doubles per attempt, as it should).
    """
    rng = random.Random(seed)
    refused: Counter[str] = Counter()

    def decide(form: dict[str, str]) -> Fault | None:
        to = form.get("To", "")
        if rng.random() >= fraction or refused[to] >= max_per_recipient:
            return None
        refused[to] += 1
        return Fault(429, 20429, retry_after_s) if rng.random() < 0.5 else Fault(503, 20500)

    return decide


def permanent(codes: dict[str, int]) -> FaultPolicy:
    """Refuse messages to these numbers with these Twilio error codes (HTTP 400)."""
    return lambda form: Fault(400, codes[form["To"]]) if form.get("To") in codes else None


@dataclass
class FakeTwilio:
    auth_token: str = AUTH_TOKEN
    account_sid: str = ACCOUNT_SID
    fault: FaultPolicy | None = None
    latency_s: float = 0.0
    #: Post "sent" then "delivered" to each StatusCallback.
    callbacks: bool = False
    record: Path | None = None
    #: (public base, reachable base): callbacks are signed for the public URL Twilio knows and
    #: delivered to where the service really listens, never to a name outside this machine.
    callback_route: tuple[str, str] | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    url: str = ""

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}"
        self._session = aiohttp.ClientSession()
        self._tasks: set[asyncio.Task[None]] = set()
        self._file = self.record.open("a", buffering=1) if self.record else None
        return self.url

    async def hang_up(self) -> None:
        """Stop calling the service back: callbacks under way are cancelled, connections closed."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()

    async def stop(self) -> None:
        await self.hang_up()
        await self._runner.cleanup()
        if self._file:
            self._file.close()

    def to(self, phone: str) -> list[str]:
        return [m["Body"] for m in self.messages if m["To"] == phone]

    def per_recipient(self) -> Counter[str]:
        return Counter(m["To"] for m in self.messages)

    async def _create(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.match_info["sid"] != self.account_sid or request.headers.get("Authorization") is None:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        form = {k: str(v) for k, v in (await request.post()).items()}
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        fault = self.fault(form) if self.fault else None
        if fault is not None:
            self.refused[fault.code] += 1
            headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s is not None else {}
            body = {"code": fault.code, "message": "refused by the fake", "status": fault.status}
            return web.json_response(body, status=fault.status, headers=headers)
        sid = "SM" + uuid.uuid4().hex
        message = {"sid": sid, **form}
        self.messages.append(message)
        if self._file:
            self._file.write(json.dumps({"To": form.get("To"), "Body": form.get("Body"), "sid": sid}) + "\n")
        if self.callbacks and form.get("StatusCallback"):
            task = asyncio.create_task(self._call_back(form["StatusCallback"], sid, ["sent", "delivered"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(self._resource(sid, form), status=201)

    def _resource(self, sid: str, form: dict[str, str]) -> dict[str, Any]:
        body = form.get("Body", "")
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "queued",
            "num_segments": "1" if len(body) <= 160 else str(-(-len(body) // 153)),
            "direction": "outbound-api",
            "date_created": "Tue, 24 Nov 2026 21:00:00 +0000",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

    async def post_status(self, url: str, sid: str, status: str, error_code: str | None = None) -> int:
        """Post one signed status callback, as Twilio would."""
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid}
        if error_code:
            form["ErrorCode"] = error_code
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        target = url
        if self.callback_route and url.startswith(self.callback_route[0]):
            target = self.callback_route[1] + url[len(self.callback_route[0]) :]
        if not target.startswith(("http://127.0.0.1", "http://localhost")):
            raise AssertionError(f"refusing to post outside this machine: {target}")
        async with self._session.post(
            target, data=form, headers={"X-Twilio-Signature": signature}
        ) as response:
            return response.status

    async def _call_back(self, url: str, sid: str, statuses: list[str]) -> None:
        for status in statuses:
            await asyncio.sleep(0.01)
            await self.post_status(url, sid, status)


async def _serve(port: int, record: Path, fault: float, latency_s: float = 0.0) -> None:
    fake = FakeTwilio(record=record, fault=storm(fault) if fault else None, latency_s=latency_s)
    await fake.start(port)
    print(fake.url, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--storm", type=float, default=0.0)
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="SECONDS", help="delay before answering each message"
    )
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.record, args.storm, args.latency))
