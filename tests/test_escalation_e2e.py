"""Escalation end to end with real timers at second scale: the buurtregisseur called in, then a backup."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from .conftest import Client, call
from .fake_twilio import FakeTwilio, Fault, permanent
from .loop import (
    BACKUP,
    OFFICER,
    ally,
    jobs_due_now,
    make_escalating_group,
    make_group,
    rows,
    settled,
    sms,
    time_passes,
    timers_fired,
    until,
)

COORDINATOR = "+31620000001"


@pytest.fixture
def client(twilio_client: Client) -> Client:
    return twilio_client


def paged(fake: FakeTwilio, phone: str) -> list[str]:
    return [body for body in fake.to(phone) if body.startswith("ALARM")]


async def test_threshold_pages_the_officer(client: Client, fake: FakeTwilio) -> None:
    """The second distinct reporter (threshold 2) calls the buurtregisseur with every signal so far."""
    await make_escalating_group(client, 4, steps=[(OFFICER, 60)], threshold_reporters=2)
    await sms(client, ally(0), "Man bij de schuur")
    await sms(client, ally(0), "Hij loopt naar nummer 5")
    assert paged(fake, OFFICER) == []
    await sms(client, ally(1), "Ik zie hem ook")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    page = paged(fake, OFFICER)[0]
    assert page.startswith(
        "ALARM Molenwijk Noord #1: 2 melder(s). Man bij de schuur / Hij loopt naar nummer 5 / Ik"
    )
    assert f"Melder: {ally(0)}" in page
    (state, trigger) = (await rows(client, "SELECT state, escalation_trigger FROM incidents"))[0]
    assert (state, trigger) == ("escalated", "threshold")


async def test_urgent_word_pages_at_once(client: Client, fake: FakeTwilio) -> None:
    """'brand' in the first signal escalates without waiting."""
    await make_escalating_group(client, 2, steps=[(OFFICER, 60)])
    await sms(client, ally(0), "Er is BRAND in de container!")
    await until(lambda: len(paged(fake, OFFICER)) == 1)


async def test_no_ok_within_ack_timeout_escalates(client: Client, fake: FakeTwilio) -> None:
    """Nobody answered OK within ack_timeout_s: the officer is paged by the timer."""
    await make_escalating_group(client, 2, steps=[(OFFICER, 60)], ack_timeout_s=1)
    await sms(client, ally(0), "Verdacht busje")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    assert (await rows(client, "SELECT escalation_trigger FROM incidents"))[0] == ("no_ack",)


async def test_ally_ok_prevents_the_ack_escalation(client: Client, fake: FakeTwilio) -> None:
    """An ally's OK acknowledges; the others hear a neighbour is going; the ack timer does nothing."""
    await make_escalating_group(client, 3, steps=[(OFFICER, 60)], ack_timeout_s=60)
    await sms(client, ally(0), "Verdacht busje")
    _, replies = await sms(client, ally(1), "OK")
    assert replies[0].startswith("Dank je!")
    await until(lambda: any("Een buur gaat kijken" in b for b in fake.to(ally(2))))
    await until(lambda: any("Een buur gaat kijken" in b for b in fake.to(ally(0))))  # the reporter too
    assert not any("Een buur gaat kijken" in b for b in fake.to(ally(1)))
    await time_passes(client)
    await timers_fired(client)
    await settled(client)
    assert paged(fake, OFFICER) == []
    assert (await rows(client, "SELECT state FROM incidents"))[0] == ("acknowledged",)


async def test_step_two_after_step_one_times_out(client: Client, fake: FakeTwilio) -> None:
    """The officer does not answer within 1 s: the backup is paged."""
    await make_escalating_group(client, 2, steps=[(OFFICER, 1), (BACKUP, 60)])
    await sms(client, ally(0), "Inbraak bij nummer 7")
    await until(lambda: len(paged(fake, BACKUP)) == 1)
    # In that order (asserting "not yet" in between would race the 1 s timer on a busy machine).
    pages = [m["To"] for m in fake.messages if m["Body"].startswith("ALARM")]
    assert pages == [OFFICER, BACKUP]


async def test_responder_ok_stops_the_chain(client: Client, fake: FakeTwilio) -> None:
    """The officer's OK: no backup is paged, and the allies hear the officer is on it."""
    await make_escalating_group(client, 2, steps=[(OFFICER, 60), (BACKUP, 60)])
    await sms(client, ally(0), "Inbraak bij nummer 7")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    _, replies = await sms(client, OFFICER, "OK 1")
    assert replies[0].startswith("Bedankt.")
    await until(lambda: any("ingeschakeld" in b for b in fake.to(ally(1))))
    await time_passes(client)
    await timers_fired(client)
    await settled(client)
    assert paged(fake, BACKUP) == []


async def test_klaar_closes_the_loop(client: Client, fake: FakeTwilio) -> None:
    """KLAAR from the officer resolves #1; every ally and the reporter hear the outcome."""
    await make_escalating_group(client, 3, steps=[(OFFICER, 60)])
    await sms(client, ally(0), "Brand bij de flat")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    _, replies = await sms(client, OFFICER, "klaar")
    assert replies == ["#1 is afgesloten. Iedereen die een melding kreeg hoort het."]
    for n in range(3):
        await until(lambda n=n: any("Afgesloten: opgelost." in b for b in fake.to(ally(n))))
    assert not any("Afgesloten" in b for b in fake.to(OFFICER))
    assert (await rows(client, "SELECT state, resolution FROM incidents"))[0] == ("resolved", "klaar")
    _, replies = await sms(client, ally(1), "OK 1")
    assert replies == ["Melding #1 is al afgesloten."]


async def test_only_responders_and_coordinators_resolve(client: Client, fake: FakeTwilio) -> None:
    """An ally's KLAAR is refused; a coordinator's is accepted."""
    await make_escalating_group(client, 2, steps=[(OFFICER, 60)], coordinator=COORDINATOR)
    await sms(client, ally(0), "Verdacht")
    _, replies = await sms(client, ally(1), "KLAAR")
    assert "Alleen" in replies[0]
    _, replies = await sms(client, COORDINATOR, "klaar 1")
    assert replies[0].startswith("#1 is afgesloten")


async def test_bounced_page_moves_on_without_waiting(client: Client, fake: FakeTwilio) -> None:
    """The officer's number is invalid: the backup is paged at once, not after the 60 s time-out."""
    fake.fault = permanent({OFFICER: 21211})
    await make_escalating_group(client, 2, steps=[(OFFICER, 60), (BACKUP, 60)])
    await sms(client, ally(0), "Wapen gezien")
    await until(lambda: len(paged(fake, BACKUP)) == 1)


async def test_bounce_reported_by_status_callback_moves_on(client: Client, fake: FakeTwilio) -> None:
    """Twilio accepted the page but the carrier failed it: the callback moves the chain on."""
    await make_escalating_group(client, 2, steps=[(OFFICER, 60), (BACKUP, 60)])
    await sms(client, ally(0), "Wapen gezien")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    await settled(client)
    message = next(m for m in fake.messages if m["To"] == OFFICER)
    await fake.post_status(message["StatusCallback"], message["sid"], "undelivered", "30003")
    await until(lambda: len(paged(fake, BACKUP)) == 1)


async def test_off_duty_step_is_skipped(client: Client, fake: FakeTwilio) -> None:
    """The officer is off duty right now: the backup is paged at once and the skip is on record."""
    now = datetime.now(UTC).astimezone(ZoneInfo("Europe/Amsterdam"))
    later = now + timedelta(hours=3)
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    off_now = [
        {
            "days": [days[later.weekday()]],
            "start": f"{later:%H}:00",
            "end": f"{(later + timedelta(hours=1)):%H}:00",
        }
    ]
    group = await make_escalating_group(
        client, 2, steps=[(OFFICER, 60), (BACKUP, 60)], schedules={OFFICER: off_now}
    )
    await sms(client, ally(0), "Overval bij de supermarkt")
    await until(lambda: len(paged(fake, BACKUP)) == 1)
    assert paged(fake, OFFICER) == []
    detail = await call(client, "GET", "/api/v1/incidents/1", expect=200)
    assert "escalation.skipped" in [entry["type"] for entry in detail["timeline"]]
    info = await call(client, "GET", f"/api/v1/groups/{group['id']}", expect=200)
    assert info["coverage_gaps"] == []


async def test_nobody_answers_tells_the_coordinators(client: Client, fake: FakeTwilio) -> None:
    """After the chain and its repeat, the coordinators hear nobody answered."""
    await make_escalating_group(client, 1, steps=[(OFFICER, 1)], coordinator=COORDINATOR, repeat=1)
    await sms(client, ally(0), "Brand")
    await until(lambda: any("Geen hulpverlener antwoordde" in b for b in fake.to(COORDINATOR)), timeout_s=15)
    assert len(paged(fake, OFFICER)) == 2


async def test_timeline_and_stats_through_the_api(client: Client, fake: FakeTwilio) -> None:
    """GET /incidents/{id} shows signals, timeline, delivery counts and response times; /stats the week."""
    group = await make_escalating_group(client, 3, steps=[(OFFICER, 60)])
    await sms(client, ally(0), "Brand in de schuur")
    await sms(client, ally(1), "OK")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    await sms(client, OFFICER, "OK")
    resolved = await call(
        client,
        "POST",
        "/api/v1/incidents/1/resolve",
        {"outcome": "Brandweer heeft geblust", "false_alarm": False},
        expect=200,
    )
    assert resolved["state"] == "resolved"
    assert [s["text"] for s in resolved["signals"]] == ["Brand in de schuur"]
    assert resolved["signals"][0]["reporter"].startswith("member:")
    types = [entry["type"] for entry in resolved["timeline"]]
    for expected in (
        "incident.opened",
        "signal.received",
        "incident.escalated",
        "escalation.paged",
        "incident.responder_ack",
        "incident.resolved",
    ):
        assert expected in types
    stats = resolved["stats"]
    assert stats["alerted"] == 2
    assert stats["answered"] == 2
    assert stats["time_to_first_ally_ok_s"] is not None
    assert stats["time_to_responder_ok_s"] is not None
    await until(lambda: any("Brandweer heeft geblust" in b for b in fake.to(ally(2))))
    listed = await call(client, "GET", f"/api/v1/incidents?group_id={group['id']}&state=resolved", expect=200)
    assert [i["number"] for i in listed["items"]] == [1]
    await settled(client)
    week = await call(
        client, "GET", f"/api/v1/stats?neighbourhood_id={group['neighbourhood_id']}", expect=200
    )
    assert week["totals"]["incidents"] == 1
    assert week["weeks"][0]["escalations"] == {"urgent": 1}
    assert week["totals"]["sms_segments"] >= 4
    await call(client, "POST", "/api/v1/incidents/1/resolve", {}, expect=409)


async def test_stats_count_local_days_and_weeks(client: Client, fake: FakeTwilio) -> None:
    """`from` and `to` are the neighbourhood's days: half an hour either side of Amsterdam's
    midnight into Monday 30 November 2026 falls in two days and two ISO weeks."""
    from alertnet import keys
    from alertnet.store import db, tables

    group = await make_group(client, 3)
    await sms(client, ally(0), "Verdacht busje")
    await settled(client)
    await call(client, "POST", "/api/v1/incidents/1/resolve", {}, expect=200)
    await sms(client, ally(1), "Weer dat busje")
    await settled(client)
    sunday_night = datetime(2026, 11, 29, 22, 30, tzinfo=UTC)  # 23:30 in Amsterdam
    monday_morning = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)  # 00:30 on Monday
    async with db.write(client.app[keys.engine]) as conn:
        for number, at in ((1, sunday_night), (2, monday_morning)):
            incident = tables.incidents.c
            await conn.execute(
                tables.incidents.update().where(incident.number == number).values(opened_at=at)
            )
            ids = sa.select(incident.id).where(incident.number == number).scalar_subquery()
            d = tables.deliveries.c
            await conn.execute(
                tables.deliveries.update().where(d.incident_id == ids).values(created_at=at, segments=number)
            )
    # Each of #1's messages is 1 segment, each of #2's 2.
    (first, second) = await rows(
        client, "SELECT count(*) FROM deliveries GROUP BY incident_id ORDER BY incident_id"
    )
    path = f"/api/v1/stats?neighbourhood_id={group['neighbourhood_id']}"
    every = await call(client, "GET", path, expect=200)
    assert [(w["week"], w["incidents"], w["sms_segments"]) for w in every["weeks"]] == [
        ("2026-W48", 1, first[0]),
        ("2026-W49", 1, 2 * second[0]),
    ]
    monday = await call(client, "GET", path + "&from=2026-11-30&to=2026-11-30", expect=200)
    assert monday["totals"] == {"incidents": 1, "escalations": 0, "sms_segments": 2 * second[0]}
    sunday = await call(client, "GET", path + "&to=2026-11-29", expect=200)
    assert [(w["week"], w["incidents"], w["sms_segments"]) for w in sunday["weeks"]] == [
        ("2026-W48", 1, first[0])
    ]
    later = await call(client, "GET", path + "&from=2026-12-01", expect=200)
    assert later["totals"] == {"incidents": 0, "escalations": 0, "sms_segments": 0}


async def test_member_who_said_stop_gets_no_updates(client: Client, fake: FakeTwilio) -> None:
    """After STOP, news about an incident the member was alerted to does not reach them."""
    await make_escalating_group(client, 3, steps=[(OFFICER, 60)])
    await sms(client, ally(0), "Verdacht busje")
    await until(lambda: len(fake.to(ally(2))) == 1)
    await sms(client, ally(2), "STOP")
    await sms(client, ally(1), "OK")
    await until(lambda: any("Een buur gaat kijken" in b for b in fake.to(ally(0))))
    await settled(client)
    assert len(fake.to(ally(2))) == 1


async def test_responder_stop_takes_them_out_of_the_chain(client: Client, fake: FakeTwilio) -> None:
    """STOP from the officer: the coordinators hear it, the chain skips them, START brings them back."""
    group = await make_escalating_group(
        client, 2, steps=[(OFFICER, 60), (BACKUP, 60)], coordinator=COORDINATOR
    )
    _, replies = await sms(client, OFFICER, "STOP")
    assert replies == ["Je krijgt geen berichten meer van het buurtalarm. Weer meedoen? Stuur START"]
    await until(lambda: len(fake.to(COORDINATOR)) == 1)
    notice = fake.to(COORDINATOR)[0]
    assert "Responder 1" in notice
    assert "STOP" in notice
    assert OFFICER[-4:] not in notice.replace(" ", "")
    responders = await call(client, "GET", f"/api/v1/neighbourhoods/{group['neighbourhood_id']}/responders")
    stopped = {r["phone"]: r["opted_out_at"] for r in responders["items"]}
    assert stopped[OFFICER] is not None
    assert stopped[BACKUP] is None
    info = await call(client, "GET", f"/api/v1/groups/{group['id']}", expect=200)
    assert info["coverage_gaps"] == []  # the backup still covers every hour
    await sms(client, ally(0), "Wapen gezien")
    await until(lambda: len(paged(fake, BACKUP)) == 1)
    assert paged(fake, OFFICER) == []
    assert await sms(client, OFFICER, "stop") == (200, [])
    _, replies = await sms(client, OFFICER, "START")
    assert replies == ["Welkom terug: je krijgt weer meldingen."]
    responders = await call(client, "GET", f"/api/v1/neighbourhoods/{group['neighbourhood_id']}/responders")
    assert all(r["opted_out_at"] is None for r in responders["items"])


async def test_page_refused_21610_takes_the_responder_out(client: Client, fake: FakeTwilio) -> None:
    """Twilio says the officer unsubscribed: the backup is paged at once and the coordinator is told."""
    fake.fault = permanent({OFFICER: 21610})
    group = await make_escalating_group(
        client, 2, steps=[(OFFICER, 60), (BACKUP, 60)], coordinator=COORDINATOR
    )
    await sms(client, ally(0), "Wapen gezien")
    await until(lambda: len(paged(fake, BACKUP)) == 1)
    await until(lambda: any("STOP" in body for body in fake.to(COORDINATOR)))
    responders = await call(client, "GET", f"/api/v1/neighbourhoods/{group['neighbourhood_id']}/responders")
    assert [r["phone"] for r in responders["items"] if r["opted_out_at"] is not None] == [OFFICER]
    assert fake.refused == {21610: 1}


async def test_responder_added_after_their_stop_stays_out(client: Client, fake: FakeTwilio) -> None:
    """A number that texted STOP before it became a responder is skipped until it texts START."""
    await sms(client, OFFICER, "STOP")
    group = await make_escalating_group(client, 2, steps=[(OFFICER, 60), (BACKUP, 60)])
    responders = await call(client, "GET", f"/api/v1/neighbourhoods/{group['neighbourhood_id']}/responders")
    assert [r["phone"] for r in responders["items"] if r["opted_out_at"] is not None] == [OFFICER]
    await sms(client, ally(0), "Wapen gezien")
    await until(lambda: len(paged(fake, BACKUP)) == 1)
    assert paged(fake, OFFICER) == []


async def test_a_responders_opt_out_follows_the_number(client: Client, fake: FakeTwilio) -> None:
    """STOP belongs to a number: a new phone clears it, and a phone that said STOP brings it along."""
    await sms(client, OFFICER, "STOP")
    group = await make_escalating_group(client, 1, steps=[(OFFICER, 60), (BACKUP, 60)])
    officer, backup = group["responder_ids"]
    moved = await call(client, "PATCH", f"/api/v1/responders/{officer}", {"phone": "+31687650000"})
    assert moved["opted_out_at"] is None
    taken = await call(client, "PATCH", f"/api/v1/responders/{backup}", {"phone": OFFICER})
    assert taken["opted_out_at"] is not None


async def test_deleting_the_group_ends_its_incidents(client: Client, fake: FakeTwilio) -> None:
    """A group deleted mid-escalation: its incident is resolved, the officer hears why, the chain
    does not go on to the backup, and no message is left for the allies whose numbers went."""
    group = await make_escalating_group(client, 2, steps=[(OFFICER, 60), (BACKUP, 60)])
    await sms(client, ally(0), "Er is brand in de container")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    await call(client, "DELETE", f"/api/v1/groups/{group['id']}", expect=204)
    assert await rows(client, "SELECT state, resolution FROM incidents") == [("resolved", "group_deleted")]
    await until(lambda: any("opgeheven" in body for body in fake.to(OFFICER)))
    await time_passes(client)
    await timers_fired(client)
    await settled(client)
    assert paged(fake, BACKUP) == []
    incident = await call(client, "GET", "/api/v1/incidents/1", expect=200)
    assert incident["state"] == "resolved"
    assert not any("opgeheven" in body for body in fake.to(ally(1)))
    assert await rows(client, "SELECT id FROM deliveries WHERE status = 'failed'") == []


async def test_same_text_after_klaar_opens_a_new_incident(client: Client, fake: FakeTwilio) -> None:
    """The repeat guard looks only at open incidents: the same text right after KLAAR is news."""
    await make_escalating_group(client, 3, steps=[(OFFICER, 60)])
    await sms(client, ally(0), "Brand bij de flat")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    await sms(client, OFFICER, "KLAAR 1")
    _, replies = await sms(client, ally(0), "Brand bij de flat")
    assert replies[0].startswith("Melding #2 is doorgestuurd")
    assert len(await rows(client, "SELECT id FROM incidents")) == 2


async def test_flood_count_starts_again_after_klaar(client: Client, fake: FakeTwilio) -> None:
    """Five updates about #1, KLAAR, then a new situation: it reaches the allies."""
    await make_escalating_group(
        client, 3, steps=[(OFFICER, 600)], coordinator=COORDINATOR, threshold_reporters=9
    )
    for n in range(5):
        await sms(client, ally(0), f"Update {n} over de man bij de schuur")
    await sms(client, COORDINATOR, "KLAAR 1")
    _, replies = await sms(client, ally(0), "Nu staat er een auto te branden")
    assert replies[0].startswith("Melding #2 is doorgestuurd")
    await settled(client)
    assert any("branden" in body for body in fake.to(ally(1)))


async def _two_groups_one_officer(client: Client, fake: FakeTwilio) -> None:
    """Molenwijk Noord and Banne, one neighbourhood, the same officer; both have an escalated #1."""
    first = await make_escalating_group(client, 2, steps=[(OFFICER, 600)])
    chain = {"chain": [{"responder_ids": first["responder_ids"], "timeout_s": 600}]}
    banne = await make_group(
        client, 0, join_code="BANNE", name="Banne", hood_id=first["neighbourhood_id"], escalation=chain
    )
    for n in (7, 8):
        await call(client, "POST", f"/api/v1/groups/{banne['id']}/members", {"phone": ally(n)}, expect=201)
    await sms(client, ally(0), "Brand in de schuur")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    await sms(client, ally(7), "Wapen gezien bij de Banne")
    await until(lambda: len(paged(fake, OFFICER)) == 2)


async def test_klaar_with_a_number_two_groups_share_asks_which(client: Client, fake: FakeTwilio) -> None:
    """Two open #1s the officer was paged for: "KLAAR 1" closes neither and asks which; "KLAAR 1
    Banne" closes Banne's."""
    await _two_groups_one_officer(client, fake)
    _, replies = await sms(client, OFFICER, "KLAAR 1")
    assert replies == [
        "Er lopen meerdere meldingen #1: Banne, Molenwijk Noord. "
        "Noem de groep erbij, bijvoorbeeld: KLAAR 1 Banne"
    ]
    assert await rows(client, "SELECT state FROM incidents ORDER BY id") == [("escalated",), ("escalated",)]
    _, replies = await sms(client, OFFICER, "klaar 1 banne")
    assert replies[0].startswith("#1 is afgesloten")
    assert await rows(client, "SELECT state FROM incidents ORDER BY id") == [("escalated",), ("resolved",)]
    _, replies = await sms(client, OFFICER, "KLAAR 1")  # only one open #1 is left
    assert await rows(client, "SELECT state FROM incidents ORDER BY id") == [("resolved",), ("resolved",)]


async def test_ok_with_a_number_prefers_the_open_incident(client: Client, fake: FakeTwilio) -> None:
    """A member of two groups: #1 of the first is open, #1 of the second was closed later. "OK 1" is
    about the open one."""
    first = await make_group(client, 2, coordinator=COORDINATOR)
    second = await make_group(
        client, 0, join_code="BANNE", name="Banne", hood_id=first["neighbourhood_id"], coordinator=COORDINATOR
    )
    for phone in (ally(1), ally(5)):
        await call(client, "POST", f"/api/v1/groups/{second['id']}/members", {"phone": phone}, expect=201)
    await sms(client, ally(0), "Verdacht busje")
    await sms(client, ally(5), "Verdacht in de Banne")
    await sms(client, COORDINATOR, "KLAAR 1 Banne")
    _, replies = await sms(client, ally(1), "OK 1")
    assert replies[0].startswith("Dank je!")
    assert await rows(client, "SELECT state FROM incidents ORDER BY id") == [("acknowledged",), ("resolved",)]


async def test_reporter_ok_is_no_backup(client: Client, fake: FakeTwilio) -> None:
    """The reporter's own OK does not count as a neighbour going to look: the ack time-out still
    calls the officer, and the others do not hear that a neighbour is going."""
    await make_escalating_group(client, 3, steps=[(OFFICER, 60)], ack_timeout_s=600)
    await sms(client, ally(0), "Verdacht busje")
    _, replies = await sms(client, ally(0), "OK")
    assert replies == ["Je meldde #1 zelf; je buren hebben het bericht. Wie gaat kijken, stuurt OK."]
    await time_passes(client)
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    await settled(client)
    assert not any("Een buur gaat kijken" in body for body in fake.to(ally(1)))


async def test_one_signal_into_two_groups_is_answered_once(client: Client, fake: FakeTwilio) -> None:
    """A resident in two groups reports a fire: each group opens a #1 and the buurtregisseur is paged
    twice. Their bare OK answers both (one page left unanswered would page on), with one thanks;
    a bare KLAAR closes both. Found by a generated conversation."""
    hood = await call(client, "POST", "/api/v1/neighbourhoods", {"name": "Molenwijk"}, expect=201)
    officer = await call(
        client, "POST", f"/api/v1/neighbourhoods/{hood['id']}/responders", {"name": "J", "phone": OFFICER}
    )
    chain = {"chain": [{"responder_ids": [officer["id"]], "timeout_s": 600}]}
    for name, code in (("Molenwijk Noord", "MOLEN"), ("Banne Buiksloot", "BANNE")):
        await make_group(client, 2, join_code=code, name=name, escalation=chain, hood_id=hood["id"])
    await sms(client, ally(0), "Er is brand bij de flat")
    await until(lambda: len(paged(fake, OFFICER)) == 2)
    _, replies = await sms(client, OFFICER, "OK")
    assert replies == ["Bedankt. De buurt hoort dat u eraan werkt (#1). Afsluiten: KLAAR 1"]
    acked = await rows(client, "SELECT id FROM incidents WHERE responder_ack_at IS NOT NULL")
    assert len(acked) == 2
    _, replies = await sms(client, OFFICER, "KLAAR")
    assert replies == ["#1 is afgesloten. Iedereen die een melding kreeg hoort het."]
    assert await rows(client, "SELECT DISTINCT state FROM incidents") == [("resolved",)]


async def test_help_for_a_responder(client: Client, fake: FakeTwilio) -> None:
    """A buurtregisseur is in no group: HELP tells them how to answer a page, not how to join."""
    await make_escalating_group(client, 1, steps=[(OFFICER, 600)])
    _, replies = await sms(client, OFFICER, "HULP")
    assert replies == [
        "Buurtalarm: bij een ALARM roepen de buren je hulp in. OK n = ik neem het op. "
        "KLAAR n = afgesloten, iedereen hoort het. STOP = geen berichten meer."
    ]


async def test_a_responder_chooses_their_language_by_sms(client: Client, fake: FakeTwilio) -> None:
    """A buurtregisseur who is not Dutch-first texts LANGUAGE EN: the pages come in English."""
    await make_escalating_group(client, 1, steps=[(OFFICER, 600)])
    _, replies = await sms(client, OFFICER, "LANGUAGE english")
    assert replies == ["Your messages now come in English. Nederlands? Stuur TAAL NL"]
    await sms(client, ally(0), "Brand in de schuur")
    await until(lambda: len(fake.to(OFFICER)) == 1)
    assert fake.to(OFFICER)[0].startswith("ALERT Molenwijk Noord #1: 1 reporter(s).")


async def test_responder_stop_gets_nothing_more(client: Client, fake: FakeTwilio) -> None:
    """A responder paged for #1 texts STOP: the outcome of #1 does not reach them."""
    await make_escalating_group(client, 2, steps=[(OFFICER, 600)])
    await sms(client, ally(0), "Brand in de schuur")
    await until(lambda: len(fake.to(OFFICER)) == 1)
    _, replies = await sms(client, OFFICER, "STOP")
    assert "START" in replies[0]
    await call(client, "POST", "/api/v1/incidents/1/resolve", {}, expect=200)
    await settled(client)
    assert len(fake.to(OFFICER)) == 1
    assert any("Afgesloten" in body for body in fake.to(ally(1)))


async def test_responder_stop_holds_back_a_waiting_page(client: Client, fake: FakeTwilio) -> None:
    """A page queued before the responder's STOP but not yet sent is not sent after it."""
    refused: list[str] = []

    def once(form: dict[str, str]) -> Fault | None:
        if form["To"] == OFFICER and not refused:
            refused.append(form["To"])
            return Fault(503, 20500, retry_after_s=600)
        return None

    fake.fault = once
    await make_escalating_group(client, 2, steps=[(OFFICER, 600)])
    await sms(client, ally(0), "Brand in de schuur")
    await until(lambda: bool(refused))
    await sms(client, OFFICER, "STOP")
    await jobs_due_now(client)
    await settled(client)
    assert fake.to(OFFICER) == []


async def _paged_with_caller(client: Client, fake: FakeTwilio) -> None:
    await make_escalating_group(client, 2, steps=[(OFFICER, 600)])
    await sms(client, ally(0), "Brand in de schuur")
    await until(lambda: len(paged(fake, OFFICER)) == 1)
    await settled(client)
    assert f"Melder: {ally(0)}" in paged(fake, OFFICER)[0]


async def test_leaving_erases_the_number_from_pages(client: Client, fake: FakeTwilio) -> None:
    """The page carried the reporter's number to the officer; once the reporter leaves, the stored
    page holds it masked only."""
    await _paged_with_caller(client, fake)
    await sms(client, ally(0), "LEAVE MOLEN")
    ((body,),) = await rows(client, "SELECT body FROM deliveries WHERE purpose = 'escalation'")
    assert ally(0)[3:] not in body.replace(" ", "")
    assert "Melder: +31 6 •• •• 00 00" in body


async def test_retention_erases_the_number_from_pages(client: Client, fake: FakeTwilio) -> None:
    """After the retention period a stored page holds the reporter's number masked only."""
    from alertnet import keys
    from alertnet.store import db, retention

    await _paged_with_caller(client, fake)
    async with db.write(client.app[keys.engine]) as conn:
        await retention.erase_older_than(conn, datetime.now(UTC) + timedelta(seconds=1))
    ((body,),) = await rows(client, "SELECT body FROM deliveries WHERE purpose = 'escalation'")
    assert ally(0)[3:] not in body.replace(" ", "")


async def test_responder_answers_are_in_their_language(client: Client, fake: FakeTwilio) -> None:
    """An English-speaking officer gets both the OK and the DONE reply in English."""
    group = await make_escalating_group(client, 2, steps=[(OFFICER, 600)])
    await call(
        client, "PATCH", f"/api/v1/responders/{group['responder_ids'][0]}", {"language": "en"}, expect=200
    )
    await sms(client, ally(0), "Brand")
    await until(lambda: len(fake.to(OFFICER)) == 1)
    _, ok = await sms(client, OFFICER, "OK")
    _, done = await sms(client, OFFICER, "DONE")
    assert ok[0].startswith("Thank you")
    assert done[0].startswith("#1 is closed")


async def test_two_klaars_at_once_close_it_once(client: Client, fake: FakeTwilio) -> None:
    """Two coordinators text KLAAR at the same moment: one closes #1, the other hears it was
    already closed, and one resolve is on record."""
    import asyncio

    second = "+31620000002"
    group = await make_group(client, 2, coordinator=COORDINATOR)
    body = {"phone": second, "role": "coordinator", "name": "Gijs"}
    await call(client, "POST", f"/api/v1/groups/{group['id']}/members", body, expect=201)
    await sms(client, ally(0), "Verdacht busje")
    replies = await asyncio.gather(sms(client, COORDINATOR, "KLAAR 1"), sms(client, second, "KLAAR 1"))
    texts = sorted(reply[1][0] for reply in replies)
    assert texts[0].startswith("#1 is afgesloten")
    assert texts[1] == "Melding #1 is al afgesloten."
    assert await rows(client, "SELECT count(*) FROM answers WHERE kind = 'resolve'") == [(1,)]


async def test_a_leased_timer_does_not_make_the_worker_spin(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A due timer another process holds under a lease: this worker looks about once a second,
    not flat out until the lease ends."""
    from datetime import timedelta

    from alertnet import keys
    from alertnet import timers as timer_worker
    from alertnet.store import db
    from alertnet.store import incidents as incident_store
    from alertnet.store.tables import timers

    await make_escalating_group(client, 2, steps=[(OFFICER, 600)], ack_timeout_s=600)
    await sms(client, ally(0), "Verdacht busje")
    now = client.app[keys.clock]()
    async with db.write(client.app[keys.engine]) as conn:
        values = {"due_at": now - timedelta(seconds=1), "lease_until": now + timedelta(seconds=60)}
        await conn.execute(timers.update().values(**values))
    claims = 0
    claim = incident_store.claim_due_timers

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await claim(*args, **kwargs)

    monkeypatch.setattr(timer_worker.store, "claim_due_timers", counted)
    await asyncio.sleep(1.0)
    assert claims <= 3


async def test_a_signal_while_a_timer_holds_the_incident(
    client: Client, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer holds the incident while it pages; a signal to the same group meanwhile waits for
    it, and both go through (on PostgreSQL they deadlocked: the signal's group lock against the
    key-share lock the page's insert takes)."""
    from alertnet import engine

    await make_escalating_group(client, 3, steps=[(OFFICER, 600)], ack_timeout_s=600)
    await sms(client, ally(0), "Verdacht busje")
    inside = asyncio.Event()
    on_duty = engine.on_duty

    async def slow(*args: Any, **kwargs: Any) -> Any:
        found = await on_duty(*args, **kwargs)
        if not inside.is_set():
            inside.set()
            await asyncio.sleep(0.5)
        return found

    monkeypatch.setattr(engine, "on_duty", slow)
    await time_passes(client)
    await asyncio.wait_for(inside.wait(), 10)
    status, replies = await sms(client, ally(1), "Hij staat er nog")
    assert status == 200
    assert replies[0].startswith("Je melding is toegevoegd aan #1")
    await until(lambda: len(paged(fake, OFFICER)) == 1)


async def test_a_signal_during_the_group_deletion_opens_nothing(
    client: Client, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal that arrives while the group is being deleted does not leave an incident paging
    on for a deleted group."""
    from alertnet import admin

    group = await make_escalating_group(client, 3, steps=[(OFFICER, 600)])
    unresolved = admin.incident_store.unresolved_ids
    inside = asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> Any:
        found = await unresolved(*args, **kwargs)
        inside.set()
        await asyncio.sleep(0.5)
        return found

    monkeypatch.setattr(admin.incident_store, "unresolved_ids", slow)
    deleting = asyncio.create_task(call(client, "DELETE", f"/api/v1/groups/{group['id']}", expect=204))
    await asyncio.wait_for(inside.wait(), 10)
    await sms(client, ally(0), "Brand in de schuur")
    await deleting
    assert {state for (state,) in await rows(client, "SELECT state FROM incidents")} <= {"resolved"}


async def test_a_timer_claimed_twice_fires_once(client: Client, fake: FakeTwilio) -> None:
    """A timer whose lease ran out while it fired (a slow transaction, a paused process) may be
    claimed again by another worker: its second firing does nothing."""
    from alertnet import engine, keys
    from alertnet.store import db

    await make_escalating_group(client, 3, steps=[(OFFICER, 600)], ack_timeout_s=600)
    await sms(client, ally(0), "Verdacht busje")
    later = datetime.now(UTC) + timedelta(seconds=601)
    async with db.read(client.app[keys.engine]) as conn:
        timer = dict(
            (await conn.execute(sa.text("SELECT * FROM timers WHERE kind = 'ack_timeout'"))).one()._mapping
        )
    timer["due_at"] = datetime.fromisoformat(str(timer["due_at"])).replace(tzinfo=UTC)
    fired = []
    for _ in range(2):  # what two workers holding the same claim would do
        async with db.write(client.app[keys.engine]) as conn:
            fired.append(await engine.fire_timer(conn, timer, later))
    assert fired == [True, False]
    # Queued for `later`: the page is counted in the outbox, not waited for at the fake.
    assert await rows(client, "SELECT recipient_phone FROM deliveries WHERE purpose = 'escalation'") == [
        (OFFICER,)
    ]
    kinds = [
        kind for (kind,) in await rows(client, "SELECT type FROM audit_events WHERE type LIKE 'escalation.%'")
    ]
    assert kinds == ["escalation.paged"]  # once, and no stale second decision
