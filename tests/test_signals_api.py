"""POST /api/v1/signals for apps and devices, and approving SMS joins through the API."""

from __future__ import annotations

from typing import Any

import pytest

from alertnet import throttle, webhooks

from .conftest import Client, bearer, call
from .fake_twilio import FakeTwilio
from .loop import ally, make_group, rows, settled, sms, until

STRANGER = "+31620000099"


@pytest.fixture
def client(twilio_client: Client) -> Client:
    return twilio_client


async def _source_token(client: Client, group_id: int) -> dict[str, str]:
    made = await call(client, "POST", "/api/v1/tokens", {"role": "source", "group_id": group_id}, expect=201)
    return bearer(made["token"])


async def _post(
    client: Client, headers: dict[str, str], body: dict[str, Any], key: str | None = None, expect: int = 202
) -> Any:
    extra = {"Idempotency-Key": key} if key else {}
    return await call(client, "POST", "/api/v1/signals", body, headers={**headers, **extra}, expect=expect)


async def test_source_token_signal_fans_out(client: Client, fake: FakeTwilio) -> None:
    """A device's signal reaches every ally; the reporter, if a member, is left out."""
    group = await make_group(client, 5)
    token = await _source_token(client, group["id"])
    answer = await _post(
        client, token, {"group_id": group["id"], "text": "Alarm achterdeur", "reporter_phone": "0610000000"}
    )
    assert answer["recipients"] == 4
    assert answer["number"] == 1
    assert answer["new_incident"] is True
    await until(lambda: len(fake.messages) == 4)
    assert fake.to(ally(0)) == []


async def test_idempotency_key_replays_the_first_answer(client: Client, fake: FakeTwilio) -> None:
    """The same key and body: the same answer and no second fan-out; another body: 422."""
    group = await make_group(client, 3)
    token = await _source_token(client, group["id"])
    body = {"group_id": group["id"], "text": "Glasbreuk gehoord"}
    first = await _post(client, token, body, key="device-42-0001")
    again = await _post(client, token, body, key="device-42-0001")
    assert first == again
    conflict = await _post(client, token, {**body, "text": "iets anders"}, key="device-42-0001", expect=422)
    assert conflict["error"]["field"] == "Idempotency-Key"
    await settled(client)
    assert len(fake.messages) == 3
    assert len(await rows(client, "SELECT id FROM signals")) == 1


@pytest.mark.parametrize("reporter", [None, STRANGER], ids=["anonymous", "not-a-member"])
async def test_flood_limit_holds_for_a_token(client: Client, fake: FakeTwilio, reporter: str | None) -> None:
    """A device (or a leaked token) without a member behind it: the sixth signal in ten minutes
    joins the incident and reaches nobody, as for an SMS sender."""
    group = await make_group(client, 3)
    token = await _source_token(client, group["id"])
    extra = {"reporter_phone": reporter} if reporter else {}
    for n in range(5):
        answer = await _post(client, token, {"group_id": group["id"], "text": f"alarm {n}", **extra})
        assert (answer["recipients"], answer["limited"]) == (3, False)
    answer = await _post(client, token, {"group_id": group["id"], "text": "alarm 5", **extra})
    assert (answer["recipients"], answer["limited"], answer["number"]) == (0, True, 1)
    # Another token of the group has a limit of its own.
    other = await _post(
        client, await _source_token(client, group["id"]), {"group_id": group["id"], "text": "x"}
    )
    assert other["recipients"] == 3
    await settled(client)
    assert len(fake.messages) == 6 * 3
    assert len(await rows(client, "SELECT id FROM signals")) == 7


async def test_a_runaway_token_gets_429(
    client: Client, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond its budget a token is refused with 429 and Retry-After, and nothing is stored;
    another token still gets through."""
    monkeypatch.setattr(webhooks, "SIGNAL_BUDGET", throttle.Budget(burst=2, per_s=0.01))
    group = await make_group(client, 2)
    token = await _source_token(client, group["id"])
    for n in range(2):
        await _post(client, token, {"group_id": group["id"], "text": f"alarm {n}"})
    response = await client.post(
        "/api/v1/signals", json={"group_id": group["id"], "text": "alarm 2"}, headers=token
    )
    assert response.status == 429
    assert 90 <= int(response.headers["Retry-After"]) <= 100  # the budget refills at 0.01 a second
    assert (await response.json())["error"]["code"] == "too_many_requests"
    assert len(await rows(client, "SELECT id FROM signals")) == 2
    await _post(client, await _source_token(client, group["id"]), {"group_id": group["id"], "text": "x"})


async def test_repeat_from_a_token_is_one_signal(client: Client, fake: FakeTwilio) -> None:
    """The same text from the same token within a minute (a device posting twice) is one signal."""
    group = await make_group(client, 2)
    token = await _source_token(client, group["id"])
    first = await _post(client, token, {"group_id": group["id"], "text": "Glasbreuk"})
    again = await _post(client, token, {"group_id": group["id"], "text": "glasbreuk"})
    assert again["signal_id"] == first["signal_id"]
    assert again["recipients"] == 0
    await settled(client)
    assert len(fake.messages) == 2


async def test_source_token_is_scoped_to_its_group(client: Client) -> None:
    """A source token cannot post to another group, which looks exactly like a missing one."""
    group = await make_group(client, 1)
    other = await call(
        client,
        "POST",
        f"/api/v1/neighbourhoods/{group['neighbourhood_id']}/groups",
        {"name": "Zuid", "join_code": "ZUID"},
        expect=201,
    )
    token = await _source_token(client, group["id"])
    wrong = await _post(client, token, {"group_id": other["id"], "text": "x"}, expect=404)
    missing = await _post(client, token, {"group_id": 999999, "text": "x"}, expect=404)
    assert wrong["error"] == missing["error"]


async def test_urgent_flag_is_stored(client: Client) -> None:
    """urgent: true is kept on the signal (escalation reads it)."""
    group = await make_group(client, 1)
    await _post(
        client,
        await _source_token(client, group["id"]),
        {"group_id": group["id"], "text": "x", "urgent": True},
    )
    assert await rows(client, "SELECT urgent, channel FROM signals") == [(1, "api")]


async def test_api_approval_of_an_sms_join(client: Client, fake: FakeTwilio) -> None:
    """A coordinator approves a pending SMS join through the API; the resident hears it by SMS."""
    group = await make_group(client, 1)
    await sms(client, STRANGER, "AANMELDEN MOLEN Piet")
    await sms(client, STRANGER, "JA")
    members = await call(client, "GET", f"/api/v1/groups/{group['id']}/members", expect=200)
    pending = next(m for m in members["items"] if m["status"] == "pending")
    approved = await call(
        client, "POST", f"/api/v1/groups/{group['id']}/members/{pending['id']}/approve", expect=200
    )
    assert approved["status"] == "active"
    await until(lambda: len(fake.to(STRANGER)) == 1)
    assert fake.to(STRANGER)[0].startswith("Je bent lid van Molenwijk Noord.")
    again = await call(
        client, "POST", f"/api/v1/groups/{group['id']}/members/{pending['id']}/approve", expect=409
    )
    assert "active" in again["error"]["message"]


async def test_approval_before_consent_waits_for_consent(client: Client) -> None:
    """Approved but not yet agreed to the rules: the member stays pending until they say JA."""
    group = await make_group(client, 1)
    await sms(client, STRANGER, "AANMELDEN MOLEN")
    members = await call(client, "GET", f"/api/v1/groups/{group['id']}/members", expect=200)
    pending = next(m for m in members["items"] if m["status"] == "pending")
    approved = await call(
        client, "POST", f"/api/v1/groups/{group['id']}/members/{pending['id']}/approve", expect=200
    )
    assert approved["status"] == "pending"
    _, replies = await sms(client, STRANGER, "ja")
    assert replies[0].startswith("Je bent lid van Molenwijk Noord.")


async def test_idempotency_holds_across_processes(
    client: Client, fake: FakeTwilio, aiohttp_client: Any, twilio_settings: Any
) -> None:
    """The same key posted at the same moment to two service instances on one database: one signal."""
    import asyncio

    from alertnet.app import create_app

    group = await make_group(client, 3)
    token = await _source_token(client, group["id"])
    twin = await aiohttp_client(create_app(twilio_settings))
    body = {"group_id": group["id"], "text": "Twee keer tegelijk"}
    first, second = await asyncio.gather(
        _post(client, token, body, key="same-moment"), _post(twin, token, body, key="same-moment")
    )
    assert first == second
    await settled(client)
    assert len(await rows(client, "SELECT id FROM signals")) == 1
    assert len(fake.messages) == 3


async def test_an_incident_counts_each_reporter_once(client: Client) -> None:
    """Members by SMS, a number given by a device, and devices with no number (one reporter per
    channel): each counts once however often it reports."""
    group = await make_group(client, 4, escalation={"threshold_reporters": 50})
    token = await _source_token(client, group["id"])
    reports = [
        (ally(0), "Man bij de schuur"),
        (ally(0), "Hij loopt nu naar de poort"),  # the same member again
        (ally(1), "Ik zie hem ook"),
        (STRANGER, "Alarm achterdeur"),  # a device naming a number that is no member
        (STRANGER, "Alarm voordeur"),
        (None, "Sensor schuur"),  # devices without a number: one anonymous reporter
        (None, "Sensor poort"),
        (ally(1), "Weg richting park"),
    ]
    counts = []
    for phone, text in reports:
        if phone is None or phone == STRANGER:
            body = {"group_id": group["id"], "text": text} | ({"reporter_phone": phone} if phone else {})
            await _post(client, token, body)
        else:
            await sms(client, phone, text)
        incident = await call(client, "GET", "/api/v1/incidents/1", expect=200)
        counts.append(incident["reporters"])
    assert counts == [1, 1, 2, 3, 3, 4, 4, 4]
