"""Generated SMS conversations: the promises no conversation may break, whatever is said.

Hypothesis writes conversations; each runs on a fresh database against the whole service, with
the real twilio library and the fake Twilio, which posts status callbacks and may refuse one
number with 21610 (unsubscribed at the carrier). The neighbourhood: MOLEN (joining needs a
coordinator's approval) and BANNE (open), allies of whom ally(2) is in both, a coordinator,
and a chain of the buurtregisseur and then a backup. A step is an SMS from a small pool of
numbers (allies, the coordinator, the buurtregisseur, strangers), Twilio posting the last SMS
again, several signals at the same moment, time passing (every pending timer falls due), an app
posting a signal (with an Idempotency-Key, or none), or a coordinator on the API adding a
number, closing an incident or deleting BANNE. The outbox is drained after each step, so every
SMS belongs to the step that caused it.

The exact replies and recipients are the other tests' business. Checked here, after every step:
- every webhook is answered 200, with at most one reply;
- every SMS is GSM-7, handed to Twilio once, as stored; one per person, purpose and incident;
- no SMS to a resident, no reply and no log line holds another number of the pool; no alert
  holds a name its member did not share;
- nothing reaches a number after its STOP (or Twilio's 21610) until its START (or a bare YES,
  as at Twilio), and until then its texts are not answered and change nothing;
- a stranger's text reaches nobody (joining aside) and stores no signal;
- an alert never goes back to its sender, and a sender alerts a group about one incident five
  times at most (the flood limit);
- nothing about an incident closed before the step, no page after the buurtregisseur's OK;
- a retry of the same MessageSid, or the same Idempotency-Key, gets the first answer and does
  nothing again;
- per group: incidents numbered 1, 2, ... and at most one open.
At the end: the audit chain verifies and every SMS was delivered, or refused by Twilio.

ALERTNET_TEST_CONVERSATIONS sets the examples per database (default 10), e.g.
`ALERTNET_TEST_CONVERSATIONS=300 pytest tests/test_conversations.py -k sqlite`.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from alertnet import commands, gsm, keys, logs
from alertnet.app import create_app
from alertnet.store import db

from .conftest import ADMIN, PUBLIC_URL, Client, call, production_logging, settings_with_twilio
from .databases import Postgres, SqliteTemplate
from .fake_twilio import FakeTwilio, Fault
from .loop import ally, sms, time_passes

EXAMPLES = int(os.environ.get("ALERTNET_TEST_CONVERSATIONS", "10"))

ALLIES = [ally(n) for n in range(4)]
COORDINATOR = "+31620000001"
RESPONDER = "+31630000001"
#: The chain's second step: the buurtregisseur's backup.
BACKUP = "+31630000002"
STRANGERS = ["+31620000098", "+31620000099"]
POOL = [*ALLIES, COORDINATOR, RESPONDER, BACKUP, *STRANGERS]
#: Names newcomers give (by JOIN, or a coordinator on the API), none of them shared with the group.
NAMES = ["Gijsbert", "Wilhelmina"]
#: A number a resident writes in a signal: theirs to share with the group, never the log's.
WRITTEN = "+31612345678"

signals = st.sampled_from(
    [
        "Verdachte man bij de fietsenstalling",
        "Iemand rommelt aan de schuur",
        "stop met dat lawaai bij de flat",
        "Er is brand bij de flat",
        "Man met een mes bij de poort",
        "Bel 0612345678 als je iets ziet",
        "Verdachte man loopt langs de deuren en kijkt overal naar binnen " * 4,
    ]
)
urgent = st.sampled_from(["Er is brand bij de flat", "Man met een mes bij de poort"])
answers = st.sampled_from(
    ["OK", "ok", "Oké", "ik kom", "OK 1", "OK 2", "ack", "KLAAR", "klaar", "KLAAR 1", "DONE 2", "opgelost"]
)
texts = st.one_of(
    signals,
    signals,
    answers,
    answers,
    st.tuples(
        st.sampled_from(["JOIN", "AANMELDEN"]),
        st.sampled_from(["MOLEN", "banne", "NOPE", ""]),
        st.sampled_from(["", NAMES[0]]),
    ).map(lambda t: " ".join(w for w in t if w)),
    st.sampled_from(["JA", "YES", "JA 1", "YES 2", "j"]),
    st.sampled_from(["LEAVE MOLEN", "UITSCHRIJVEN BANNE"]),
    st.sampled_from(["STOP", "Stop!", "AFMELDEN", "ＳＴＯＰ"]),
    st.sampled_from(["START", "unstop"]),
    st.sampled_from(["HELP", "HULP", "LANGUAGE EN", "TAAL NL"]),
    st.sampled_from(["", " ", "\u200b", "🚨🚨", "ok\x00", "é" * 40]),
    st.text(max_size=12),
)
senders = st.sampled_from([*ALLIES, *ALLIES, COORDINATOR, COORDINATOR, RESPONDER, BACKUP, *STRANGERS])
CLOCK, RETRY, BURST = "clock", "retry", "burst"
#: A coordinator adds the number (the step's text) to BANNE through the API.
ADD = "add"
#: A coordinator closes the newest open incident through the API, or deletes BANNE.
RESOLVE, DELETE = "resolve", "delete"
#: An app posts a signal to MOLEN through the signal API, with the Idempotency-Key in the step's text.
APP = "app"
#: What the app posts with each key (the same key comes again with the same body); "" is no key.
APP_SIGNALS: dict[str, dict[str, Any]] = {
    "k1": {"text": "Deurbel-app: iemand bij de achterdeur", "reporter_phone": ALLIES[0]},
    "k2": {"text": "Rookmelder in de flat gaat af", "urgent": True},
    "": {"text": "Melding uit de app", "reporter_phone": STRANGERS[0]},
}
Step = tuple[str, str]
fragments = st.one_of(
    st.tuples(senders, texts).map(lambda t: [t]),
    st.tuples(senders, texts).map(lambda t: [t]),
    # A signal and an answer to it.
    st.tuples(st.sampled_from(ALLIES), signals, senders, answers).map(lambda t: [(t[0], t[1]), (t[2], t[3])]),
    # An urgent signal; nobody answers, and the chain goes on to the backup.
    st.tuples(st.sampled_from(ALLIES), urgent).map(lambda t: [t, (CLOCK, ""), (CLOCK, "")]),
    # STOP, a signal from someone else and more from the one who stopped, START.
    st.tuples(senders, st.sampled_from(ALLIES), signals, texts).map(
        lambda t: [(t[0], "STOP"), (t[1], t[2]), (t[0], t[3]), (t[0], "START")]
    ),
    # A newcomer asks to join, accepts the rules, and the coordinator approves.
    st.sampled_from(STRANGERS).map(
        lambda p: [(p, f"JOIN MOLEN {NAMES[0]}"), (p, "JA"), (COORDINATOR, "JA 1")]
    ),
    st.sampled_from([[(CLOCK, "")], [(CLOCK, ""), (CLOCK, "")], [(RETRY, "")]]),
    st.sampled_from([ALLIES[0], RESPONDER, *STRANGERS]).map(lambda phone: [(ADD, phone)]),
    st.sampled_from([[(RESOLVE, "")], [(DELETE, "")]]),
    # One neighbour texting on and on.
    st.sampled_from(ALLIES).map(
        lambda phone: [(phone, f"Nog steeds iemand bij de schuur ({n})") for n in range(7)]
    ),
    st.sampled_from(list(APP_SIGNALS)).map(lambda key: [(APP, key)]),
    st.lists(st.sampled_from([*ALLIES, COORDINATOR]), min_size=2, max_size=4, unique=True).map(
        lambda phones: [(BURST, " ".join(phones))]
    ),
)
MAX_STEPS = 12
conversations = st.lists(fragments, min_size=1, max_size=MAX_STEPS).map(
    lambda parts: [step for part in parts for step in part][:MAX_STEPS]
)


@dataclass(frozen=True)
class Setup:
    coordinator_in_banne: bool
    #: A number every SMS to which Twilio refuses with 21610, if any.
    bounce: str | None


setups = st.builds(Setup, st.booleans(), st.sampled_from([None, ALLIES[1], RESPONDER, BACKUP]))


def tail(phone: str) -> str:
    """The last nine digits: the part of a number that dials it, in any of its spellings."""
    return phone[-9:]


def holds_number(text: str, phones: set[str]) -> str | None:
    digits = re.sub(r"\D", "", text)
    return next((p for p in phones if tail(p) in digits), None)


async def query(client: Client, sql: str) -> list[dict[str, Any]]:
    async with db.read(client.app[keys.engine]) as conn:
        return [dict(row._mapping) for row in await conn.execute(sa.text(sql))]


@dataclass
class Snapshot:
    incidents: dict[int, dict[str, Any]]
    deliveries: list[dict[str, Any]]
    signals: int
    members: list[dict[str, Any]]

    def since(self, before: Snapshot) -> list[dict[str, Any]]:
        last = max((d["id"] for d in before.deliveries), default=0)
        return [d for d in self.deliveries if d["id"] > last]


async def snapshot(client: Client) -> Snapshot:
    incidents = await query(client, "SELECT * FROM incidents")
    return Snapshot(
        {i["id"]: i for i in incidents},
        await query(client, "SELECT * FROM deliveries ORDER BY id"),
        (await query(client, "SELECT count(*) AS n FROM signals"))[0]["n"],
        await query(client, "SELECT id, phone, group_id, status, role, language FROM members ORDER BY id"),
    )


class RecordingTwilio(FakeTwilio):
    """The fake, with status callbacks, remembering every number it was asked to send to and how
    its callbacks were answered."""

    def __init__(self, bounce: str | None) -> None:
        super().__init__(callbacks=True, fault=self._refuse)
        self.bounce = bounce
        self.attempts: list[str] = []
        self.callback_statuses: Counter[int] = Counter()

    def _refuse(self, form: dict[str, str]) -> Fault | None:
        self.attempts.append(form["To"])
        return Fault(400, 21610) if form["To"] == self.bounce else None

    def busy(self) -> bool:
        return bool(self._tasks)

    async def _call_back(self, url: str, sid: str, statuses: list[str]) -> None:
        for status in statuses:
            await asyncio.sleep(0.005)
            try:
                self.callback_statuses[await self.post_status(url, sid, status)] += 1
            except aiohttp.ClientError:  # the service stopped: at teardown after a failed check
                self.callback_statuses[0] += 1


@dataclass
class Conversation:
    url: str
    setup: Setup
    fake: RecordingTwilio = field(init=False)
    log: io.StringIO = field(default_factory=io.StringIO)
    #: Numbers that said STOP (or that Twilio refused with 21610), and where in the fake's
    #: attempts that began.
    stopped: dict[str, int] = field(default_factory=dict)
    last: tuple[str, str, str, list[str]] | None = None
    #: Every delivery's number and body as it was made, by id.
    made: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: How many of a sender's SMS alerted the group about each incident.
    alerts: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: The signal API's first answer to each Idempotency-Key.
    app_answers: dict[str, Any] = field(default_factory=dict)
    step_no: int = 0
    groups: dict[str, int] = field(default_factory=dict)
    banne_deleted: bool = False

    def __post_init__(self) -> None:
        self.fake = RecordingTwilio(self.setup.bounce)

    async def run(self, conversation: list[Step]) -> None:
        await self.fake.start()
        logs.configure("debug", "json", stream=self.log)
        try:
            async with TestClient(
                TestServer(create_app(settings_with_twilio(self.url, self.fake)))
            ) as client:
                self.fake.callback_route = (PUBLIC_URL, str(client.make_url("")).rstrip("/"))
                await self.build(client)
                steps = {
                    CLOCK: self.clock,
                    RETRY: self.retry,
                    BURST: self.burst,
                    ADD: self.add,
                    RESOLVE: self.resolve,
                    DELETE: self.delete,
                    APP: self.app,
                }
                for sender, text in conversation:
                    self.step_no += 1
                    before = await snapshot(client)
                    attempts_before = len(self.fake.attempts)
                    step = steps.get(sender)
                    if step is not None:
                        await step(client, text, before)
                    else:
                        await self.sms(client, sender, text, before)
                    await self.check_step(client, before, attempts_before, burst=sender == BURST)
                await self.finish(client)
        finally:
            production_logging()
            await self.fake.stop()
        log = self.log.getvalue()
        leaked = [p for p in [*POOL, WRITTEN] if tail(p) in log]
        assert leaked == [], f"{leaked} in the log"

    async def build(self, client: Client) -> None:
        hood = await call(client, "POST", "/api/v1/neighbourhoods", {"name": "Molenwijk"}, expect=201)
        steps = []
        for name, phone in (("Buurtregisseur Jansen", RESPONDER), ("Wijkagent Bakker", BACKUP)):
            path = f"/api/v1/neighbourhoods/{hood['id']}/responders"
            responder = await call(client, "POST", path, {"name": name, "phone": phone}, expect=201)
            steps.append({"responder_ids": [responder["id"]], "timeout_s": 600})
        chain = {"chain": steps}
        plan = [
            ("MOLEN", "approval", [*ALLIES[:3], COORDINATOR]),
            ("BANNE", "open", ALLIES[2:] + ([COORDINATOR] if self.setup.coordinator_in_banne else [])),
        ]
        for code, policy, phones in plan:
            body = {"name": code.title(), "join_code": code, "join_policy": policy, "escalation": chain}
            group = await call(
                client, "POST", f"/api/v1/neighbourhoods/{hood['id']}/groups", body, expect=201
            )
            self.groups[code] = group["id"]
            for phone in phones:
                role = "coordinator" if phone == COORDINATOR else "ally"
                member = {"phone": phone, "role": role}
                await call(client, "POST", f"/api/v1/groups/{group['id']}/members", member, expect=201)

    async def settle(self, client: Client) -> None:
        """Until the outbox is empty and every status callback answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (await query(client, "SELECT count(*) AS n FROM outbox"))[0]["n"] or self.fake.busy():
            assert loop.time() < deadline, "the outbox never drained"
            await asyncio.sleep(0.01)

    async def clock(self, client: Client, _text: str, _before: Snapshot) -> None:
        """Every pending timer falls due and fires (the new ones it sets are for later)."""
        pending = "SELECT id FROM timers WHERE fired_at IS NULL"
        ids = {t["id"] for t in await query(client, pending)}
        note(f"step {self.step_no}: time passes for timers {sorted(ids)}")
        await time_passes(client)
        client.app[keys.timers].notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while ids & {t["id"] for t in await query(client, pending)}:
            assert loop.time() < deadline, "the timers never fired"
            await asyncio.sleep(0.01)
        await self.settle(client)

    async def sms(self, client: Client, sender: str, text: str, before: Snapshot) -> None:
        sid = f"SM{self.step_no:032x}"
        was_stopped = sender in self.stopped
        status, replies = await sms(client, sender, text, sid=sid)
        note(f"step {self.step_no}: {sender} {text!r} -> {status} {replies}")
        assert status == 200, f"{sender} {text!r} answered {status}"
        await self.settle(client)
        after = await snapshot(client)
        self.check_replies(sender, replies)
        self.last = (sender, text, sid, replies)
        command = commands.parse(text)
        new = after.since(before)
        # Twilio lifts its block on a bare YES too, and so does alertnet.
        starts = isinstance(command, commands.Start) or (
            was_stopped and isinstance(command, commands.Yes) and command.twilio_opt_in
        )
        if was_stopped and not (starts or isinstance(command, commands.Stop)):
            assert replies == [], f"{sender} said STOP, then {text!r} was answered {replies}"
            assert (new, after.signals, after.members) == ([], before.signals, before.members), (
                f"{sender} said STOP, then {text!r} did something"
            )
        stranger = sender in STRANGERS and not any(m["phone"] == sender for m in before.members)
        if stranger and not isinstance(command, commands.Join):
            assert (new, after.signals) == ([], before.signals), f"stranger's {text!r} reached {new}"
        if isinstance(command, commands.Signal):
            back = [d for d in new if d["recipient_phone"] == sender and d["purpose"] == "fanout"]
            assert back == [], f"{sender}'s alert went back to them: {back}"
            # The flood limit: five alerts per sender and incident (a conversation lasts minutes).
            for incident_id in {d["incident_id"] for d in new if d["purpose"] == "fanout"}:
                self.alerts[sender, incident_id] += 1
                assert self.alerts[sender, incident_id] <= 5, f"{sender}'s sixth alert about one incident"
        if isinstance(command, commands.Stop):
            self.stopped.setdefault(sender, len(self.fake.attempts))
        if starts:
            self.stopped.pop(sender, None)

    def check_replies(self, sender: str, replies: list[str]) -> None:
        assert len(replies) <= 1, f"more than one reply: {replies}"
        for reply in replies:
            assert gsm.is_gsm(reply), f"reply not GSM-7: {reply!r}"
            leaked = holds_number(reply, set(POOL) - {sender})
            assert leaked is None, f"{leaked} in the reply to {sender}: {reply!r}"

    async def retry(self, client: Client, _text: str, before: Snapshot) -> None:
        """Twilio posts the last SMS again, same MessageSid: the same answer, nothing done again."""
        if self.last is None:
            return
        sender, text, sid, replies = self.last
        status, again = await sms(client, sender, text, sid=sid)
        note(f"step {self.step_no}: retry {sender} {text!r} -> {status} {again}")
        assert (status, again) == (200, replies), f"a retry answered {status} {again}, first {replies}"
        await self.settle(client)
        after = await snapshot(client)
        assert after.since(before) == [], "a retry sent something"
        assert (after.signals, after.members, after.incidents) == (
            before.signals,
            before.members,
            before.incidents,
        )

    async def add(self, client: Client, phone: str, before: Snapshot) -> None:
        """A coordinator adds a number: a member at once, opted out if it said STOP; a number
        that is one already is refused."""
        member = {"phone": phone, "name": NAMES[1]}
        response = await client.post(
            f"/api/v1/groups/{self.groups['BANNE']}/members", json=member, headers=ADMIN
        )
        body = await response.json()
        note(f"step {self.step_no}: {phone} added -> {response.status} {body}")
        there = any(m["phone"] == phone and m["group_id"] == self.groups["BANNE"] for m in before.members)
        expected = 404 if self.banne_deleted else 409 if there else 201
        assert response.status == expected, f"adding {phone}: {response.status} {body}"
        if response.status == 201:
            expected = "opted_out" if phone in self.stopped else "active"
            assert body["status"] == expected, f"{phone} added as {body['status']}, not {expected}"
        await self.settle(client)

    async def resolve(self, client: Client, _text: str, before: Snapshot) -> None:
        """A coordinator closes the newest open incident on the dashboard's API."""
        open_ = [i["id"] for i in before.incidents.values() if i["state"] != "resolved"]
        note(f"step {self.step_no}: the API closes incident {max(open_, default=None)}")
        if open_:
            await call(client, "POST", f"/api/v1/incidents/{max(open_)}/resolve", {}, expect=200)
            await self.settle(client)

    async def delete(self, client: Client, _text: str, _before: Snapshot) -> None:
        """A coordinator deletes BANNE: its incidents close, its chains stop."""
        note(f"step {self.step_no}: BANNE deleted")
        await call(
            client,
            "DELETE",
            f"/api/v1/groups/{self.groups['BANNE']}",
            expect=404 if self.banne_deleted else 204,
        )
        self.banne_deleted = True
        await self.settle(client)

    async def app(self, client: Client, key: str, before: Snapshot) -> None:
        """An app posts a signal; the same Idempotency-Key again gets the first answer, nothing twice."""
        body = {"group_id": self.groups["MOLEN"], **APP_SIGNALS[key]}
        headers = {**ADMIN, "Idempotency-Key": key} if key else ADMIN
        response = await client.post("/api/v1/signals", json=body, headers=headers)
        answer = await response.json()
        note(f"step {self.step_no}: the app posts {body} with key {key!r} -> {response.status} {answer}")
        assert response.status == 202, f"the signal API answered {response.status} {answer}"
        await self.settle(client)
        new = (await snapshot(client)).since(before)
        if key in self.app_answers:
            assert answer == self.app_answers[key], (
                f"key {key} answered {answer}, first {self.app_answers[key]}"
            )
            assert new == [], f"key {key} again sent {new}"
        elif key:
            self.app_answers[key] = answer
        reporter = body.get("reporter_phone")
        back = [d for d in new if d["recipient_phone"] == reporter and d["purpose"] == "fanout"]
        assert back == [], f"the reporter got their own alert: {back}"

    async def burst(self, client: Client, text: str, _before: Snapshot) -> None:
        """Several residents report at the same moment."""
        phones = text.split()
        answers = await asyncio.gather(
            *(
                sms(
                    client,
                    phone,
                    f"Verdachte auto bij de flat, zegt {n}",
                    sid=f"SM{self.step_no:016x}{n:016x}",
                )
                for n, phone in enumerate(phones)
            )
        )
        note(f"step {self.step_no}: burst {phones} -> {answers}")
        for phone, (status, replies) in zip(phones, answers, strict=True):
            assert status == 200, f"{phone} in a burst answered {status}"
            self.check_replies(phone, replies)
        await self.settle(client)

    async def check_step(self, client: Client, before: Snapshot, attempts_before: int, burst: bool) -> None:
        after = await snapshot(client)
        new = after.since(before)
        note(f"  sent {[(d['recipient_phone'], d['purpose'], d['body'][:40]) for d in new]}")
        for d in new:  # what the examples reached (--hypothesis-show-statistics)
            event(f"sent {d['purpose']}" + (" to the backup" if d["recipient_phone"] == BACKUP else ""))
        # One message per person and purpose (several signals at once: an alert for each).
        per_purpose = Counter(
            (d["recipient_phone"], d["purpose"], d["incident_id"], d["group_id"], d["escalation_round"])
            for d in new
            if not (burst and d["purpose"] == "fanout")
        )
        assert max(per_purpose.values(), default=1) == 1, f"twice to one person: {per_purpose.most_common(2)}"
        stopped = set(self.stopped)
        # Twilio's 21610 is the number's STOP, from the step after it came.
        bounce = self.setup.bounce
        if bounce in self.fake.attempts[attempts_before:]:
            self.stopped.setdefault(bounce, len(self.fake.attempts))
        for phone, since in self.stopped.items():
            late = [to for to in self.fake.attempts[since:] if to == phone]
            assert late == [], f"{phone} said STOP (or Twilio refused it), then was sent {len(late)} SMS"
        residents = set(POOL) - {RESPONDER, BACKUP}
        for d in new:
            to, body = d["recipient_phone"], d["body"]
            assert to not in stopped, f"{body!r} made for {to}, who said STOP"
            assert gsm.is_gsm(body), f"not GSM-7: {body!r}"
            shown = [n for n in NAMES if n in body]
            assert d["purpose"] != "fanout" or shown == [], f"{shown} in an alert, not shared: {body!r}"
            if d["member_id"] is not None:  # pages may carry the reporter's number (share_reporter_phone)
                leaked = holds_number(body, residents - {to})
                assert leaked is None, f"{leaked} in an SMS to {to}: {body!r}"
            old = before.incidents.get(d["incident_id"])
            if old is not None:
                assert old["state"] != "resolved", f"{to} got {body!r} about a closed incident"
                assert d["purpose"] != "escalation" or old["responder_ack_at"] is None, "paged after OK"
        sent = Counter(parse_qs(urlsplit(m["StatusCallback"]).query)["d"][0] for m in self.fake.messages)
        assert max(sent.values(), default=1) == 1, f"a delivery sent twice: {sent.most_common(3)}"
        # As stored when made: who leaves has their number erased from the deliveries later.
        self.made |= {str(d["id"]): (d["recipient_phone"], d["body"]) for d in new}
        for m in self.fake.messages:
            d = parse_qs(urlsplit(m["StatusCallback"]).query)["d"][0]
            made = self.made[d]
            assert made == (m["To"], m["Body"]), f"sent {m['Body']!r} to {m['To']}, stored {made}"
        by_group: dict[int, list[dict[str, Any]]] = {}
        for i in after.incidents.values():
            by_group.setdefault(i["group_id"], []).append(i)
        for incidents in by_group.values():
            numbers = sorted(i["number"] for i in incidents)
            assert numbers == list(range(1, len(numbers) + 1)), f"incidents numbered {numbers}"
            assert sum(i["state"] != "resolved" for i in incidents) <= 1, "two open incidents in a group"

    async def finish(self, client: Client) -> None:
        verdict = await call(client, "GET", "/api/v1/audit/verify", expect=200)
        assert verdict["ok"] is True, f"the audit chain is broken: {verdict}"
        assert set(self.fake.callback_statuses) <= {200, 204}, f"callbacks: {self.fake.callback_statuses}"
        for d in await query(client, "SELECT recipient_phone, status, error_code FROM deliveries"):
            refused = d["recipient_phone"] == self.setup.bounce
            assert d["status"] == ("failed" if refused else "delivered"), f"delivery ended {d}"


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest, database_kind: str, tmp_path: Path) -> Callable[[], str]:
    """A new empty, migrated database for each example."""
    if database_kind == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        return lambda: template.new(tmp_path)
    server: Postgres = request.getfixturevalue("postgres")
    return server.new


@pytest.mark.timeout(60 + 5 * EXAMPLES)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(setup=setups, steps=conversations)
def test_conversations_keep_their_promises(
    fresh_database: Callable[[], str], setup: Setup, steps: list[Step]
) -> None:
    asyncio.run(Conversation(fresh_database(), setup).run(steps))
