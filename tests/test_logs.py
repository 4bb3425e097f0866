"""Logs never hold a phone number in full, wherever it hides in an event."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from alertnet import logs

from .conftest import Client, call, production_logging


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    yield stream
    production_logging()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    "value",
    [
        "+31612345678",
        "0612345678",
        "+31 6 1234 5678",
        "06-12345678",
        "0031612345678",
        "+4915112345678",
        "+31 (0)6 12345678",
        "06.12.34.56.78",
        "06/1234 5678",
    ],
)
def test_phone_masked_in_any_field(log_stream: io.StringIO, value: str) -> None:
    """Numbers in the message, in fields, and nested in dicts and lists are masked."""
    structlog.get_logger().info(f"text from {value}", phone=value, nested={"to": [value]})
    line = log_stream.getvalue()
    digits = "".join(char for char in value if char.isdigit())
    assert digits[-8:] not in line.replace(" ", "")
    assert line.count("•• ••") == 3


def test_non_phone_numbers_survive(log_stream: io.StringIO) -> None:
    """Ids, counts, timestamps and durations are left alone."""
    structlog.get_logger().info(
        "sent", count=1500, id=1732483111, duration_ms=12.5, at="2026-11-24T21:18:31Z"
    )
    (line,) = _lines(log_stream)
    assert (line["count"], line["id"], line["at"]) == (1500, 1732483111, "2026-11-24T21:18:31Z")


async def test_request_logs_carry_request_id_and_no_phone(client: Client, log_stream: io.StringIO) -> None:
    """An API call that carries a phone number logs its request id, never the number."""
    hood = await call(client, "POST", "/api/v1/neighbourhoods", {"name": "Molenwijk"}, expect=201)
    group = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hood['id']}/groups",
        {"name": "A", "join_code": "AAA"},
        expect=201,
    )
    await call(client, "POST", f"/api/v1/groups/{group['id']}/members", {"phone": "06 1234 5678"}, expect=201)
    await call(client, "POST", f"/api/v1/groups/{group['id']}/members", {"phone": "+31612345678"}, expect=409)
    text = log_stream.getvalue()
    assert "12345678" not in text.replace(" ", "")
    requests = [line for line in _lines(log_stream) if line["event"] == "http_request"]
    assert len(requests) == 4
    assert all(len(str(line["request_id"])) == 32 for line in requests)
