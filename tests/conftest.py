"""Fixtures: settings → create_app → aiohttp test client, on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from alertnet import logs
from alertnet.app import create_app
from alertnet.settings import Settings

from .fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

Client = TestClient[Any, Any]
#: The URL Twilio calls: not the test server's socket, as behind a reverse proxy.
PUBLIC_URL = "https://alertnet.example.org"


def production_logging() -> None:
    """The pipeline `alertnet serve` uses (masking included), writing to pytest's captured stderr."""
    logs.configure("debug", "json", stream=logs.CurrentStderr())  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="session")
def _logging() -> None:
    production_logging()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'alertnet.db'}",
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        log_format="json",
    )


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings) -> Client:
    return await aiohttp_client(create_app(settings))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    expect: int | None = None,
) -> Any:
    """Make a request; check the status when `expect` is given; return the JSON (or None)."""
    response = await client.request(
        method, path, json=body, headers=headers if headers is not None else ADMIN
    )
    text = await response.text()
    if expect is not None:
        assert response.status == expect, f"{method} {path} -> {response.status}: {text}"
    if response.content_type == "application/json":
        return await response.json()
    return None


@dataclass
class Hood:
    """One neighbourhood with a responder, a group, a member and tokens of each kind."""

    id: int
    responder_id: int
    group_id: int
    member_id: int
    coordinator: dict[str, str]
    source: dict[str, str]


async def make_hood(client: Client, name: str, join_code: str, phone_suffix: str) -> Hood:
    hood = await call(client, "POST", "/api/v1/neighbourhoods", {"name": name}, expect=201)
    responder = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hood['id']}/responders",
        {"name": "Buurtregisseur", "phone": f"+316123459{phone_suffix}"},
        expect=201,
    )
    group = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{hood['id']}/groups",
        {
            "name": f"{name} Noord",
            "join_code": join_code,
            "escalation": {"chain": [{"responder_ids": [responder["id"]]}]},
        },
        expect=201,
    )
    member = await call(
        client,
        "POST",
        f"/api/v1/groups/{group['id']}/members",
        {"phone": f"+316123450{phone_suffix}", "name": "Ans"},
        expect=201,
    )
    coordinator = await call(
        client, "POST", "/api/v1/tokens", {"role": "coordinator", "neighbourhood_id": hood["id"]}, expect=201
    )
    source = await call(
        client, "POST", "/api/v1/tokens", {"role": "source", "group_id": group["id"]}, expect=201
    )
    return Hood(
        id=hood["id"],
        responder_id=responder["id"],
        group_id=group["id"],
        member_id=member["id"],
        coordinator=bearer(coordinator["token"]),
        source=bearer(source["token"]),
    )


@pytest.fixture
async def hoods(client: Client) -> tuple[Hood, Hood]:
    """Two neighbourhoods: coordinators of one must never see the other."""
    return (
        await make_hood(client, "Molenwijk", "MOLEN", "01"),
        await make_hood(client, "Banne", "BANNE", "02"),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    """A fake Twilio REST API on 127.0.0.1, driven by the real twilio library."""
    twilio = FakeTwilio()
    await twilio.start()
    yield twilio
    await twilio.stop()


@pytest.fixture
def twilio_settings(tmp_path: Path, fake: FakeTwilio) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'alertnet.db'}",
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        sms_provider="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,  # type: ignore[arg-type]
        twilio_from=FROM,
        twilio_api_base=fake.url,
        public_url=PUBLIC_URL,
        send_rate=2000,
        log_format="json",
    )


@pytest.fixture
async def twilio_client(
    aiohttp_client: Callable[..., Awaitable[Client]], twilio_settings: Settings, fake: FakeTwilio
) -> Client:
    """The service with the Twilio provider pointed at the fake; Twilio knows its public URL."""
    test_client = await aiohttp_client(create_app(twilio_settings))
    fake.callback_route = (PUBLIC_URL, str(test_client.make_url("")).rstrip("/"))
    return test_client
