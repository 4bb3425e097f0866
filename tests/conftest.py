"""Fixtures: settings → create_app → aiohttp test client, on a real SQLite file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertnet import logs
from alertnet.app import create_app
from alertnet.settings import Settings

from .databases import ENV_URL, Cluster, Postgres, SqliteTemplate, pg_bin, run_in_thread, sqlite_clone
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session: ALERTNET_TEST_DATABASE_URL, or a throwaway cluster."""
    url = os.environ.get(ENV_URL)
    cluster = None
    if not url:
        bin_dir = pg_bin()
        if bin_dir is None:
            pytest.skip(f"no PostgreSQL here: no initdb found and {ENV_URL} is not set")
        cluster = Cluster(bin_dir)
        url = cluster.start()
    server = Postgres(url)
    yield server
    server.close(drop=cluster is None)
    if cluster is not None:
        cluster.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    """Every test that touches the database runs on SQLite and on PostgreSQL."""
    kind: str = request.param
    return kind


@pytest.fixture
def database_url(request: pytest.FixtureRequest, database_kind: str, tmp_path: Path) -> str:
    """A fresh database of the kind under test, migrated (a copy of a migrated template)."""
    if database_kind == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        return template.new(tmp_path)
    server: Postgres = request.getfixturevalue("postgres")
    return server.new()


T = TypeVar("T")


def from_template(
    request: pytest.FixtureRequest,
    kind: str,
    tmp_path: Path,
    cache: dict[str, tuple[str, Any]],
    build: Callable[[Client], Awaitable[T]],
) -> tuple[Settings, T]:
    """Settings on a copy of a database that `build` filled once per kind through the API.

    For modules with hundreds of cases: building through the API once and copying the
    database keeps them fast, on SQLite (a file copy) and on PostgreSQL (a template clone).
    """
    key = f"template_{request.module.__name__.rsplit('.', 1)[-1]}"
    if kind not in cache:
        url = request.getfixturevalue("database_url")

        async def fill() -> T:
            async with TestClient(TestServer(create_app(_settings(url, migrate=False)))) as client:
                return await build(client)

        cache[kind] = (url, run_in_thread(fill))
        if kind == "postgresql":
            request.getfixturevalue("postgres").snapshot(key)
    url, made = cache[kind]
    if kind == "sqlite":
        return _settings(sqlite_clone(url, tmp_path), migrate=False), made
    return _settings(request.getfixturevalue("postgres").restore(key), migrate=False), made


def _settings(database_url: str, *, migrate: bool = True) -> Settings:
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        log_format="json",
        migrate_on_start=migrate,
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Already migrated; migrating on start is covered by the tests that run `alertnet serve`.
    return _settings(database_url, migrate=False)


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


def settings_with_twilio(database_url: str, fake: FakeTwilio) -> Settings:
    """The Twilio provider pointed at the fake, sending as fast as tests need."""
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        sms_provider="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,  # type: ignore[arg-type]
        twilio_from=FROM,
        twilio_api_base=fake.url,
        public_url=PUBLIC_URL,
        send_rate=2000,
        log_format="json",
        migrate_on_start=False,
    )


@pytest.fixture
def twilio_settings(database_url: str, fake: FakeTwilio) -> Settings:
    return settings_with_twilio(database_url, fake)


@pytest.fixture
async def twilio_client(
    aiohttp_client: Callable[..., Awaitable[Client]], twilio_settings: Settings, fake: FakeTwilio
) -> AsyncIterator[Client]:
    """The service with the Twilio provider pointed at the fake; Twilio knows its public URL."""
    test_client = await aiohttp_client(create_app(twilio_settings))
    fake.callback_route = (PUBLIC_URL, str(test_client.make_url("")).rstrip("/"))
    yield test_client
    # The fake stops calling the service back before the service shuts down: a callback that
    # met its shutdown left a connection the server never closed (a ResourceWarning, once).
    await fake.hang_up()
