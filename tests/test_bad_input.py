"""Bad input, field by field and request by request: always a JSON 4xx naming the field, never a 500.

Every case that could write also checks that nothing was written: the audit log, which
records every change, has the same length before and after.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alertnet.routes import ROUTES, Route
from alertnet.schemas import (
    GroupIn,
    GroupPatch,
    MemberIn,
    MemberPatch,
    NeighbourhoodIn,
    ResolveIn,
    ResponderIn,
    ResponderPatch,
    SignalIn,
    TokenIn,
)
from alertnet.settings import Settings

from .conftest import ADMIN, Client, Hood, call, from_template, make_hood

HUGE = 2**70
TOO_LONG_DIGITS = "9" * 5000
ONE_MIB = 1024 * 1024


@pytest.fixture(scope="module")
def templates() -> dict[str, tuple[str, Any]]:
    return {}


@pytest.fixture
def _made(
    request: pytest.FixtureRequest, database_kind: str, tmp_path: Path, templates: dict[str, tuple[str, Any]]
) -> tuple[Settings, Hood]:
    """One hood, made once per database kind through the API; each test starts from a copy."""
    return from_template(
        request,
        database_kind,
        tmp_path,
        templates,
        lambda client: make_hood(client, "Molenwijk", "MOLEN", "01"),
    )


@pytest.fixture
def settings(_made: tuple[Settings, Hood]) -> Settings:
    return _made[0]


@pytest.fixture
def hood(_made: tuple[Settings, Hood], client: Client) -> Hood:
    """One neighbourhood with a responder, a group, a member and tokens."""
    return _made[1]


async def _audit_count(client: Client) -> int:
    verdict = await call(client, "GET", "/api/v1/audit/verify", expect=200)
    count: int = verdict["count"]
    return count


def _assert_error(status: int, payload: Any, expected_status: int, field: str | None) -> None:
    """A JSON error with code and message; `field` names the culprit, or is absent when none is."""
    assert status == expected_status, payload
    assert isinstance(payload, dict), payload
    error = payload["error"]
    assert isinstance(error["code"], str), error
    assert error["code"], error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert error.get("field") == field, error
    if field is not None and expected_status == 400:
        assert error["message"].startswith(f"{field}:"), error


# The table of bad bodies. Each case: an id, the body (or a function of the hood
# that makes it), the field the error must name, and the status.

BodyOf = Callable[[Hood], Any]


@dataclass(frozen=True)
class Bad:
    id: str
    body: Any
    field: str | None
    status: int = 400

    def make(self, hood: Hood) -> Any:
        return self.body(hood) if callable(self.body) else self.body


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def _without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


def _policy(**fields: Any) -> dict[str, Any]:
    return {"name": "Zuid", "join_code": "ZUID1", "escalation": fields}


def _step(**fields: Any) -> dict[str, Any]:
    return {"responder_ids": [1], "timeout_s": 600, **fields}


NEIGHBOURHOOD = {"name": "Nieuwendam"}
RESPONDER = {"name": "Jansen", "phone": "+31612345888"}
GROUP = {"name": "Zuid", "join_code": "ZUID1"}
MEMBER = {"phone": "+31612345666"}

NEIGHBOURHOOD_CASES = [
    Bad("name-missing", {}, "name"),
    Bad("name-null", {"name": None}, "name"),
    Bad("name-empty", {"name": ""}, "name"),
    Bad("name-blank", {"name": "   "}, "name"),
    Bad("name-too-long", {"name": "x" * 101}, "name"),
    Bad("name-int", {"name": 42}, "name"),
    Bad("name-list", {"name": ["Molenwijk"]}, "name"),
    Bad("name-object", {"name": {"nl": "Molenwijk"}}, "name"),
    Bad("timezone-unknown", _with(NEIGHBOURHOOD, timezone="Mars/Olympus_Mons"), "timezone"),
    Bad("timezone-empty", _with(NEIGHBOURHOOD, timezone=""), "timezone"),
    Bad("timezone-path", _with(NEIGHBOURHOOD, timezone="../../etc/passwd"), "timezone"),
    Bad("timezone-absolute", _with(NEIGHBOURHOOD, timezone="/etc/localtime"), "timezone"),
    Bad("timezone-not-tzif", _with(NEIGHBOURHOOD, timezone="zone.tab"), "timezone"),
    Bad("timezone-the-servers", _with(NEIGHBOURHOOD, timezone="localtime"), "timezone"),
    Bad("timezone-factory", _with(NEIGHBOURHOOD, timezone="Factory"), "timezone"),
    Bad("timezone-right", _with(NEIGHBOURHOOD, timezone="right/UTC"), "timezone"),
    Bad("timezone-too-long", _with(NEIGHBOURHOOD, timezone="Europe/" + "A" * 500), "timezone"),
    Bad("timezone-nul", _with(NEIGHBOURHOOD, timezone="Europe/Amsterdam\x00"), "timezone"),
    Bad("timezone-int", _with(NEIGHBOURHOOD, timezone=1), "timezone"),
    Bad("timezone-null", _with(NEIGHBOURHOOD, timezone=None), "timezone"),
    Bad("language-unknown", _with(NEIGHBOURHOOD, language="de"), "language"),
    Bad("language-null", _with(NEIGHBOURHOOD, language=None), "language"),
    Bad("language-int", _with(NEIGHBOURHOOD, language=1), "language"),
    Bad("share-phone-string", _with(NEIGHBOURHOOD, share_reporter_phone="yes"), "share_reporter_phone"),
    Bad("share-phone-int", _with(NEIGHBOURHOOD, share_reporter_phone=1), "share_reporter_phone"),
    Bad("share-phone-null", _with(NEIGHBOURHOOD, share_reporter_phone=None), "share_reporter_phone"),
    Bad("unknown-field", _with(NEIGHBOURHOOD, id=5), "id"),
    Bad("unknown-field-case", {"name": "Nieuwendam", "Name": "Nieuwendam"}, "Name"),
]


def _window(**fields: Any) -> dict[str, Any]:
    return {"days": ["mon"], "start": "08:00", "end": "18:00", **fields}


RESPONDER_CASES = [
    Bad("phone-missing", _without(RESPONDER, "phone"), "phone"),
    Bad("phone-hello", _with(RESPONDER, phone="hello"), "phone"),
    Bad("phone-empty", _with(RESPONDER, phone=""), "phone"),
    Bad("phone-null", _with(RESPONDER, phone=None), "phone"),
    Bad("phone-int", _with(RESPONDER, phone=612345678), "phone"),
    Bad("phone-too-short", _with(RESPONDER, phone="0612"), "phone"),
    Bad("phone-too-long", _with(RESPONDER, phone="0" * 10_000), "phone"),
    Bad("phone-list", _with(RESPONDER, phone=["0612345678"]), "phone"),
    Bad("name-missing", _without(RESPONDER, "name"), "name"),
    Bad("name-empty", _with(RESPONDER, name=""), "name"),
    Bad("name-too-long", _with(RESPONDER, name="x" * 101), "name"),
    Bad("role-empty", _with(RESPONDER, role=""), "role"),
    Bad("role-too-long", _with(RESPONDER, role="x" * 41), "role"),
    Bad("role-int", _with(RESPONDER, role=5), "role"),
    Bad("role-null", _with(RESPONDER, role=None), "role"),
    Bad("language-unknown", _with(RESPONDER, language="fr"), "language"),
    Bad("language-int", _with(RESPONDER, language=5), "language"),
    Bad("unknown-field", _with(RESPONDER, neighbourhood_id=2), "neighbourhood_id"),
    Bad("schedule-not-list", _with(RESPONDER, schedule="weekdays"), "schedule"),
    Bad("schedule-day", _with(RESPONDER, schedule=[_window(days=["maandag"])]), "schedule.0.days.0"),
    Bad("schedule-no-days", _with(RESPONDER, schedule=[_window(days=[])]), "schedule.0.days"),
    Bad("schedule-time", _with(RESPONDER, schedule=[_window(start="25:00")]), "schedule.0.start"),
    Bad("schedule-time-int", _with(RESPONDER, schedule=[_window(end=18)]), "schedule.0.end"),
    Bad(
        "schedule-missing-end",
        _with(RESPONDER, schedule=[{"days": ["mon"], "start": "08:00"}]),
        "schedule.0.end",
    ),
    Bad("schedule-unknown", _with(RESPONDER, schedule=[_window(zone="UTC")]), "schedule.0.zone"),
    Bad("name-control", _with(RESPONDER, name="Jan\x00sen"), "name"),
]

RESPONDER_PATCH_CASES = [
    Bad("name-null", {"name": None}, "name"),
    Bad("phone-hello", {"phone": "hello"}, "phone"),
    Bad("role-empty", {"role": ""}, "role"),
    Bad("schedule-day", {"schedule": [_window(days=["someday"])]}, "schedule.0.days.0"),
    Bad("unknown-field", {"neighbourhood_id": 2}, "neighbourhood_id"),
]

#: The number is the member: a new phone joins (and consents) anew.
MEMBER_PATCH_CASES = [
    Bad("language-null", {"language": None}, "language"),
    Bad("language-de", {"language": "de"}, "language"),
    Bad("role-null", {"role": None}, "role"),
    Bad("role-admin", {"role": "admin"}, "role"),
    Bad("share-name-string", {"share_name": "yes"}, "share_name"),
    Bad("name-empty", {"name": ""}, "name"),
    Bad("phone", {"phone": "+31612345678"}, "phone"),
    Bad("status", {"status": "active"}, "status"),
]

RESOLVE_CASES = [
    Bad("outcome-empty", {"outcome": ""}, "outcome"),
    Bad("outcome-too-long", {"outcome": "x" * 301}, "outcome"),
    Bad("outcome-int", {"outcome": 5}, "outcome"),
    Bad("outcome-control", {"outcome": "a\x00b"}, "outcome"),
    Bad("false-alarm-string", {"false_alarm": "yes"}, "false_alarm"),
    Bad("false-alarm-int", {"false_alarm": 1}, "false_alarm"),
    Bad("unknown-field", {"state": "resolved"}, "state"),
]

GROUP_CASES = [
    Bad("name-missing", _without(GROUP, "name"), "name"),
    Bad("name-empty", _with(GROUP, name=""), "name"),
    Bad("name-too-long", _with(GROUP, name="x" * 101), "name"),
    Bad("join-code-missing", _without(GROUP, "join_code"), "join_code"),
    Bad("join-code-space", _with(GROUP, join_code="a b"), "join_code"),
    Bad("join-code-short", _with(GROUP, join_code="x"), "join_code"),
    Bad("join-code-empty", _with(GROUP, join_code=""), "join_code"),
    Bad("join-code-blank", _with(GROUP, join_code="   "), "join_code"),
    Bad("join-code-too-long", _with(GROUP, join_code="X" * 21), "join_code"),
    Bad("join-code-dash", _with(GROUP, join_code="AB-C"), "join_code"),
    Bad("join-code-accent", _with(GROUP, join_code="ÄBC"), "join_code"),
    Bad("join-code-int", _with(GROUP, join_code=12345), "join_code"),
    Bad("join-code-null", _with(GROUP, join_code=None), "join_code"),
    Bad("join-policy-unknown", _with(GROUP, join_policy="closed"), "join_policy"),
    Bad("join-policy-null", _with(GROUP, join_policy=None), "join_policy"),
    Bad("join-policy-int", _with(GROUP, join_policy=1), "join_policy"),
    Bad("escalation-string", _with(GROUP, escalation="fast"), "escalation"),
    Bad("escalation-list", _with(GROUP, escalation=[]), "escalation"),
    Bad("escalation-null", _with(GROUP, escalation=None), "escalation"),
    Bad("escalation-unknown-field", _policy(threshold=3), "escalation.threshold"),
    Bad("threshold-zero", _policy(threshold_reporters=0), "escalation.threshold_reporters"),
    Bad("threshold-negative", _policy(threshold_reporters=-1), "escalation.threshold_reporters"),
    Bad("threshold-too-big", _policy(threshold_reporters=101), "escalation.threshold_reporters"),
    Bad("threshold-huge", _policy(threshold_reporters=HUGE), "escalation.threshold_reporters"),
    Bad("threshold-bool", _policy(threshold_reporters=True), "escalation.threshold_reporters"),
    Bad("threshold-string", _policy(threshold_reporters="3"), "escalation.threshold_reporters"),
    Bad("threshold-fraction", _policy(threshold_reporters=1.5), "escalation.threshold_reporters"),
    Bad("threshold-null", _policy(threshold_reporters=None), "escalation.threshold_reporters"),
    Bad("window-too-short", _policy(window_s=0), "escalation.window_s"),
    Bad("window-too-long", _policy(window_s=7 * 24 * 3600 + 1), "escalation.window_s"),
    Bad("window-string", _policy(window_s="600"), "escalation.window_s"),
    Bad("window-bool", _policy(window_s=True), "escalation.window_s"),
    Bad("window-huge", _policy(window_s=HUGE), "escalation.window_s"),
    Bad("window-nan", _policy(window_s=float("nan")), "escalation.window_s"),
    Bad("window-infinity", _policy(window_s=float("inf")), "escalation.window_s"),
    Bad("ack-timeout-zero", _policy(ack_timeout_s=0), "escalation.ack_timeout_s"),
    Bad("ack-timeout-string", _policy(ack_timeout_s="300"), "escalation.ack_timeout_s"),
    Bad("ack-timeout-bool", _policy(ack_timeout_s=False), "escalation.ack_timeout_s"),
    Bad("repeat-negative", _policy(repeat=-1), "escalation.repeat"),
    Bad("repeat-too-big", _policy(repeat=11), "escalation.repeat"),
    Bad("repeat-bool", _policy(repeat=True), "escalation.repeat"),
    Bad("repeat-string", _policy(repeat="1"), "escalation.repeat"),
    Bad("keywords-string", _policy(urgent_keywords="brand"), "escalation.urgent_keywords"),
    Bad("keywords-null", _policy(urgent_keywords=None), "escalation.urgent_keywords"),
    Bad(
        "keywords-too-many",
        _policy(urgent_keywords=[f"w{i}" for i in range(101)]),
        "escalation.urgent_keywords",
    ),
    Bad("keyword-empty", _policy(urgent_keywords=["brand", ""]), "escalation.urgent_keywords.1"),
    Bad("keyword-control", _policy(urgent_keywords=["brand", "a\x00b"]), "escalation.urgent_keywords"),
    Bad("keyword-too-long", _policy(urgent_keywords=["x" * 41]), "escalation.urgent_keywords.0"),
    Bad("keyword-int", _policy(urgent_keywords=[112]), "escalation.urgent_keywords.0"),
    Bad("keyword-null", _policy(urgent_keywords=[None]), "escalation.urgent_keywords.0"),
    Bad("chain-object", _policy(chain={}), "escalation.chain"),
    Bad("chain-string", _policy(chain="officer"), "escalation.chain"),
    Bad("chain-null", _policy(chain=None), "escalation.chain"),
    Bad("chain-too-long", _policy(chain=[_step()] * 11), "escalation.chain"),
    Bad("step-int", _policy(chain=[5]), "escalation.chain.0"),
    Bad("step-empty", _policy(chain=[{}]), "escalation.chain.0.responder_ids"),
    Bad("step-unknown-field", _policy(chain=[_step(delay=5)]), "escalation.chain.0.delay"),
    Bad("responders-int", _policy(chain=[_step(responder_ids=1)]), "escalation.chain.0.responder_ids"),
    Bad("responders-empty", _policy(chain=[_step(responder_ids=[])]), "escalation.chain.0.responder_ids"),
    Bad(
        "responders-too-many",
        _policy(chain=[_step(responder_ids=list(range(1, 12)))]),
        "escalation.chain.0.responder_ids",
    ),
    Bad("responder-zero", _policy(chain=[_step(responder_ids=[0])]), "escalation.chain.0.responder_ids.0"),
    Bad(
        "responder-string", _policy(chain=[_step(responder_ids=["1"])]), "escalation.chain.0.responder_ids.0"
    ),
    Bad("responder-bool", _policy(chain=[_step(responder_ids=[True])]), "escalation.chain.0.responder_ids.0"),
    Bad(
        "responder-huge",
        _policy(chain=[_step(responder_ids=[1, HUGE])]),
        "escalation.chain.0.responder_ids.1",
    ),
    Bad(
        "responder-object",
        _policy(chain=[_step(responder_ids=[{"id": 1}])]),
        "escalation.chain.0.responder_ids.0",
    ),
    Bad("step-timeout-too-short", _policy(chain=[_step(timeout_s=0)]), "escalation.chain.0.timeout_s"),
    Bad("step-timeout-string", _policy(chain=[_step(timeout_s="600")]), "escalation.chain.0.timeout_s"),
    Bad("step-timeout-null", _policy(chain=[_step(timeout_s=None)]), "escalation.chain.0.timeout_s"),
    Bad("step-timeout-huge", _policy(chain=[_step(timeout_s=HUGE)]), "escalation.chain.0.timeout_s"),
    Bad("second-step-timeout", _policy(chain=[_step(), _step(timeout_s=0)]), "escalation.chain.1.timeout_s"),
    Bad("responder-unknown", _policy(chain=[_step(responder_ids=[999_999])]), "escalation.chain"),
    Bad("unknown-field", _with(GROUP, members=[]), "members"),
]

PATCH_CASES = [
    Bad("name-null", {"name": None}, "name"),
    Bad("join-code-null", {"join_code": None}, "join_code"),
    Bad("join-policy-null", {"join_policy": None}, "join_policy"),
    Bad("escalation-null", {"escalation": None}, "escalation"),
    Bad("name-empty", {"name": ""}, "name"),
    Bad("name-int", {"name": 7}, "name"),
    Bad("join-code-space", {"join_code": "a b"}, "join_code"),
    Bad("join-code-short", {"join_code": "x"}, "join_code"),
    Bad("join-policy-unknown", {"join_policy": "closed"}, "join_policy"),
    Bad("escalation-string", {"escalation": "fast"}, "escalation"),
    Bad("window-string", {"escalation": {"window_s": "600"}}, "escalation.window_s"),
    Bad("repeat-bool", {"escalation": {"repeat": True}}, "escalation.repeat"),
    Bad("threshold-huge", {"escalation": {"threshold_reporters": HUGE}}, "escalation.threshold_reporters"),
    Bad("step-timeout", {"escalation": {"chain": [_step(timeout_s=0)]}}, "escalation.chain.0.timeout_s"),
    Bad("responder-unknown", {"escalation": {"chain": [_step(responder_ids=[999_999])]}}, "escalation.chain"),
    Bad("unknown-field", {"id": 3}, "id"),
    Bad("unknown-field-neighbourhood", {"neighbourhood_id": 2}, "neighbourhood_id"),
]

MEMBER_CASES = [
    Bad("phone-missing", {}, "phone"),
    Bad("phone-hello", {"phone": "hello"}, "phone"),
    Bad("phone-empty", {"phone": ""}, "phone"),
    Bad("phone-null", {"phone": None}, "phone"),
    Bad("phone-int", {"phone": 612345678}, "phone"),
    Bad("phone-partial", {"phone": "+31 6 1234"}, "phone"),
    Bad("phone-too-long", {"phone": "0" * 10_000}, "phone"),
    Bad("name-empty", _with(MEMBER, name=""), "name"),
    Bad("name-too-long", _with(MEMBER, name="x" * 101), "name"),
    Bad("name-int", _with(MEMBER, name=5), "name"),
    Bad("language-unknown", _with(MEMBER, language="de"), "language"),
    Bad("role-admin", _with(MEMBER, role="admin"), "role"),
    Bad("role-null", _with(MEMBER, role=None), "role"),
    Bad("role-int", _with(MEMBER, role=1), "role"),
    Bad("share-name-string", _with(MEMBER, share_name="yes"), "share_name"),
    Bad("share-name-int", _with(MEMBER, share_name=1), "share_name"),
    Bad("share-name-null", _with(MEMBER, share_name=None), "share_name"),
    Bad("unknown-field-status", _with(MEMBER, status="active"), "status"),
    Bad("unknown-field-group", _with(MEMBER, group_id=2), "group_id"),
]


def _source(**fields: Any) -> BodyOf:
    return lambda hood: {"role": "source", "group_id": hood.group_id, **fields}


TOKEN_CASES = [
    Bad("role-missing", {"group_id": 1}, "role"),
    Bad("role-admin", {"role": "admin"}, "role"),
    Bad("role-capitalised", {"role": "Coordinator", "neighbourhood_id": 1}, "role"),
    Bad("role-null", {"role": None}, "role"),
    Bad("role-int", {"role": 1}, "role"),
    Bad("neighbourhood-zero", _source(neighbourhood_id=0), "neighbourhood_id"),
    Bad("neighbourhood-negative", _source(neighbourhood_id=-1), "neighbourhood_id"),
    Bad("neighbourhood-string", _source(neighbourhood_id="1"), "neighbourhood_id"),
    Bad("neighbourhood-bool", _source(neighbourhood_id=True), "neighbourhood_id"),
    Bad("neighbourhood-huge", _source(neighbourhood_id=HUGE), "neighbourhood_id"),
    Bad("neighbourhood-fraction", _source(neighbourhood_id=1.5), "neighbourhood_id"),
    Bad("neighbourhood-list", _source(neighbourhood_id=[1]), "neighbourhood_id"),
    Bad("group-zero", {"role": "source", "group_id": 0}, "group_id"),
    Bad("group-string", {"role": "source", "group_id": "1"}, "group_id"),
    Bad("group-bool", {"role": "source", "group_id": False}, "group_id"),
    Bad("group-huge", {"role": "source", "group_id": HUGE}, "group_id"),
    Bad("label-too-long", _source(label="x" * 101), "label"),
    Bad("label-int", _source(label=5), "label"),
    Bad("unknown-field", _source(secret="an_mine"), "secret"),
    Bad("source-without-group", {"role": "source"}, "group_id"),
    Bad(
        "coordinator-with-group", lambda hood: {"role": "coordinator", "group_id": hood.group_id}, "group_id"
    ),
    Bad("coordinator-without-neighbourhood", {"role": "coordinator"}, "neighbourhood_id"),
    Bad("group-outside-neighbourhood", _source(neighbourhood_id=999_999), "neighbourhood_id"),
]


def _signal(**fields: Any) -> BodyOf:
    return lambda hood: {"group_id": hood.group_id, "text": "Verdachte man bij de stalling", **fields}


SIGNAL_CASES = [
    Bad("group-missing", {"text": "Verdacht"}, "group_id"),
    Bad("group-zero", {"group_id": 0, "text": "Verdacht"}, "group_id"),
    Bad("group-string", {"group_id": "1", "text": "Verdacht"}, "group_id"),
    Bad("group-bool", {"group_id": True, "text": "Verdacht"}, "group_id"),
    Bad("group-huge", {"group_id": HUGE, "text": "Verdacht"}, "group_id"),
    Bad("group-null", {"group_id": None, "text": "Verdacht"}, "group_id"),
    Bad("group-list", {"group_id": [1], "text": "Verdacht"}, "group_id"),
    Bad("group-absent", {"group_id": 999_999, "text": "Verdacht"}, "group_id", status=404),
    Bad("text-missing", lambda hood: {"group_id": hood.group_id}, "text"),
    Bad("text-empty", _signal(text=""), "text"),
    Bad("text-blank", _signal(text="   "), "text"),
    Bad("text-too-long", _signal(text="x" * 1001), "text"),
    Bad("text-int", _signal(text=112), "text"),
    Bad("text-null", _signal(text=None), "text"),
    Bad("phone-hello", _signal(reporter_phone="hello"), "reporter_phone"),
    Bad("phone-int", _signal(reporter_phone=612345678), "reporter_phone"),
    Bad("urgent-string", _signal(urgent="yes"), "urgent"),
    Bad("urgent-int", _signal(urgent=1), "urgent"),
    Bad("urgent-null", _signal(urgent=None), "urgent"),
    Bad("unknown-field", _signal(incident_id=1), "incident_id"),
]

BODY_TABLE: list[tuple[str, str, list[Bad]]] = [
    ("POST", "/api/v1/neighbourhoods", NEIGHBOURHOOD_CASES),
    ("POST", "/api/v1/neighbourhoods/{hood}/responders", RESPONDER_CASES),
    ("POST", "/api/v1/neighbourhoods/{hood}/groups", GROUP_CASES),
    ("PATCH", "/api/v1/groups/{group}", PATCH_CASES),
    ("POST", "/api/v1/groups/{group}/members", MEMBER_CASES),
    ("POST", "/api/v1/tokens", TOKEN_CASES),
    ("POST", "/api/v1/signals", SIGNAL_CASES),
    ("PATCH", "/api/v1/responders/{responder}", RESPONDER_PATCH_CASES),
    ("PATCH", "/api/v1/groups/{group}/members/{member}", MEMBER_PATCH_CASES),
    ("POST", "/api/v1/incidents/1/resolve", RESOLVE_CASES),
]
BODY_CASES = [
    pytest.param(method, path, case, id=f"{method} {path} {case.id}")
    for method, path, cases in BODY_TABLE
    for case in cases
]


def _url(path: str, hood: Hood) -> str:
    return path.format(hood=hood.id, group=hood.group_id, responder=hood.responder_id, member=hood.member_id)


def test_every_body_route_has_bad_cases() -> None:
    """Every route that takes a body has a row in the table of bad bodies."""
    with_body = {(route.method, _label_path(route.path)) for route in ROUTES if route.body is not None}
    in_table = {(method, re.sub(r"{\w+}|(?<=/)\d+(?=/|$)", "{id}", path)) for method, path, _ in BODY_TABLE}
    assert with_body == in_table


def _label_path(path: str) -> str:
    """`/api/v1/groups/{id:\\d+}` as `/api/v1/groups/{id}`."""
    return re.sub(r"{(\w+):[^}]+}", "{id}", path)


@pytest.mark.parametrize(("method", "path", "case"), BODY_CASES)
async def test_bad_body_is_rejected(client: Client, hood: Hood, method: str, path: str, case: Bad) -> None:
    """A bad body is a 400 (404 for an absent group) naming the offending field, and nothing is written."""
    before = await _audit_count(client)
    response = await client.request(method, _url(path, hood), json=case.make(hood), headers=ADMIN)
    _assert_error(response.status, await response.json(), case.status, case.field)
    assert await _audit_count(client) == before


AUDIT_CASES = [
    ("after=-1", "after"),
    ("after=abc", "after"),
    ("after=", "after"),
    ("after=1.5", "after"),
    (f"after={HUGE}", "after"),
    (f"after={TOO_LONG_DIGITS}", "after"),
    ("after=true", "after"),
    ("limit=0", "limit"),
    ("limit=-5", "limit"),
    ("limit=1001", "limit"),
    ("limit=abc", "limit"),
    ("limit=true", "limit"),
    (f"limit={HUGE}", "limit"),
    ("after=%ff", "after"),
    ("limit=%00", "limit"),
    ("after=0&foo=1", "foo"),
    ("After=1", "After"),
]


QUERY_CASES = [
    ("/api/v1/incidents?state=burning", "state"),
    ("/api/v1/incidents?group_id=abc", "group_id"),
    ("/api/v1/incidents?limit=201", "limit"),
    ("/api/v1/incidents?before=0", "before"),
    ("/api/v1/incidents?colour=red", "colour"),
    ("/api/v1/stats?neighbourhood_id=abc", "neighbourhood_id"),
    ("/api/v1/stats?neighbourhood_id=1&from=yesterday", "from"),
    ("/api/v1/stats?neighbourhood_id=1&to=2026-13-01", "to"),
]


@pytest.mark.parametrize(("url", "field"), QUERY_CASES, ids=[url for url, _ in QUERY_CASES])
async def test_bad_incident_and_stats_queries(client: Client, url: str, field: str) -> None:
    """Bad filters on the incident list and the statistics are a 400 naming the parameter."""
    response = await client.get(url, headers=ADMIN)
    _assert_error(response.status, await response.json(), 400, field)


@pytest.mark.parametrize(("query", "field"), AUDIT_CASES, ids=[query[:40] for query, _ in AUDIT_CASES])
async def test_bad_audit_query_is_rejected(client: Client, query: str, field: str) -> None:
    """A bad ?after= or ?limit= is a 400 naming the parameter."""
    response = await client.get(f"/api/v1/audit?{query}", headers=ADMIN)
    _assert_error(response.status, await response.json(), 400, field)


# Bodies that are not JSON objects.

WRITE_PATH = "/api/v1/neighbourhoods"


async def _raw(
    client: Client, body: Any, content_type: str | None, method: str = "POST", path: str = WRITE_PATH
) -> tuple[int, Any]:
    headers = dict(ADMIN)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.request(method, path, data=body, headers=headers)
    payload = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, payload


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "text/json",
        "application/jsonx",
        None,
    ],
)
async def test_non_json_content_type_is_415(client: Client, hood: Hood, content_type: str | None) -> None:
    """A body that is not declared as JSON is refused with 415, even when it would parse."""
    before = await _audit_count(client)
    for method, path in (("POST", WRITE_PATH), ("PATCH", f"/api/v1/groups/{hood.group_id}")):
        status, payload = await _raw(client, b'{"name": "Nieuwendam"}', content_type, method, path)
        _assert_error(status, payload, 415, None)
    assert await _audit_count(client) == before


async def test_a_body_its_encoding_does_not_decode_is_400(client: Client) -> None:
    """A body sent as gzip that is not gzip: a 400 saying so, not a 500."""
    headers = {**ADMIN, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await client.post(WRITE_PATH, data=b"garbage", headers=headers)
    _assert_error(response.status, await response.json(), 400, None)


async def test_a_token_of_undecodable_bytes_is_401(client: Client) -> None:
    """An Authorization header aiohttp cannot decode as UTF-8 is a wrong token, not a 500."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/v1/neighbourhoods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n")
    writer.write(b"Connection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ")


async def test_json_with_charset_is_accepted(client: Client) -> None:
    """`application/json; charset=utf-8` is JSON too."""
    status, payload = await _raw(client, b'{"name": "Nieuwendam"}', "application/json; charset=utf-8")
    assert status == 201, payload


INVALID_JSON = {
    "truncated": b'{"name": "Nieuwendam"',
    "single-quotes": b"{'name': 'Nieuwendam'}",
    "trailing-comma": b'{"name": "Nieuwendam",}',
    "trailing-garbage": b'{"name": "Nieuwendam"} x',
    "bare-word": b"Nieuwendam",
    "not-utf8": b'{"name": "\xff\xfe"}',
    "empty": b"",
    "deep-nesting": b"[" * 100_000,
    "number-too-long": b'{"name": ' + TOO_LONG_DIGITS.encode() + b"}",
}


@pytest.mark.parametrize("raw", list(INVALID_JSON.values()), ids=list(INVALID_JSON))
async def test_invalid_json_is_400(client: Client, raw: bytes) -> None:
    """A body that is not valid JSON is a 400 that names no field, and nothing is written."""
    before = await _audit_count(client)
    status, payload = await _raw(client, raw, "application/json")
    _assert_error(status, payload, 400, None)
    assert await _audit_count(client) == before


NOT_AN_OBJECT = {
    "array": b'[{"name": "Nieuwendam"}]',
    "empty-array": b"[]",
    "string": b'"Nieuwendam"',
    "number": b"5",
    "null": b"null",
    "true": b"true",
}


@pytest.mark.parametrize("raw", list(NOT_AN_OBJECT.values()), ids=list(NOT_AN_OBJECT))
async def test_json_that_is_not_an_object_is_400(client: Client, raw: bytes) -> None:
    """A JSON array, string, number or null body is a 400: bodies are objects."""
    before = await _audit_count(client)
    status, payload = await _raw(client, raw, "application/json")
    _assert_error(status, payload, 400, None)
    assert await _audit_count(client) == before


async def _chunks(total: int) -> AsyncIterator[bytes]:
    """A valid JSON body of `total` bytes, sent in chunks without a Content-Length."""
    head, tail = b'{"name": "', b'"}'
    yield head
    left = total - len(head) - len(tail)
    while left > 0:
        size = min(left, 64 * 1024)
        yield b"x" * size
        left -= size
    yield tail


@pytest.mark.parametrize(
    "make",
    [
        lambda: io.BytesIO(('{"name": "' + "x" * ONE_MIB + '"}').encode()),
        lambda: io.BytesIO(b"[" * (ONE_MIB + 1)),
        lambda: _chunks(ONE_MIB + 100),
    ],
    ids=["valid-json", "invalid-json", "chunked"],
)
async def test_body_over_one_mib_is_413(client: Client, make: Callable[[], Any]) -> None:
    """A body over 1 MiB is a JSON 413 (not a 400 or 500), with or without Content-Length."""
    before = await _audit_count(client)
    status, payload = await _raw(client, make(), "application/json")
    _assert_error(status, payload, 413, None)
    assert await _audit_count(client) == before


async def test_body_just_under_the_limit_is_parsed(client: Client) -> None:
    """A body just under 1 MiB is read and validated normally (here: the name is too long, 400)."""
    body = io.BytesIO(('{"name": "' + "x" * (ONE_MIB - 100) + '"}').encode())
    status, payload = await _raw(client, body, "application/json")
    _assert_error(status, payload, 400, "name")


# Paths and methods.


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/api/v1/nope",
        "/api/v2/neighbourhoods",
        "/api/v1/groups/abc",
        "/api/v1/groups/-1",
        "/api/v1/groups/1.5",
        "/api/v1/groups/1/nope",
        "/api/v1/neighbourhoods/1/",
        "/api/v1/groups/%00",
    ],
)
@pytest.mark.parametrize("headers", [ADMIN, {}], ids=["admin", "no-token"])
async def test_unknown_path_is_404_json(client: Client, path: str, headers: dict[str, str]) -> None:
    """A path no route matches is a JSON 404, with or without a token."""
    response = await client.get(path, headers=headers)
    _assert_error(response.status, await response.json(), 404, None)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/groups/1", {"GET", "PATCH", "DELETE"}),
        ("POST", "/api/v1/groups/1", {"GET", "PATCH", "DELETE"}),
        ("DELETE", "/api/v1/neighbourhoods", {"GET", "POST"}),
        ("PATCH", "/api/v1/neighbourhoods/1", {"GET"}),
        ("POST", "/api/v1/audit", {"GET"}),
        ("PUT", "/api/v1/tokens", {"GET", "POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
@pytest.mark.parametrize("headers", [ADMIN, {}], ids=["admin", "no-token"])
async def test_wrong_method_is_405_json(
    client: Client, method: str, path: str, allowed: set[str], headers: dict[str, str]
) -> None:
    """A known path with a method it does not take is a JSON 405 that lists the allowed methods."""
    response = await client.request(method, path, headers=headers, json={})
    _assert_error(response.status, await response.json(), 405, None)
    listed = {word.strip() for word in response.headers.get("Allow", "").split(",") if word.strip()}
    assert allowed <= listed, response.headers


VALID_BODIES: dict[type[Any], dict[str, Any]] = {
    NeighbourhoodIn: NEIGHBOURHOOD,
    ResponderIn: RESPONDER,
    GroupIn: GROUP,
    GroupPatch: {"name": "Renamed"},
    MemberIn: MEMBER,
    TokenIn: {"role": "coordinator", "neighbourhood_id": 1},
    SignalIn: {"group_id": 1, "text": "Verdachte man bij de stalling"},
    ResponderPatch: {"name": "Jansen"},
    MemberPatch: {"language": "en"},
    ResolveIn: {"outcome": "Opgelost"},
}
ID_ROUTES = [route for route in ROUTES if "{" in route.path]
BAD_IDS = {
    "zero": "0",
    "max-plus-one": str(2**63),
    "2^64": str(2**64),
    "2^70": str(HUGE),
    "5000-digits": TOO_LONG_DIGITS,
    "max-absent": str(2**63 - 1),
    "leading-zeros-absent": "000999999",
}


def test_every_body_model_has_a_valid_body() -> None:
    """The id tests below need a valid body for every route that takes one."""
    assert {route.body for route in ROUTES if route.body is not None} <= set(VALID_BODIES)


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda route: f"{route.method} {_label_path(route.path)}")
@pytest.mark.parametrize("bad_id", list(BAD_IDS.values()), ids=list(BAD_IDS))
async def test_ids_that_cannot_exist_are_404(client: Client, hood: Hood, route: Route, bad_id: str) -> None:
    """Ids out of range or absent in every position of a path are a JSON 404, never a 500."""
    body = VALID_BODIES[route.body] if route.body is not None else None
    names = re.findall(r"{(\w+):[^}]+}", route.path)
    real = {"id": str(hood.group_id), "member_id": str(hood.member_id)}
    for bad_name in names:
        # One bad id at a time; any other id in the path is real, so only the bad one can fail.
        path = route.path
        for name in names:
            value = bad_id if name == bad_name else real[name]
            path = re.sub(r"{" + name + r":[^}]+}", value, path)
        before = await _audit_count(client)
        response = await client.request(route.method, path, json=body, headers=ADMIN)
        _assert_error(response.status, await response.json(), 404, None)
        assert await _audit_count(client) == before


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there"], ids=["empty", "too-long", "tab"])
async def test_bad_idempotency_key_is_400(client: Client, hood: Hood, key: str) -> None:
    """An Idempotency-Key that is empty, too long or not printable is a 400 naming the header."""
    headers = {**ADMIN, "Idempotency-Key": key}
    body = {"group_id": hood.group_id, "text": "Verdachte man bij de stalling"}
    before = await _audit_count(client)
    response = await client.post("/api/v1/signals", json=body, headers=headers)
    _assert_error(response.status, await response.json(), 400, "Idempotency-Key")
    assert await _audit_count(client) == before


async def test_failed_writes_leave_state_unchanged(client: Client, hood: Hood) -> None:
    """Representative failures change neither the resources nor the audit log."""
    group_path = f"/api/v1/groups/{hood.group_id}"
    before = {
        "group": await call(client, "GET", group_path, expect=200),
        "groups": await call(client, "GET", f"/api/v1/neighbourhoods/{hood.id}/groups", expect=200),
        "members": await call(client, "GET", f"{group_path}/members", expect=200),
        "tokens": await call(client, "GET", "/api/v1/tokens", expect=200),
        "responders": await call(client, "GET", f"/api/v1/neighbourhoods/{hood.id}/responders", expect=200),
        "audit": await call(client, "GET", "/api/v1/audit?limit=1000", expect=200),
    }
    attempts = [
        ("PATCH", group_path, {"name": "Renamed", "join_code": None}),
        ("PATCH", group_path, {"name": "Renamed", "escalation": {"chain": [_step(responder_ids=[999_999])]}}),
        ("PATCH", group_path, {"name": "Renamed", "escalation": {"chain": [_step(), _step(timeout_s=0)]}}),
        ("POST", f"/api/v1/neighbourhoods/{hood.id}/groups", _policy(chain=[_step(responder_ids=[999_999])])),
        ("POST", f"/api/v1/neighbourhoods/{hood.id}/groups", {"name": "Zuid", "join_code": "MOLEN"}),
        ("POST", f"{group_path}/members", {"phone": "hello", "name": "Piet"}),
        ("POST", f"{group_path}/members", {"phone": "+31612345001"}),
        ("POST", f"/api/v1/neighbourhoods/{hood.id}/responders", {"name": "X", "phone": "+31612345901"}),
        ("POST", "/api/v1/tokens", {"role": "source", "group_id": hood.group_id, "label": "x" * 101}),
        ("POST", "/api/v1/tokens", {"role": "coordinator", "group_id": hood.group_id}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=ADMIN)
        assert 400 <= response.status < 500, (method, path, await response.text())
    after = {
        "group": await call(client, "GET", group_path, expect=200),
        "groups": await call(client, "GET", f"/api/v1/neighbourhoods/{hood.id}/groups", expect=200),
        "members": await call(client, "GET", f"{group_path}/members", expect=200),
        "tokens": await call(client, "GET", "/api/v1/tokens", expect=200),
        "responders": await call(client, "GET", f"/api/v1/neighbourhoods/{hood.id}/responders", expect=200),
        "audit": await call(client, "GET", "/api/v1/audit?limit=1000", expect=200),
    }
    assert after == before


async def test_a_client_that_leaves_mid_body_is_no_server_error(client: Client) -> None:
    """A client that closes before its body is in: counted as 499 (nginx's "client closed request"),
    not as a 500 with a traceback (which would page whoever watches the error rate)."""
    from alertnet import keys

    _, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = f"POST {WRITE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN['Authorization']}\r\n"
    writer.write(head.encode() + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.sleep(0.3)
    metrics = client.app[keys.metrics].render().decode()
    assert 'status="500"' not in metrics
    assert re.search(r'alertnet_http_requests_total\{[^}]*status="499"[^}]*\} 1\.0', metrics)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [(WRITE_PATH, "application/json"), ("/sms/inbound", "application/x-www-form-urlencoded")],
)
async def test_a_body_that_never_arrives_is_408(
    client: Client, monkeypatch: pytest.MonkeyPatch, path: str, content_type: str
) -> None:
    """A client that announces a body and trickles it (or stops sending) is answered 408 once the
    body's time is up, instead of holding a connection and a handler as long as it likes."""
    from alertnet import bodies

    monkeypatch.setattr(bodies, "BODY_TIMEOUT_S", 0.3)
    before = await call(client, "GET", "/api/v1/neighbourhoods", expect=200)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN['Authorization']}\r\n"
    head += f"X-Twilio-Signature: c2ln\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\n"
    writer.write(head.encode() + b"{")
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert await call(client, "GET", "/api/v1/neighbourhoods", expect=200) == before
