"""The console provider, the default: readable SMS on the terminal, and no number in full."""

from __future__ import annotations

import io
import json
from typing import Any

from alertnet import logs
from alertnet.app import create_app
from alertnet.providers import Outgoing
from alertnet.providers.console import ConsoleProvider
from alertnet.settings import Settings

from .conftest import production_logging


async def test_prints_the_sms_with_every_number_masked() -> None:
    """The terminal is a log too: the recipient and any number in the text are masked."""
    stream = io.StringIO()
    body = "ALARM #1: brand bij de flat\nMelder: +31622221000, of bel 0687654321"
    accepted = await ConsoleProvider(stream).send(
        Outgoing(to="+31612345002", body=body, status_callback=None, validity_s=1800)
    )
    printed = stream.getvalue()
    assert "SMS to +31 6 •• •• 50 02 (1 segment)" in printed
    assert "  | ALARM #1: brand bij de flat\n" in printed
    for digits in ("31612345002", "622221000", "687654321"):
        assert digits not in printed.replace(" ", "")
    assert (accepted.status, accepted.segments) == ("delivered", 1)
    assert accepted.sid.startswith("CONSOLE")


async def test_start_up_says_when_twilio_is_set_but_unused(settings: Settings, aiohttp_client: Any) -> None:
    """Twilio account settings with the console provider (an operator who forgot
    ALERTNET_SMS_PROVIDER=twilio): start-up warns that SMS are printed, not sent."""
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        await aiohttp_client(create_app(settings.model_copy(update={"twilio_account_sid": "AC" + "1" * 32})))
    finally:
        production_logging()
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert "console_provider_with_twilio_account" in events
    assert "inbound_unsigned" in events
