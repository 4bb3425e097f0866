"""The alert loop end to end: Twilio webhook in, fan-out through the outbox, the real twilio library out."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from alertnet import logs
from alertnet.settings import Settings

from .conftest import PUBLIC_URL, Client, call, production_logging
from .fake_twilio import AUTH_TOKEN, FROM, FakeTwilio, Fault, permanent, storm
from .loop import ally, jobs_due_now, make_group, rows, settled, sms, time_passes, until

COORDINATOR = "+31620000001"
STRANGER = "+31620000099"


@pytest.fixture
def client(twilio_client: Client) -> Client:
    return twilio_client


class TestFanOut:
    async def test_reaches_every_ally_but_the_sender(self, client: Client, fake: FakeTwilio) -> None:
        """Nine allies get one SMS each: group, #1, the text and the Reageer hint; the sender gets none."""
        await make_group(client, 10)
        status, replies = await sms(client, ally(0), "Verdachte man bij de fietsenstalling")
        assert status == 200
        assert replies == ["Melding #1 is doorgestuurd naar 9 bondgenoten. In gevaar? Bel eerst 112."]
        await until(lambda: len(fake.messages) >= 9)
        await settled(client)
        assert sorted(fake.per_recipient()) == [ally(n) for n in range(1, 10)]
        assert set(fake.per_recipient().values()) == {1}
        body = fake.to(ally(1))[0]
        assert body.startswith("[Molenwijk Noord #1] Verdachte man bij de fietsenstalling\n")
        assert "geen geweld" in body
        assert all(m["From"] == FROM and m["ValidityPeriod"] == "1800" for m in fake.messages)
        assert all(m["StatusCallback"].startswith(PUBLIC_URL + "/sms/status?d=") for m in fake.messages)

    async def test_shared_transactions_are_measured(
        self, client: Client, fake: FakeTwilio, database_kind: str
    ) -> None:
        """/metrics counts the units each group commit took (SQLite; PostgreSQL commits each alone)."""
        await make_group(client, 2)
        await sms(client, ally(0), "Verdacht busje")
        text = await (await client.get("/metrics")).text()
        (count,) = re.findall(r"^alertnet_db_units_per_transaction_count (\S+)$", text, re.MULTILINE)
        # On SQLite at least the signal's (status callbacks may have shared some too).
        assert (float(count) >= 1) if database_kind == "sqlite" else float(count) == 0

    async def test_sender_number_in_no_body_and_no_log(self, client: Client, fake: FakeTwilio) -> None:
        """Neither the allies' SMS nor any log line holds the reporter's number."""
        stream = io.StringIO()
        logs.configure("debug", "json", stream=stream)
        try:
            await make_group(client, 5)
            await sms(client, ally(0), "Iemand probeert fietsen open te breken")
            await until(lambda: len(fake.messages) >= 4)
            await settled(client)
        finally:
            production_logging()
        assert len(fake.messages) == 4
        tail = ally(0)[-8:]
        assert all(tail not in re.sub(r"[\s\-./()]", "", m["Body"]) for m in fake.messages)
        assert tail not in re.sub(r"[\s\-./()]", "", stream.getvalue())
        inbound = [json.loads(line) for line in stream.getvalue().splitlines() if '"/sms/inbound"' in line]
        assert [(line["event"], line["command"], line["sender"][-5:]) for line in inbound] == [
            ("http_request", "signal", ally(0)[-4:-2] + " " + ally(0)[-2:])
        ]

    async def test_twilio_retry_is_processed_once(self, client: Client, fake: FakeTwilio) -> None:
        """The same MessageSid twice: one signal, one fan-out, and the retry gets the same reply.

        Another text comes between, so the one-minute repeat guard cannot hide a second handling."""
        await make_group(client, 4)
        first = await sms(client, ally(0), "Inbraak bij nummer 12", sid="SM" + "a" * 32)
        await sms(client, ally(0), "Hij rent naar het park", sid="SM" + "c" * 32)
        again = await sms(client, ally(0), "Inbraak bij nummer 12", sid="SM" + "a" * 32)
        assert first == again
        await settled(client)
        assert len(fake.messages) == 2 * 3
        assert len(await rows(client, "SELECT id FROM signals")) == 2

    async def test_repeat_within_a_minute_is_one_signal(self, client: Client, fake: FakeTwilio) -> None:
        """A resident who sends the same text twice (new MessageSid) is not fanned out twice."""
        await make_group(client, 3)
        await sms(client, ally(0), "Rook uit de schuur")
        _status, replies = await sms(client, ally(0), "rook uit de  schuur")
        assert replies == ["Deze melding hadden we al (#1)."]
        await settled(client)
        assert len(fake.messages) == 2

    async def test_flood_limit(self, client: Client, fake: FakeTwilio) -> None:
        """The sixth signal in ten minutes joins the incident but is not sent again."""
        await make_group(client, 3)
        for n in range(5):
            _, replies = await sms(client, ally(0), f"update {n}")
            assert "doorgestuurd" in replies[0]
        _, replies = await sms(client, ally(0), "update 5")
        assert "niet opnieuw verstuurd" in replies[0]
        await settled(client)
        assert len(fake.messages) == 5 * 2
        assert len(await rows(client, "SELECT id FROM signals")) == 6

    async def test_second_signal_joins_the_open_incident(self, client: Client, fake: FakeTwilio) -> None:
        """Another neighbour's report within the window joins #1 instead of opening #2."""
        await make_group(client, 3)
        await sms(client, ally(0), "Man bij de schuur")
        _, replies = await sms(client, ally(1), "Ik zie hem ook")
        assert replies == ["Je melding is toegevoegd aan #1 en doorgestuurd naar 2 bondgenoten."]
        assert len(await rows(client, "SELECT id FROM incidents")) == 1


class TestSignatures:
    @pytest.mark.parametrize("token", [None, "wrong-token"], ids=["unsigned", "bad-signature"])
    async def test_unsigned_or_badly_signed_is_refused(
        self, client: Client, fake: FakeTwilio, token: str | None
    ) -> None:
        """No valid X-Twilio-Signature: 403, nothing stored, nobody alerted."""
        await make_group(client, 3)
        status, _ = await sms(client, ally(0), "Inbraak", token=token)
        assert status == 403
        assert await rows(client, "SELECT * FROM inbound_messages") == []
        assert await rows(client, "SELECT * FROM signals") == []
        assert fake.requests == 0

    async def test_signature_for_the_socket_url_is_refused(self, client: Client) -> None:
        """The signature must be for the public URL Twilio called, not the address we listen on."""
        from alertnet import twiliosim

        form = twiliosim.inbound_form(ally(0), "x")
        socket_url = str(client.make_url("/sms/inbound"))
        response = await client.post(
            "/sms/inbound", data=form, headers=twiliosim.headers(socket_url, form, AUTH_TOKEN)
        )
        assert response.status == 403

    @pytest.mark.parametrize(
        ("signed_url", "status"),
        [
            (PUBLIC_URL + "/sms/inbound", 200),
            (PUBLIC_URL.replace(".org", ".org:443") + "/sms/inbound", 200),  # Twilio signs either form
            (PUBLIC_URL.replace(".org", ".org:8443") + "/sms/inbound", 403),
            (PUBLIC_URL + "/sms/inbound?x=1", 403),
        ],
        ids=["as-configured", "default-port", "other-port", "other-query"],
    )
    async def test_signature_for_the_public_url_with_or_without_its_port(
        self, client: Client, signed_url: str, status: int
    ) -> None:
        from alertnet import twiliosim

        await make_group(client, 3)
        form = twiliosim.inbound_form(ally(0), "Inbraak")
        headers = twiliosim.headers(signed_url, form, AUTH_TOKEN)
        response = await client.post("/sms/inbound", data=form, headers=headers)
        assert response.status == status
        assert len(await rows(client, "SELECT * FROM signals")) == (status == 200)

    async def test_status_callback_needs_signature(self, client: Client) -> None:
        """Status callbacks are signed too."""
        response = await client.post(
            "/sms/status?d=1", data={"MessageSid": "SM1", "MessageStatus": "delivered"}
        )
        assert response.status == 403

    @pytest.mark.parametrize(
        ("body", "content_type"),
        [
            (b"MessageSid=SM1&Body=\xff", "application/x-www-form-urlencoded"),
            (b"MessageSid=SM1", "application/x-www-form-urlencoded; charset=bogus"),
            (b"MessageSid=SM1&Body=hi", "application/x-www-form-urlencoded; charset=undefined"),
        ],
        ids=["bad-utf8", "unknown-charset", "unusable-charset"],
    )
    @pytest.mark.parametrize("path", ["/sms/inbound", "/sms/status?d=1"])
    async def test_undecodable_form(self, client: Client, body: bytes, content_type: str, path: str) -> None:
        """A form that cannot be decoded: 403 without a signature (before reading it), else 400."""
        unsigned = await client.post(path, data=body, headers={"Content-Type": content_type})
        assert unsigned.status == 403
        signed = await client.post(
            path, data=body, headers={"Content-Type": content_type, "X-Twilio-Signature": "c2lnbmF0dXJl"}
        )
        assert signed.status == 400
        assert (await signed.json())["error"]["field"] == "body"

    @pytest.mark.parametrize("path", ["/sms/inbound", "/sms/status?d=1"])
    async def test_a_body_its_encoding_does_not_decode(self, client: Client, path: str) -> None:
        """Content-Encoding: gzip on a body that is not gzip: a 400, read only once a signature is
        there to check, never a 500."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
        # Refused unread, the body is then drained and found bad: aiohttp closes that connection.
        unsigned = await client.post(path, data=b"garbage", headers={**headers, "Connection": "close"})
        assert unsigned.status == 403
        signed = await client.post(path, data=b"garbage", headers={**headers, "X-Twilio-Signature": "c2ln"})
        assert signed.status == 400
        assert "cannot be read" in (await signed.json())["error"]["message"]


class TestOddForms:
    """Signed, so only Twilio could send them; still never a 500, which Twilio would retry in vain."""

    async def _post(self, client: Client, path: str, form: dict[str, str]) -> tuple[int, str]:
        from alertnet import twiliosim

        headers = twiliosim.headers(PUBLIC_URL + path, form, AUTH_TOKEN)
        response = await client.post(path, data=form, headers=headers)
        return response.status, await response.text()

    async def test_control_characters_become_spaces(self, client: Client, fake: FakeTwilio) -> None:
        """A NUL or CR in an SMS (PostgreSQL cannot store a NUL) is a space; the signal goes out."""
        await make_group(client, 2)
        status, replies = await sms(client, ally(0), "Brand\x00 bij\r\nde flat")
        assert (status, len(replies)) == (200, 1)
        await until(lambda: len(fake.messages) == 1)
        assert fake.messages[0]["Body"].startswith("[Molenwijk Noord #1] Brand bij de flat\n")

    @pytest.mark.parametrize(
        "sid", ["SM\x00abc", "S" * 100_000, "SM 1", ""], ids=["nul", "huge", "space", "empty"]
    )
    @pytest.mark.parametrize("path", ["/sms/inbound", "/sms/status?d=1"])
    async def test_bad_message_sid_is_400(self, client: Client, sid: str, path: str) -> None:
        """A MessageSid is letters and digits, at most 64: anything else is refused, naming it."""
        form = {"MessageSid": sid, "From": ally(0), "Body": "x", "MessageStatus": "delivered"}
        status, text = await self._post(client, path, form)
        assert status == 400, text
        assert '"field": "MessageSid"' in text
        assert await rows(client, "SELECT * FROM inbound_messages") == []

    @pytest.mark.parametrize(
        ("path", "form", "field"),
        [
            ("/sms/inbound", {"From": ally(0), "Body": "x"}, "MessageSid"),
            ("/sms/inbound", {"MessageSid": "SM" + "b" * 32, "Body": "x"}, "From"),
            ("/sms/status?d=1", {"MessageStatus": "delivered"}, "MessageSid"),
            ("/sms/status?d=1", {"MessageSid": "SM1"}, "MessageStatus"),
        ],
    )
    async def test_missing_field_is_400(
        self, client: Client, path: str, form: dict[str, str], field: str
    ) -> None:
        """A field Twilio always sends is missing: 400 naming it, nothing stored."""
        status, text = await self._post(client, path, form)
        assert status == 400, text
        assert f'"field": "{field}"' in text
        assert await rows(client, "SELECT * FROM inbound_messages") == []

    # "²" and "٣" are digits to str.isdigit(); int() refuses the one and reads 3 from the other.
    @pytest.mark.parametrize("delivery", ["abc", "9" * 40, "-1", "%C2%B2", "%D9%A3"])
    async def test_unknown_delivery_id_is_ignored(self, client: Client, delivery: str) -> None:
        """A callback for a delivery id we never made is answered 204 and changes nothing."""
        form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
        assert (await self._post(client, f"/sms/status?d={delivery}", form))[0] == 204

    @pytest.mark.parametrize("code", ["30\x0003", "9" * 100, "abc"], ids=["nul", "huge", "letters"])
    async def test_bad_error_code_is_400(self, client: Client, code: str) -> None:
        """An ErrorCode is a number of at most ten digits."""
        form = {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": code}
        status, text = await self._post(client, "/sms/status?d=1", form)
        assert status == 400, text
        assert '"field": "ErrorCode"' in text


class TestOptOut:
    async def test_stop_and_start(self, client: Client, fake: FakeTwilio) -> None:
        """After STOP nothing reaches the member but the one confirmation; START undoes it."""
        await make_group(client, 3)
        _, replies = await sms(client, ally(2), "STOP")
        assert replies == ["Je krijgt geen berichten meer van het buurtalarm. Weer meedoen? Stuur START"]
        assert await sms(client, ally(2), "Hallo?") == (200, [])
        assert await sms(client, ally(2), "stop") == (200, [])
        await sms(client, ally(0), "Verdacht busje")
        await settled(client)
        assert fake.to(ally(2)) == []
        assert len(fake.messages) == 1
        _, replies = await sms(client, ally(2), "start")
        assert replies == ["Welkom terug: je krijgt weer meldingen."]
        await sms(client, ally(0), "Het busje is er weer, ander verhaal")
        await until(lambda: len(fake.to(ally(2))) == 1)

    async def test_a_bare_yes_after_stop_is_start_as_at_twilio(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """Twilio lifts its block on YES as on START (and tells the resident they are back): alertnet
        does the same, or the resident would believe they get alerts and get none. JA is no
        opt-in word at Twilio and changes nothing."""
        await make_group(client, 3)
        await sms(client, ally(2), "STOP")
        assert await sms(client, ally(2), "JA") == (200, [])
        assert await sms(client, ally(2), "YES 1") == (200, [])
        _, replies = await sms(client, ally(2), "Yes")
        assert replies == ["Welkom terug: je krijgt weer meldingen."]
        await sms(client, ally(0), "Verdacht busje")
        await until(lambda: len(fake.to(ally(2))) == 1)

    async def test_stop_silences_a_member_of_two_groups_everywhere(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """One STOP opts a number out of every group it is in."""
        await make_group(client, 3)
        await make_group(client, 3, join_code="BANNE", name="Banne")
        _, replies = await sms(client, ally(2), "STOP")
        assert replies == ["Je krijgt geen berichten meer van het buurtalarm. Weer meedoen? Stuur START"]
        assert await sms(client, ally(2), "Hallo?") == (200, [])
        await sms(client, ally(0), "Verdacht busje")
        await settled(client)
        assert fake.to(ally(2)) == []
        assert len(fake.to(ally(1))) == 2

    async def test_stop_during_a_fan_out_holds_back_what_waits(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """An alert queued before STOP but not yet sent is not sent after it."""
        refused: list[str] = []

        def once(form: dict[str, str]) -> Fault | None:
            if form["To"] == ally(2) and not refused:
                refused.append(form["To"])
                return Fault(503, 20500, retry_after_s=600)
            return None

        fake.fault = once
        await make_group(client, 3)
        await sms(client, ally(0), "Verdacht busje")
        await until(lambda: bool(refused))
        await sms(client, ally(2), "STOP")
        await jobs_due_now(client)
        await settled(client)
        assert fake.to(ally(2)) == []
        assert len(fake.to(ally(1))) == 1

    async def test_stop_outlives_the_member_row(self, client: Client, fake: FakeTwilio) -> None:
        """STOP, then the coordinator removes the member and adds the number again: still opted out,
        and in between a text gets no join instructions."""
        group = await make_group(client, 2)
        await sms(client, ally(1), "STOP")
        ((member_id,),) = await rows(client, f"SELECT id FROM members WHERE phone = '{ally(1)}'")
        await call(client, "DELETE", f"/api/v1/groups/{group['id']}/members/{member_id}", expect=204)
        assert await sms(client, ally(1), "hallo?") == (200, [])
        added = await call(
            client, "POST", f"/api/v1/groups/{group['id']}/members", {"phone": ally(1)}, expect=201
        )
        assert added["status"] == "opted_out"

    async def test_stop_outlives_the_group(self, client: Client, fake: FakeTwilio) -> None:
        """STOP, the group is deleted, the number is added to another group: still opted out."""
        group = await make_group(client, 2)
        other = await make_group(client, 1, join_code="BANNE", name="Banne")
        await sms(client, ally(1), "STOP")
        await call(client, "DELETE", f"/api/v1/groups/{group['id']}", expect=204)
        added = await call(
            client, "POST", f"/api/v1/groups/{other['id']}/members", {"phone": ally(1)}, expect=201
        )
        assert added["status"] == "opted_out"

    async def test_stop_with_more_words_is_a_signal(self, client: Client, fake: FakeTwilio) -> None:
        """Like Twilio, STOP counts only as the whole message."""
        await make_group(client, 2)
        _, replies = await sms(client, ally(0), "stop die man bij de deur")
        assert "doorgestuurd" in replies[0]

    async def test_carrier_opt_out_21610(self, client: Client, fake: FakeTwilio) -> None:
        """Error 21610 (STOP at the carrier) is not retried and marks the member opted out."""
        fake.fault = permanent({ally(1): 21610, ally(2): 21211})
        await make_group(client, 4)
        await sms(client, ally(0), "Verdacht")
        await settled(client)
        assert fake.refused == {21610: 1, 21211: 1}
        status = dict(await rows(client, "SELECT phone, status FROM members"))
        assert status[ally(1)] == "opted_out"
        assert status[ally(2)] == "active"
        failed = await rows(
            client, "SELECT recipient_phone, error_code, attempts FROM deliveries WHERE status='failed'"
        )
        assert sorted(failed) == [(ally(1), "21610", 1), (ally(2), "21211", 1)]


class TestStrangersAndJoining:
    async def test_unknown_number_gets_instructions_once_a_day(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """A stranger's text reaches nobody; they get the join instructions once, then silence."""
        await make_group(client, 3)
        _, replies = await sms(client, STRANGER, "Hallo wie is dit")
        assert "AANMELDEN" in replies[0]
        assert await sms(client, STRANGER, "Hallo??") == (200, [])
        await settled(client)
        assert fake.messages == []
        assert await rows(client, "SELECT * FROM signals") == []

    async def test_stranger_stop_is_remembered_until_start(self, client: Client, fake: FakeTwilio) -> None:
        """STOP is honoured from anyone: after it a stranger gets nothing, join instructions included."""
        await make_group(client, 2)
        _, replies = await sms(client, STRANGER, "STOP")
        assert replies == ["Je krijgt geen berichten meer van het buurtalarm. Weer meedoen? Stuur START"]
        assert await sms(client, STRANGER, "Hallo wie is dit") == (200, [])
        assert await sms(client, STRANGER, "JOIN MOLEN") == (200, [])
        assert await sms(client, STRANGER, "stop") == (200, [])
        assert await rows(client, f"SELECT id FROM members WHERE phone = '{STRANGER}'") == []
        (stored,) = await rows(client, "SELECT phone_hash FROM opt_outs")
        assert STRANGER[1:] not in stored[0]
        _, replies = await sms(client, STRANGER, "START")
        assert "AANMELDEN" in replies[0]
        _, replies = await sms(client, STRANGER, "AANMELDEN MOLEN")
        assert replies[0].startswith("Welkom bij Molenwijk Noord.")
        await settled(client)
        assert fake.messages == []

    async def test_stranger_stop_holds_when_a_coordinator_adds_them(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """A number that texted STOP and is then added by a coordinator stays opted out until START."""
        group = await make_group(client, 2)
        await sms(client, STRANGER, "STOP")
        added = await call(
            client, "POST", f"/api/v1/groups/{group['id']}/members", {"phone": STRANGER}, expect=201
        )
        assert added["status"] == "opted_out"
        await sms(client, ally(0), "Verdacht busje")
        await settled(client)
        assert fake.to(STRANGER) == []
        _, replies = await sms(client, STRANGER, "START")
        assert replies == ["Welkom terug: je krijgt weer meldingen."]
        assert await rows(client, "SELECT phone_hash FROM opt_outs") == []

    async def test_join_with_consent_and_approval(self, client: Client, fake: FakeTwilio) -> None:
        """JOIN → rules; JA → the coordinator is asked; JA n from the coordinator → welcome; then alerts."""
        await make_group(client, 2, coordinator=COORDINATOR)
        _, replies = await sms(client, STRANGER, "aanmelden molen Piet Jansen")
        assert replies[0].startswith("Welkom bij Molenwijk Noord. Afspraken:")
        _, replies = await sms(client, STRANGER, "Ja")
        assert "coordinator" in replies[0]
        await until(lambda: len(fake.to(COORDINATOR)) == 1)
        request = fake.to(COORDINATOR)[0]
        assert "Piet Jansen (+31 6 -- -- 00 99)" in request
        number = request.rsplit(" ", 1)[1]
        _, replies = await sms(client, COORDINATOR, f"JA {number}")
        assert replies == ["Piet Jansen is toegelaten tot Molenwijk Noord."]
        await until(lambda: len(fake.to(STRANGER)) == 1)
        assert fake.to(STRANGER)[0].startswith("Je bent lid van Molenwijk Noord.")
        _, replies = await sms(client, STRANGER, "JOIN MOLEN")
        assert replies == ["Je bent al lid van Molenwijk Noord."]
        (consent,) = await rows(client, f"SELECT consent_at FROM members WHERE phone = '{STRANGER}'")
        assert consent[0] is not None

    async def test_approval_is_answered_in_the_coordinators_language(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """An English-speaking coordinator approves a Dutch resident: the reply is in English."""
        group = await make_group(client, 1)
        body = {"phone": COORDINATOR, "role": "coordinator", "name": "Fatima", "language": "en"}
        await call(client, "POST", f"/api/v1/groups/{group['id']}/members", body, expect=201)
        await sms(client, STRANGER, "AANMELDEN MOLEN Piet")
        await sms(client, STRANGER, "JA")
        await until(lambda: len(fake.to(COORDINATOR)) == 1)
        number = fake.to(COORDINATOR)[0].rsplit(" ", 1)[1]
        _, replies = await sms(client, COORDINATOR, f"YES {number}")
        assert replies == ["Piet was admitted to Molenwijk Noord."]

    async def test_start_promises_only_what_holds(self, client: Client, fake: FakeTwilio) -> None:
        """START from someone still waiting for approval says so; from an active member, that
        alerts come already; after STOP, welcome back."""
        await make_group(client, 1)
        await sms(client, STRANGER, "AANMELDEN MOLEN Piet")
        _, replies = await sms(client, STRANGER, "START")
        assert replies == ["Je aanmelding wacht nog op goedkeuring. In gevaar? Bel 112."]
        _, replies = await sms(client, ally(0), "START")
        assert replies == ["Je krijgt al meldingen van het buurtalarm."]
        await sms(client, ally(0), "STOP")
        _, replies = await sms(client, ally(0), "START")
        assert replies == ["Welkom terug: je krijgt weer meldingen."]

    async def test_a_stranger_is_answered_once_a_day_whatever_it_texts(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """OK, JA, KLAAR or anything else from a number in no group: the join instructions once,
        then nothing (a stranger cannot make the service answer without end)."""
        await make_group(client, 2)
        answered = []
        for text in ("ok", "ok", "ok dank je", "ja", "ja 5", "klaar", "hallo"):
            answered += (await sms(client, STRANGER, text))[1]
        assert len(answered) == 1
        assert answered[0].startswith("Dit is het buurtalarm.")
        _, replies = await sms(client, STRANGER, "AANMELDEN MOLEN")
        assert replies[0].startswith("Welkom bij Molenwijk Noord.")

    async def test_pending_member_reaches_nobody(self, client: Client, fake: FakeTwilio) -> None:
        """Until approved, a new member's texts go nowhere."""
        await make_group(client, 2)
        await sms(client, STRANGER, "AANMELDEN MOLEN")
        _, replies = await sms(client, STRANGER, "Er is iets aan de hand")
        assert "wacht nog op goedkeuring" in replies[0]
        await settled(client)
        assert fake.messages == []

    async def test_a_member_chooses_their_language_by_sms(self, client: Client, fake: FakeTwilio) -> None:
        """LANGUAGE EN from a member added in Dutch: the reply, their alerts in every group and
        their help come in English from then on; TAAL NL takes them back; the audit log says so."""
        await make_group(client, 3)
        await make_group(client, 0, join_code="BANNE", name="Banne")
        await call(client, "POST", "/api/v1/groups/2/members", {"phone": ally(1)}, expect=201)
        _, replies = await sms(client, ally(1), "LANGUAGE EN")
        assert replies == ["Your messages now come in English. Nederlands? Stuur TAAL NL"]
        assert await rows(client, f"SELECT DISTINCT language FROM members WHERE phone = '{ally(1)}'") == [
            ("en",)
        ]
        await sms(client, ally(0), "Verdachte man bij de fietsenstalling")
        await until(lambda: len(fake.to(ally(1))) == 1 and len(fake.to(ally(2))) == 1)
        assert "Go together, be visible" in fake.to(ally(1))[0]
        assert "Ga samen kijken" in fake.to(ally(2))[0]
        _, replies = await sms(client, ally(1), "taal nl")
        assert replies == ["Je berichten komen nu in het Nederlands. English? Reply LANGUAGE EN"]
        events = (await call(client, "GET", "/api/v1/audit?limit=1000", expect=200))["items"]
        changes = [(e["subject"], e["data"]["language"]) for e in events if e["type"] == "member.updated"]
        assert len(changes) == 4
        assert [language for _, language in changes] == ["en", "en", "nl", "nl"]

    async def test_open_group_admits_on_consent(self, client: Client, fake: FakeTwilio) -> None:
        """An open group needs only the resident's YES."""
        await make_group(client, 1, join_policy="open")
        await sms(client, STRANGER, "AANMELDEN molen")
        _, replies = await sms(client, STRANGER, "ja")
        assert replies[0].startswith("Je bent lid van Molenwijk Noord.")

    async def test_a_newcomer_reads_the_language_of_their_word(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """Who texts JOIN (not AANMELDEN) in a Dutch neighbourhood is answered in English and
        gets the alerts in English: a resident who is not Dutch-first can follow from the start."""
        await make_group(client, 1, join_policy="open")
        _, replies = await sms(client, STRANGER, "HELP")
        assert replies[0].startswith("This is the neighbourhood alert. To join: text JOIN")
        _, replies = await sms(client, STRANGER, "JOIN molen Amira")
        assert replies[0].startswith("Welcome to Molenwijk Noord. Rules:")
        _, replies = await sms(client, STRANGER, "yes")
        assert replies[0].startswith("You are a member of Molenwijk Noord.")
        _, replies = await sms(client, STRANGER, "AANMELDEN molen")
        assert replies == ["You are already a member of Molenwijk Noord."]
        await sms(client, ally(0), "Verdachte man bij de fietsenstalling")
        await until(lambda: len(fake.to(STRANGER)) == 1)
        assert "Go together, be visible, never use force." in fake.to(STRANGER)[0]
        (language,) = (await rows(client, f"SELECT language FROM members WHERE phone = '{STRANGER}'"))[0]
        assert language == "en"
        _, replies = await sms(client, STRANGER, "help")
        assert replies[0].startswith("Neighbourhood alert: text what you see")

    async def test_only_a_coordinator_approves(self, client: Client, fake: FakeTwilio) -> None:
        """An ally cannot approve join requests."""
        await make_group(client, 2, coordinator=COORDINATOR)
        await sms(client, STRANGER, "JOIN MOLEN")
        await sms(client, STRANGER, "JA")
        (member_id,) = (await rows(client, f"SELECT id FROM members WHERE phone = '{STRANGER}'"))[0]
        _, replies = await sms(client, ally(0), f"JA {member_id}")
        assert "geen aanmelding" in replies[0]

    async def test_unknown_code_and_leave(self, client: Client) -> None:
        """A wrong code says so; LEAVE is idempotent."""
        await make_group(client, 2)
        _, replies = await sms(client, STRANGER, "JOIN NOPE")
        assert "NOPE" in replies[0]
        _, replies = await sms(client, ally(1), "uitschrijven molen")
        assert replies == ["Je bent uitgeschreven bij Molenwijk Noord."]
        _, replies = await sms(client, ally(1), "uitschrijven molen")
        assert "geen lid" in replies[0]


class TestProviderErrors:
    async def test_storm_of_429_and_503_loses_nothing(self, client: Client, fake: FakeTwilio) -> None:
        """With 30 % of requests failing, every ally still gets exactly one SMS."""
        fake.fault = storm(0.3)
        await make_group(client, 40)
        await sms(client, ally(0), "Brand in de container")
        await until(lambda: len(fake.messages) >= 39, timeout_s=40)
        await settled(client)
        assert fake.refused[20429] + fake.refused[20500] > 5
        assert sorted(fake.per_recipient()) == sorted(ally(n) for n in range(1, 40))
        assert set(fake.per_recipient().values()) == {1}

    @pytest.mark.parametrize("code", [21211, 21610, 21612, 21614])
    async def test_permanent_error_is_tried_once(self, client: Client, fake: FakeTwilio, code: int) -> None:
        """Invalid, unsubscribed, unreachable, not a mobile: one try, failed with the code."""
        fake.fault = permanent({ally(1): code})
        await make_group(client, 3)
        await sms(client, ally(0), "Verdacht")
        await settled(client)
        assert fake.refused == {code: 1}
        assert await rows(
            client, f"SELECT status, error_code, attempts FROM deliveries WHERE recipient_phone = '{ally(1)}'"
        ) == [("failed", str(code), 1)]
        assert len(fake.to(ally(2))) == 1

    def test_the_first_alert_does_not_wait_for_twilio_python_to_load(self) -> None:
        """twilio-python imports its Messages API on first use, some 30 ms of blocking imports (more
        on a busy machine) that would hold up the first alert after every start and stall the event
        loop meanwhile: the provider loads it when it is made. In a fresh interpreter, to see it."""
        script = """
import asyncio, sys
from alertnet.settings import Settings
from alertnet.providers.twilio import TwilioProvider

async def main():
    settings = Settings(sms_provider="twilio", twilio_account_sid="AC" + "1" * 32,
                        twilio_auth_token="x", twilio_from="+3197010000001")
    await TwilioProvider(settings).close()
    print("twilio.rest.api.v2010.account.message" in sys.modules)

asyncio.run(main())
"""
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == "True", done.stderr

    async def test_hung_twilio_times_out(self, fake: FakeTwilio) -> None:
        """A request Twilio does not answer fails after the provider's time-out (lease / 3 here), as
        a retryable failure that may have gone through."""
        from alertnet.providers import Outgoing, SendFailed
        from alertnet.providers.twilio import TwilioProvider

        from .fake_twilio import ACCOUNT_SID

        fake.latency_s = 3  # far beyond the time-out, and short for the fake's teardown
        settings = Settings(
            sms_provider="twilio",
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,  # type: ignore[arg-type]
            twilio_from=FROM,
            twilio_api_base=fake.url,
            outbox_lease_s=1.0,
        )
        provider = TwilioProvider(settings)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(SendFailed) as failed:
                await provider.send(Outgoing(ally(1), "test", None, 1800))
            assert asyncio.get_running_loop().time() - started < 2.5  # before the fake would answer
        finally:
            await provider.close()
        assert (failed.value.permanent, failed.value.uncertain) == (False, True)

    async def test_wrong_credentials_are_retried_and_logged_once_a_minute(self, fake: FakeTwilio) -> None:
        """Twilio refusing our account (20003) is no reason to drop an alert: it is retried once the
        operator fixes it. Until then an error says so, once a minute rather than per message."""
        from alertnet.providers import Outgoing, SendFailed
        from alertnet.providers.twilio import TwilioProvider

        settings = Settings(
            sms_provider="twilio",
            twilio_account_sid="AC" + "9" * 32,  # not the fake's account
            twilio_auth_token=AUTH_TOKEN,  # type: ignore[arg-type]
            twilio_from=FROM,
            twilio_api_base=fake.url,
        )
        stream = io.StringIO()
        logs.configure("info", "json", stream=stream)
        provider = TwilioProvider(settings)
        try:
            for n in range(3):
                with pytest.raises(SendFailed) as failed:
                    await provider.send(Outgoing(ally(n), "test", None, 1800))
                assert (failed.value.permanent, failed.value.code) == (False, "20003")
        finally:
            await provider.close()
            production_logging()
        alarms = [
            json.loads(line) for line in stream.getvalue().splitlines() if "twilio_account_error" in line
        ]
        assert [(alarm["level"], alarm["code"]) for alarm in alarms] == [("error", "20003")]
        assert "ALERTNET_TWILIO_AUTH_TOKEN" in alarms[0]["hint"]

    async def test_an_outage_longer_than_ten_tries_loses_nothing(
        self, client: Client, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Twilio fails fifteen times in a row (backoff scaled down): the alert still goes out,
        once, as retries last as long as the message is valid."""
        from alertnet import delivery, sender

        monkeypatch.setattr(delivery, "BASE_DELAY_S", 0.01)
        monkeypatch.setattr(delivery, "MAX_DELAY_S", 0.05)
        monkeypatch.setattr(sender, "POLL_S", 0.05)
        failures = {"left": 15}

        def outage(form: dict[str, str]) -> Fault | None:
            failures["left"] -= 1
            return Fault(503, 20500) if failures["left"] >= 0 else None

        fake.fault = outage
        await make_group(client, 2)
        await sms(client, ally(0), "Brand in de schuur")
        await until(lambda: len(fake.messages) == 1, timeout_s=20)
        await settled(client)
        assert await rows(client, "SELECT status, attempts FROM deliveries") == [("queued", 16)]

    async def test_a_message_that_waited_gets_what_is_left_of_its_validity(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """A fan-out sent 25 minutes after it was made may live 5 more minutes at the carrier, not 30."""
        from datetime import timedelta

        from alertnet import keys

        sender = client.app[keys.sender]
        real = sender.clock
        sender.clock = lambda: real() + timedelta(seconds=1500)
        await make_group(client, 2)
        await sms(client, ally(0), "Verdacht")
        await until(lambda: len(fake.messages) == 1)
        assert 295 <= int(fake.messages[0]["ValidityPeriod"]) <= 300


class TestLeases:
    @pytest.fixture
    def twilio_settings(self, twilio_settings: Settings) -> Settings:
        """One request at a time, a 3 s lease (so a 1 s request time-out)."""
        return twilio_settings.model_copy(update={"outbox_lease_s": 3.0, "send_concurrency": 1})

    async def test_a_job_that_waited_past_its_lease_is_not_sent_twice(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """Four jobs are claimed at once but sent one at a time, 0.7 s each: the last would start
        when its lease has almost run out, so it is handed back instead of sent, and sent once later."""
        fake.latency_s = 0.7
        await make_group(client, 13)
        await sms(client, ally(0), "Verdacht")
        await until(lambda: len(fake.per_recipient()) == 12, timeout_s=40)
        await settled(client)
        assert set(fake.per_recipient().values()) == {1}
        assert await rows(client, "SELECT DISTINCT attempts FROM deliveries") == [(1,)]


class TestPriority:
    async def test_a_page_does_not_wait_behind_a_booked_fan_out(
        self, twilio_settings: Settings, fake: FakeTwilio, aiohttp_client: Any
    ) -> None:
        """At 1 SMS a second, a fan-out to 20 takes 20 s; the page that follows a second later (no
        OK) goes out within a few messages, not as the 21st."""
        from alertnet.app import create_app

        from .loop import OFFICER, make_escalating_group

        client = await aiohttp_client(create_app(twilio_settings.model_copy(update={"send_rate": 1.0})))
        fake.callback_route = (PUBLIC_URL, str(client.make_url("")).rstrip("/"))
        await make_escalating_group(client, 21, steps=[(OFFICER, 600)], ack_timeout_s=600)
        await sms(client, ally(0), "Verdacht busje")
        await until(lambda: len(fake.messages) >= 1)
        await time_passes(client)
        before = len(fake.messages)
        await until(lambda: any(m["To"] == OFFICER for m in fake.messages), timeout_s=30)
        assert [m["To"] for m in fake.messages].index(OFFICER) <= before + 4


class TestShutdown:
    async def test_stop_hands_back_what_it_did_not_send(
        self, twilio_settings: Settings, fake: FakeTwilio
    ) -> None:
        """At 4 SMS a second the sender has part of a fan-out to 30 claimed and booked. Stopping
        after a few went out is quick and clean: what went out is recorded, the rest is handed
        back with its booked time, and a restart sends it at once (not after the lease)."""
        from aiohttp.test_utils import TestClient, TestServer

        from alertnet.app import create_app

        settings = twilio_settings.model_copy(update={"send_rate": 4.0})
        first = TestClient(TestServer(create_app(settings)))
        await first.start_server()
        fake.callback_route = (PUBLIC_URL, str(first.make_url("")).rstrip("/"))
        await make_group(first, 31)
        await sms(first, ally(0), "Verdacht")
        await until(lambda: len(fake.messages) >= 3)
        started = asyncio.get_running_loop().time()
        await first.close()
        assert asyncio.get_running_loop().time() - started < 15  # not the 20 s drain
        sent = len(fake.messages)
        second = TestClient(TestServer(create_app(settings)))
        await second.start_server()
        try:
            assert await rows(second, "SELECT count(*) FROM deliveries WHERE provider_sid IS NOT NULL") == [
                (sent,)
            ]
            await until(lambda: len(fake.messages) >= sent + 4, timeout_s=20)  # not the 120 s lease
            await until(lambda: len(fake.messages) == 30, timeout_s=30)
            assert set(fake.per_recipient().values()) == {1}
        finally:
            await second.close()


class AcceptThenDropTwilio(FakeTwilio):
    """Takes the first message, then loses the answer: the connection drops."""

    dropped = 0

    async def _create(self, request: web.Request) -> web.Response:
        response = await super()._create(request)
        if response.status == 201 and not self.dropped:
            self.dropped += 1
            assert request.transport is not None
            request.transport.close()
        return response


def _fake_of(kind: type[FakeTwilio]) -> Any:
    """A `fake` fixture for a class of tests: a fake Twilio that misbehaves in its own way."""

    async def fake(self: object) -> AsyncIterator[FakeTwilio]:
        twilio = kind()
        await twilio.start()
        yield twilio
        await twilio.stop()

    return pytest.fixture(fake)


class TestLostAnswer:
    fake = _fake_of(AcceptThenDropTwilio)

    async def test_a_resend_after_a_lost_answer_is_counted(self, client: Client, fake: FakeTwilio) -> None:
        """Twilio took it but the answer was lost: the retry sends it again (no idempotency key at
        Twilio), and /metrics counts it as a possible duplicate."""
        await make_group(client, 2)
        await sms(client, ally(0), "Verdacht")
        await until(lambda: len(fake.messages) == 2)
        await settled(client)
        text = await (await client.get("/metrics")).text()
        (count,) = re.findall(r"^alertnet_sms_possible_duplicates_total (\S+)$", text, re.MULTILINE)
        assert float(count) == 1


class EarlyCallbackTwilio(FakeTwilio):
    """Posts "delivered" before it answers the send: the callback beats the REST answer."""

    async def _create(self, request: web.Request) -> web.Response:
        response = await super()._create(request)
        if response.status == 201:
            message = self.messages[-1]
            assert await self.post_status(message["StatusCallback"], message["sid"], "delivered") == 204
        return response


class TestEarlyCallback:
    fake = _fake_of(EarlyCallbackTwilio)

    async def test_callback_before_the_send_is_recorded_is_not_undone(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """The sender records "queued" after Twilio already said "delivered": it stays delivered."""
        await make_group(client, 2)
        await sms(client, ally(0), "Verdacht")
        await settled(client)
        assert await rows(client, "SELECT status FROM deliveries") == [("delivered",)]


class TestStatusCallbacks:
    async def test_out_of_order_callbacks_move_forward_only(self, client: Client, fake: FakeTwilio) -> None:
        """delivered, then a late sent and a duplicate: the delivery stays delivered."""
        await make_group(client, 2)
        await sms(client, ally(0), "Verdacht")
        await until(lambda: len(fake.messages) == 1)
        await settled(client)
        message = fake.messages[0]
        url = message["StatusCallback"]
        for status in ("delivered", "sent", "delivered", "queued", "failed"):
            assert await fake.post_status(url, message["sid"], status) == 204
        assert await rows(client, "SELECT status, provider_sid FROM deliveries") == [
            ("delivered", message["sid"])
        ]

    async def test_undelivered_with_21610_opts_out(self, client: Client, fake: FakeTwilio) -> None:
        """A carrier STOP reported by callback marks the member opted out."""
        await make_group(client, 2)
        await sms(client, ally(0), "Verdacht")
        await until(lambda: len(fake.messages) == 1)
        await settled(client)
        message = fake.messages[0]
        await fake.post_status(message["StatusCallback"], message["sid"], "undelivered", "21610")
        assert await rows(client, f"SELECT status FROM members WHERE phone = '{ally(1)}'") == [("opted_out",)]


class TestWakeUps:
    @pytest.fixture
    def long_poll(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The sender polls every 30 s from its start: only a wake-up can send within the test."""
        from alertnet import sender

        monkeypatch.setattr(sender, "POLL_S", 30.0)

    async def test_another_process_commit_wakes_the_sender(
        self, long_poll: None, client: Client, fake: FakeTwilio, database_kind: str
    ) -> None:
        """On PostgreSQL, another process's committed jobs are sent at once (NOTIFY), not at the next poll."""
        if database_kind != "postgresql":
            pytest.skip("LISTEN/NOTIFY is PostgreSQL's; one SQLite process wakes its own sender")
        from datetime import UTC, datetime

        from alertnet import keys
        from alertnet.delivery import Purpose
        from alertnet.store import db, outbox

        await make_group(client, 2)
        ((member_id,),) = await rows(client, f"SELECT id FROM members WHERE phone = '{ally(1)}'")
        other = db.create_engine(client.app[keys.settings].database_url)
        try:
            async with db.write(other) as conn:
                item = outbox.NewDelivery(
                    to=ally(1), body="test", purpose=Purpose.notice, member_id=member_id
                )
                await outbox.enqueue(conn, [item], datetime.now(UTC))
        finally:
            await other.dispose()
        await until(lambda: len(fake.messages) == 1)


class TestRetention:
    async def test_removed_member_is_forgotten(self, client: Client, fake: FakeTwilio) -> None:
        """Removing a member erases their number from their signals and the messages they got."""
        group = await make_group(client, 3)
        await sms(client, ally(0), "Verdacht")
        await settled(client)
        members = await call(client, "GET", f"/api/v1/groups/{group['id']}/members", expect=200)
        for member in members["items"][:2]:
            await call(client, "DELETE", f"/api/v1/groups/{group['id']}/members/{member['id']}", expect=204)
        kept = [phone for (phone,) in await rows(client, "SELECT recipient_phone FROM deliveries")]
        assert ally(1) not in kept
        assert ally(2) in kept
        assert await rows(client, "SELECT reporter_phone FROM signals") == [(None,)]

    async def test_erased_numbers_still_count_as_people_alerted(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        """Three allies got #1 and two of them leave: the incident still says three were alerted."""
        await make_group(client, 4)
        await sms(client, ally(0), "Verdacht busje")
        await settled(client)
        for n in (1, 2):
            await sms(client, ally(n), "LEAVE MOLEN")
        incident = await call(client, "GET", "/api/v1/incidents/1", expect=200)
        assert incident["stats"]["alerted"] == 3

    async def test_numbers_erased_after_the_retention_period(self, client: Client, fake: FakeTwilio) -> None:
        """Housekeeping erases numbers on signals and sent messages older than the retention period."""
        from datetime import UTC, datetime, timedelta

        from alertnet import keys
        from alertnet.store import db, retention

        await make_group(client, 2)
        await sms(client, ally(0), "Verdacht")
        await settled(client)
        async with db.write(client.app[keys.engine]) as conn:
            erased = await retention.erase_older_than(conn, datetime.now(UTC) + timedelta(seconds=1))
        assert erased == 2
        ((member_id,),) = await rows(client, f"SELECT id FROM members WHERE phone = '{ally(1)}'")
        assert await rows(client, "SELECT recipient_phone FROM deliveries") == [(f"~m{member_id}",)]
        assert await rows(client, "SELECT reporter_phone FROM signals") == [(None,)]

    async def test_each_sweep_goes_on_from_the_last(self, client: Client, fake: FakeTwilio) -> None:
        """The hourly sweep reads only the rows after those the last one finished, and still finds
        an old row written after a newer one (ids and clocks agree only roughly), and a message
        that was still queued at the last sweep."""
        from datetime import UTC, datetime, timedelta

        import sqlalchemy as sa

        from alertnet import keys
        from alertnet.store import db, retention, tables

        engine = client.app[keys.engine]
        await make_group(client, 3)
        await sms(client, ally(0), "Verdacht busje")
        await settled(client)
        await sms(client, ally(1), "Hij staat bij nummer 4")
        await settled(client)
        boundary = datetime.now(UTC) - timedelta(days=180)
        first, second = sorted(row[0] for row in await rows(client, "SELECT id FROM signals"))
        async with db.write(engine) as conn:
            # The first signal and its messages just inside the retention period; the second, with
            # the higher ids, just outside it.
            for signal_id, at in (
                (first, boundary + timedelta(minutes=1)),
                (second, boundary - timedelta(minutes=1)),
            ):
                await conn.execute(
                    tables.signals.update().where(tables.signals.c.id == signal_id).values(received_at=at)
                )
            d = tables.deliveries
            older = (await conn.execute(sa.select(d.c.id).order_by(d.c.id))).scalars().all()
            for n, delivery_id in enumerate(older):
                at = boundary + timedelta(minutes=1) if n < 2 else boundary - timedelta(minutes=1)
                await conn.execute(d.update().where(d.c.id == delivery_id).values(created_at=at))
            # A third message, old too, still queued.
            await conn.execute(
                tables.outbox.insert().values(
                    delivery_id=older[-1], priority=9, due_at=boundary + timedelta(days=999), attempts=0
                )
            )

        async with db.write(engine) as conn:
            erased = await retention.erase_older_than(conn, boundary)
        assert erased == 0  # the sweep stops at the first row that is not old yet

        async with db.write(engine) as conn:
            erased = await retention.erase_older_than(conn, boundary + timedelta(days=2))
        # Both signals' numbers, and all messages but the queued one.
        kept = [
            phone for (phone,) in await rows(client, "SELECT recipient_phone FROM deliveries ORDER BY id")
        ]
        assert [phone.startswith("~") for phone in kept] == [True, True, True, False]
        assert await rows(client, "SELECT reporter_phone FROM signals") == [(None,), (None,)]

        async with db.write(engine) as conn:
            await conn.execute(tables.outbox.delete())
            erased = await retention.erase_older_than(conn, boundary + timedelta(days=2, hours=1))
        assert erased == 1
        kept = [phone for (phone,) in await rows(client, "SELECT recipient_phone FROM deliveries")]
        assert all(phone.startswith("~") for phone in kept)


async def backlog(client: Client) -> dict[str, float]:
    """The backlog gauges in /metrics."""
    text = await (await client.get("/metrics")).text()
    found = re.findall(
        r"^alertnet_(outbox_jobs|outbox_overdue_seconds|timers_overdue_seconds) (\S+)$", text, re.M
    )
    return {name: float(value) for name, value in found}


class TestBacklog:
    """/metrics says what an operator should be paged on: alerts that wait to go out, escalations
    that wait to fire (read from the database at each scrape, so a stuck process shows too)."""

    async def test_held_up_messages_show_how_long_they_waited(self, client: Client, fake: FakeTwilio) -> None:
        from datetime import UTC, datetime, timedelta

        from alertnet import keys
        from alertnet.store import db, tables

        assert await backlog(client) == {
            "outbox_jobs": 0.0,
            "outbox_overdue_seconds": 0.0,
            "timers_overdue_seconds": 0.0,
        }
        fake.latency_s = 2  # Twilio slow: both messages in flight
        await make_group(client, 3)
        await sms(client, ally(0), "Verdacht busje")
        await until(lambda: fake.requests == 2)
        async with db.write(client.app[keys.engine]) as conn:
            due = datetime.now(UTC) - timedelta(seconds=100)
            await conn.execute(tables.outbox.update().values(due_at=due))
        waiting = await backlog(client)
        assert waiting["outbox_jobs"] == 2
        assert 100 <= waiting["outbox_overdue_seconds"] < 160
        await settled(client)
        assert (await backlog(client))["outbox_jobs"] == 0

    async def test_a_timer_that_did_not_fire_shows_how_late_it_is(
        self, client: Client, fake: FakeTwilio
    ) -> None:
        from datetime import UTC, datetime, timedelta

        from alertnet import keys
        from alertnet.store import db, tables

        from .loop import OFFICER, make_escalating_group

        await make_escalating_group(client, 2, steps=[(OFFICER, 600)])
        await sms(client, ally(0), "Verdacht busje")
        assert (await backlog(client))["timers_overdue_seconds"] == 0
        # As if the worker that claimed it hung: due a minute ago, and still leased.
        now = datetime.now(UTC)
        async with db.write(client.app[keys.engine]) as conn:
            late = {"due_at": now - timedelta(seconds=60), "lease_until": now + timedelta(seconds=600)}
            await conn.execute(tables.timers.update().values(**late))
        assert 60 <= (await backlog(client))["timers_overdue_seconds"] < 120
