"""The audit hash chain: any edited, removed or reordered event is found, and named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from alertnet import audit, keys
from alertnet.settings import Settings
from alertnet.store.tables import audit_events

from .conftest import ADMIN, Client, Hood, call
from .loop import turns_while


def _chain(n: int) -> list[dict[str, Any]]:
    events, prev = [], audit.GENESIS
    for seq in range(1, n + 1):
        event = {
            "seq": seq,
            "at": datetime(2026, 1, 1, 12, 0, seq % 60, tzinfo=UTC),
            "actor": "cli",
            "actor_role": "admin",
            "type": "test",
            "subject": None,
            "neighbourhood_id": None,
            "data": {"n": seq, "text": "é"},
        }
        event["prev_hash"], event["hash"] = prev, audit.chain_hash(prev, event)
        prev = event["hash"]
        events.append(event)
    return events


class TestPureChain:
    def test_intact_chain_verifies(self) -> None:
        """An untouched chain is ok, counts every event and names the newest as the anchor to keep."""
        events = _chain(5)
        head = audit.Anchor(5, events[-1]["hash"])
        assert audit.verify(events) == audit.Verdict(ok=True, count=5, head=head)

    def test_empty_chain_verifies(self) -> None:
        """No events is a valid chain of zero."""
        assert audit.verify([]) == audit.Verdict(ok=True, count=0)

    @given(st.integers(1, 8), st.data())
    def test_any_single_edit_is_found_at_its_seq(self, n: int, data: st.DataObject) -> None:
        """Changing any hashed field of any event breaks the chain exactly there."""
        events = _chain(n)
        index = data.draw(st.integers(0, n - 1))
        field = data.draw(st.sampled_from(["actor", "type", "subject", "data", "neighbourhood_id"]))
        events[index][field] = (
            {"edited": True} if field == "data" else 999 if field == "neighbourhood_id" else "x"
        )
        verdict = audit.verify(events)
        assert (verdict.ok, verdict.bad_seq) == (False, index + 1)

    def test_anchor_holds_on_the_same_chain(self) -> None:
        """An anchor noted down earlier is found in the chain that grew since."""
        events = _chain(6)
        anchor = audit.Anchor(4, events[3]["hash"])
        assert audit.verify(events, anchor) == audit.Verdict(
            ok=True, count=6, head=audit.Anchor(6, events[-1]["hash"])
        )

    def test_anchor_shows_newest_events_removed(self) -> None:
        """Cutting the newest events off leaves a valid chain; the anchor past its end shows it."""
        events = _chain(6)
        anchor = audit.Anchor(6, events[-1]["hash"])
        assert audit.verify(events[:4]).ok
        verdict = audit.verify(events[:4], anchor)
        assert (verdict.ok, verdict.bad_seq, verdict.count) == (False, 6, 4)
        assert "removed" in (verdict.reason or "")

    @given(st.integers(1, 6))
    def test_anchor_shows_a_rewritten_chain(self, edited: int) -> None:
        """A forger who edits an event and recomputes every hash after it makes a valid chain, but
        not one that holds an anchor at or after the edit."""
        original = _chain(6)
        forged = _chain(6)
        forged[edited - 1]["data"] = {"forged": True}
        prev = original[edited - 2]["hash"] if edited > 1 else audit.GENESIS
        for event in forged[edited - 1 :]:
            event["prev_hash"], event["hash"] = prev, audit.chain_hash(prev, event)
            prev = event["hash"]
        anchor = audit.Anchor(6, original[-1]["hash"])
        assert audit.verify(forged).ok
        verdict = audit.verify(forged, anchor)
        assert (verdict.ok, verdict.bad_seq, verdict.intact_before) == (False, 6, False)
        assert "rewritten" in (verdict.reason or "")

    @given(st.integers(1, 2**40), st.text("0123456789abcdef", min_size=64, max_size=64))
    def test_anchor_text_round_trip(self, seq: int, digest: str) -> None:
        """What verify prints as the head is what --expect and ?expect= take back."""
        anchor = audit.Anchor(seq, digest)
        assert audit.Anchor.parse(str(anchor)) == anchor
        assert audit.Anchor.parse(f" {str(anchor).upper()}\n") == anchor

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "12",
            "12:",
            ":" + "a" * 64,
            "0:" + "a" * 64,
            "-1:" + "a" * 64,
            "1:" + "a" * 63,
            "1:" + "g" * 64,
        ],
    )
    def test_anchor_text_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="SEQ:HASH"):
            audit.Anchor.parse(text)

    def test_canonical_form_ignores_key_order(self) -> None:
        """The hash depends on content, not on how a database returns a dict's keys."""
        event = _chain(1)[0]
        reordered = {**event, "data": {"text": "é", "n": 1}}
        assert audit.chain_hash(audit.GENESIS, reordered) == event["hash"]


async def _tamper(client: Client, *statements: str, **params: Any) -> None:
    """Change the database behind the service's back, as someone with access to it could."""
    async with client.app[keys.engine].begin() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement), params)


async def _verdict(client: Client) -> dict[str, Any]:
    result: dict[str, Any] = await call(client, "GET", "/api/v1/audit/verify", expect=200)
    return result


class TestTamperedDatabase:
    """Someone with access to the database changes history; verify names where."""

    @pytest.fixture
    async def count(self, client: Client, hoods: tuple[Hood, Hood]) -> int:
        verdict = await _verdict(client)
        assert verdict["ok"]
        assert verdict["count"] >= 6
        return int(verdict["count"])

    async def test_edited_row(self, client: Client, count: int) -> None:
        """Editing one event's data fails at that seq."""
        await _tamper(client, "UPDATE audit_events SET data = :data WHERE seq = 3", data='{"name": "forged"}')
        verdict = await _verdict(client)
        assert (verdict["ok"], verdict["bad_seq"], verdict["count"]) == (False, 3, 2)
        assert "edited" in verdict["reason"]

    async def test_edited_row_with_recomputed_hash(self, client: Client, count: int) -> None:
        """A forger who recomputes the edited row's own hash still breaks the link to the next one."""
        async with client.app[keys.engine].connect() as conn:
            row = (await conn.execute(sa.select(audit_events).where(audit_events.c.seq == 3))).one()
        event = dict(row._mapping) | {"actor": "someone-else", "data": {}}
        forged = audit.chain_hash(event["prev_hash"], event)
        await _tamper(
            client,
            "UPDATE audit_events SET actor = 'someone-else', data = '{}', hash = :hash WHERE seq = 3",
            hash=forged,
        )
        verdict = await _verdict(client)
        assert (verdict["ok"], verdict["bad_seq"]) == (False, 4)

    async def test_deleted_row(self, client: Client, count: int) -> None:
        """Deleting an event fails at the one after it."""
        await _tamper(client, "DELETE FROM audit_events WHERE seq = 2")
        verdict = await _verdict(client)
        assert (verdict["ok"], verdict["bad_seq"]) == (False, 3)

    async def test_reordered_rows(self, client: Client, count: int) -> None:
        """Swapping two events' places fails at the first of them."""
        await _tamper(
            client,
            "UPDATE audit_events SET seq = -1 WHERE seq = 2",
            "UPDATE audit_events SET seq = 2 WHERE seq = 3",
            "UPDATE audit_events SET seq = 3 WHERE seq = -1",
        )
        verdict = await _verdict(client)
        assert (verdict["ok"], verdict["bad_seq"]) == (False, 2)

    async def test_chain_continues_after_many_writes(
        self, client: Client, count: int, hoods: tuple[Hood, Hood]
    ) -> None:
        """Appends keep one linear chain."""
        for n in range(5):
            await call(
                client,
                "POST",
                f"/api/v1/groups/{hoods[0].group_id}/members",
                {"phone": f"+3161111110{n}"},
                expect=201,
            )
        verdict = await _verdict(client)
        assert verdict == {
            "ok": True,
            "count": count + 5,
            "bad_seq": None,
            "reason": None,
            "head": verdict["head"],
        }
        assert verdict["head"].startswith(f"{count + 5}:")

    async def test_anchor_shows_newest_events_removed(self, client: Client, count: int) -> None:
        """With the head noted down, removing the newest events is found; without it, it is not."""
        head = (await _verdict(client))["head"]
        same = await call(client, "GET", f"/api/v1/audit/verify?expect={head}", expect=200)
        assert (same["ok"], same["head"]) == (True, head)
        await _tamper(client, "DELETE FROM audit_events WHERE seq >= :seq", seq=count - 1)
        assert (await _verdict(client))["ok"] is True
        cut = await call(client, "GET", f"/api/v1/audit/verify?expect={head}", expect=200)
        assert (cut["ok"], cut["bad_seq"], cut["count"]) == (False, count, count - 2)
        assert "removed" in cut["reason"]

    async def test_bad_anchor_is_a_400(self, client: Client, count: int) -> None:
        body = await call(client, "GET", "/api/v1/audit/verify?expect=12", expect=400)
        assert body["error"]["field"] == "expect"
        assert "SEQ:HASH" in body["error"]["message"]


def test_database_path(tmp_path: Path) -> None:
    """The SQLite URL form of the contract maps to a file path (sanity check for the helpers above)."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert settings.database_url.removeprefix("sqlite:///") == str(tmp_path / "x.db")


async def test_coordinator_verify_counts_own_events(client: Client, hoods: tuple[Hood, Hood]) -> None:
    """A coordinator learns the chain holds, and counts only their own neighbourhood's events."""
    everything = await _verdict(client)
    own = await call(client, "GET", "/api/v1/audit?limit=1000", headers=hoods[0].coordinator, expect=200)
    mine = await call(client, "GET", "/api/v1/audit/verify", headers=hoods[0].coordinator, expect=200)
    assert mine["ok"] is True
    assert mine["count"] == len(own["items"]) < everything["count"]
    newest = own["items"][-1]
    assert mine["head"] == f"{newest['seq']}:{newest['hash']}" != everything["head"]


async def test_a_coordinators_anchor_tells_nothing_of_other_neighbourhoods(
    client: Client, hoods: tuple[Hood, Hood]
) -> None:
    """To a coordinator, another neighbourhood's event and no event at all are the same missing
    anchor, and the answer never names the chain's global end; their own anchor holds."""
    own = await call(client, "GET", "/api/v1/audit?limit=1000", headers=hoods[0].coordinator, expect=200)
    theirs = await call(client, "GET", "/api/v1/audit?limit=1000", headers=hoods[1].coordinator, expect=200)
    mine = own["items"][-1]
    path = "/api/v1/audit/verify?expect="
    held = await call(client, "GET", f"{path}{mine['seq']}:{mine['hash']}", headers=hoods[0].coordinator)
    assert held["ok"] is True
    foreign = theirs["items"][-1]["seq"]
    answers = [
        await call(client, "GET", f"{path}{seq}:{'0' * 64}", headers=hoods[0].coordinator, expect=200)
        for seq in (foreign, 10_000)
    ]
    assert [(a["ok"], a["reason"]) for a in answers] == [(False, answers[0]["reason"])] * 2
    assert "never this neighbourhood's" in answers[0]["reason"]
    assert "ends at seq" not in answers[0]["reason"]


async def _long_chain(client: Client) -> None:
    """Ten batches' worth of events in the chain."""
    from alertnet.auth import SYSTEM
    from alertnet.store import audit as audit_store
    from alertnet.store import db

    async with db.write(client.app[keys.engine]) as conn:
        for n in range(audit_store._VERIFY_BATCH * 10):
            await audit_store.append(conn, who=SYSTEM, type="test.event", at=datetime.now(UTC), data={"n": n})


async def test_checking_a_long_chain_lets_the_service_run(client: Client) -> None:
    """SQLite reads never give the event loop a turn: the check hands it one between batches, so
    five years' chain (2.3 s to check) does not hold up every SMS meanwhile."""
    from alertnet.store import audit as audit_store
    from alertnet.store import db

    await _long_chain(client)

    async def check() -> audit.Verdict:
        async with db.read(client.app[keys.engine]) as conn:
            return await audit_store.verify(conn)

    verdict, turns = await turns_while(check())
    assert verdict.ok
    assert turns >= 10


async def test_one_check_of_the_chain_at_a_time(client: Client) -> None:
    """Each check reads the whole chain: a second one meanwhile is asked to come back."""
    import asyncio

    await _long_chain(client)
    first = asyncio.create_task(call(client, "GET", "/api/v1/audit/verify", expect=200))
    checking = client.app[keys.audit_check]
    while not checking.locked():
        assert not first.done(), "the first check ended before it was seen running"
        await asyncio.sleep(0)
    response = await client.get("/api/v1/audit/verify", headers=ADMIN)
    assert response.status == 429
    assert response.headers["Retry-After"] == "5"
    assert (await response.json())["error"]["code"] == "too_many_requests"
    assert (await first)["ok"]
    assert (await call(client, "GET", "/api/v1/audit/verify", expect=200))["ok"]
