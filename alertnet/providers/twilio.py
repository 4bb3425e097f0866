"""Twilio through twilio-python's async client, over a base URL we choose."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import structlog
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from .. import gsm
from ..settings import Settings
from . import Accepted, Outgoing, SendFailed

TWILIO_API = "https://api.twilio.com"
#: Error codes that no retry can fix (the number, or the recipient's own STOP).
PERMANENT_CODES = frozenset({"21211", "21217", "21408", "21610", "21612", "21614", "21617", "30005", "30006"})
#: Our account or sender is wrong: every message fails until an operator fixes it, so keep them.
ACCOUNT_CODES = frozenset({"20003", "20005", "21606", "21659"})
#: How often an account error is logged again while it lasts (each message meets it).
ACCOUNT_ALARM_EVERY_S = 60.0
log = structlog.get_logger("alertnet.providers.twilio")


def _retry_after(headers: Any) -> float | None:
    value = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _code(text: str, status: int) -> str:
    try:
        return str(json.loads(text).get("code") or status)
    except (ValueError, AttributeError):
        return str(status)


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends to the configured base URL; 429 and 5xx become retryable failures with Retry-After."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        # Our own session: one pool for all sends, with a total time-out per request.
        super().__init__(pool_connections=False)
        self.session = aiohttp.ClientSession()
        self.base_url = base_url
        self.timeout_s = timeout_s

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        # aiohttp 3.14 deprecates auth=; twilio-python still passes it. Send the header ourselves.
        auth = kwargs.pop("auth", None)
        if auth is not None:
            headers = dict(kwargs.get("headers") or {})
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
            kwargs["headers"] = headers
        try:
            # Around the whole call: twilio-python passes timeout=None to aiohttp, which means none.
            async with asyncio.timeout(self.timeout_s):
                response: Response = await super().request(method, url, **kwargs)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendFailed(
                f"no answer from Twilio: {type(exc).__name__}", permanent=False, uncertain=True
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise SendFailed(
                f"Twilio answered {response.status_code}",
                permanent=False,
                code=_code(response.text, response.status_code),
                retry_after_s=_retry_after(response.headers),
            )
        return response


class TwilioProvider:
    calls_back = True

    def __init__(self, settings: Settings) -> None:
        assert settings.twilio_account_sid
        assert settings.twilio_auth_token
        # A send never outlives its outbox lease: otherwise a slow request could be sent again by
        # whoever claims the job after the lease, while this one is still waiting for Twilio.
        self.http = _HttpClient(settings.twilio_api_base, timeout_s=min(15.0, settings.outbox_lease_s / 3))
        client = Client(
            settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(), http_client=self.http
        )
        # Loaded now: twilio-python imports its Messages API on first use, which would block the
        # event loop for tens of milliseconds as the first alert after a start goes out.
        self.messages = client.messages
        self.sender: dict[str, str] = (
            {"messaging_service_sid": settings.twilio_messaging_service_sid}
            if settings.twilio_messaging_service_sid
            else {"from_": settings.twilio_from or ""}
        )
        self.alarmed: dict[str, float] = {}

    async def send(self, message: Outgoing) -> Accepted:
        extra: dict[str, Any] = (
            {"status_callback": message.status_callback} if message.status_callback else {}
        )
        try:
            created = await self.messages.create_async(
                to=message.to,
                body=message.body,
                validity_period=message.validity_s,
                smart_encoded=True,
                **self.sender,
                **extra,
            )
        except TwilioRestException as exc:
            code = str(exc.code or exc.status)
            if code in ACCOUNT_CODES:
                self._alarm(code, exc.msg)
            permanent = code in PERMANENT_CODES or (400 <= exc.status < 500 and code not in ACCOUNT_CODES)
            raise SendFailed(f"Twilio refused: {code}", permanent=permanent, code=code) from exc
        segments = int(created.num_segments) if created.num_segments else gsm.segments(message.body)
        return Accepted(sid=str(created.sid), status=str(created.status or "queued"), segments=segments)

    def _alarm(self, code: str, message: str) -> None:
        """Nothing goes out until an operator fixes the account or sender: say so loudly, but once a
        minute, not once per message (the messages wait and are retried meanwhile)."""
        now = time.monotonic()
        if now - self.alarmed.get(code, -ACCOUNT_ALARM_EVERY_S) >= ACCOUNT_ALARM_EVERY_S:
            self.alarmed[code] = now
            log.error(
                "twilio_account_error",
                code=code,
                twilio_message=message,
                hint="messages wait and are retried; check ALERTNET_TWILIO_ACCOUNT_SID, "
                "ALERTNET_TWILIO_AUTH_TOKEN and the sender (ALERTNET_TWILIO_FROM or the Messaging Service)",
            )

    async def close(self) -> None:
        await self.http.close()
