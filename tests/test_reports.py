"""Response statistics: per incident and per week, as the neighbourhood brings them to its meeting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from alertnet import reports

T0 = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def _incident(**values: object) -> dict[str, object]:
    base = {
        "opened_at": T0,
        "escalated_at": None,
        "resolved_at": None,
        "false_alarm": False,
        "escalation_trigger": None,
    }
    return base | values


def test_incident_stats() -> None:
    """Times run from opening (ally OK, resolve) and from escalation (responder OK); answerers once."""
    incident = _incident(escalated_at=T0 + timedelta(seconds=60), resolved_at=T0 + timedelta(minutes=30))
    answers = [
        {"kind": "ally_ack", "at": T0 + timedelta(seconds=45), "member_id": 1, "responder_id": None},
        {"kind": "ally_ack", "at": T0 + timedelta(seconds=90), "member_id": 2, "responder_id": None},
        {"kind": "ally_ack", "at": T0 + timedelta(seconds=95), "member_id": 2, "responder_id": None},
        {"kind": "responder_ack", "at": T0 + timedelta(seconds=180), "member_id": None, "responder_id": 7},
        {"kind": "resolve", "at": T0 + timedelta(minutes=30), "member_id": None, "responder_id": 7},
    ]
    assert reports.incident_stats(incident, answers, alerted=12) == {
        "time_to_first_ally_ok_s": 45.0,
        "time_to_responder_ok_s": 120.0,
        "time_to_resolve_s": 1800.0,
        "alerted": 12,
        "answered": 3,
    }


def test_unanswered_incident_has_no_times() -> None:
    """Nothing answered yet: the times are null, not zero."""
    stats = reports.incident_stats(_incident(), [], alerted=3)
    assert stats["time_to_first_ally_ok_s"] is None
    assert stats["answered"] == 0


@pytest.mark.parametrize(("q", "expected"), [(50, 3.0), (90, 4.6), (0, 1.0), (100, 5.0)])
def test_percentile(q: float, expected: float) -> None:
    """Linear interpolation between ranks."""
    assert reports.percentile([5, 1, 3, 2, 4], q) == expected


def test_weekly_groups_by_local_iso_week() -> None:
    """Sunday 23:30 in Amsterdam is still that week, though it is Sunday 22:30 UTC."""
    sunday_night = datetime(2026, 11, 29, 22, 30, tzinfo=UTC)  # Sunday 23:30 CET, week 48
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # week 49
    rows = [
        (
            _incident(opened_at=sunday_night, escalation_trigger="urgent"),
            {"time_to_first_ally_ok_s": 30.0, "time_to_responder_ok_s": None, "time_to_resolve_s": 600.0},
        ),
        (
            _incident(opened_at=monday, false_alarm=True),
            {"time_to_first_ally_ok_s": 90.0, "time_to_responder_ok_s": None, "time_to_resolve_s": None},
        ),
    ]
    weeks = reports.weekly(rows, [(sunday_night, 4), (monday, 2), (monday, 1)], "Europe/Amsterdam")
    assert [w["week"] for w in weeks] == ["2026-W48", "2026-W49"]
    assert weeks[0]["escalations"] == {"urgent": 1}
    assert weeks[0]["time_to_first_ally_ok_s"] == {"median": 30.0, "p90": 30.0, "count": 1}
    assert weeks[1]["false_alarms"] == 1
    assert (weeks[0]["sms_segments"], weeks[1]["sms_segments"]) == (4, 3)


def test_utc_bounds_are_the_neighbourhoods_midnights() -> None:
    """Local days to UTC: winter (UTC+1), summer (UTC+2), the 23-hour day of the change, open ends."""
    amsterdam = "Europe/Amsterdam"
    assert reports.utc_bounds(date(2026, 11, 30), date(2026, 11, 30), amsterdam) == (
        datetime(2026, 11, 29, 23, tzinfo=UTC),
        datetime(2026, 11, 30, 23, tzinfo=UTC),
    )
    assert reports.utc_bounds(date(2026, 7, 1), None, amsterdam) == (
        datetime(2026, 6, 30, 22, tzinfo=UTC),
        None,
    )
    since, until = reports.utc_bounds(date(2026, 3, 29), date(2026, 3, 29), amsterdam)
    assert since is not None
    assert until is not None
    assert until - since == timedelta(hours=23)
    assert reports.utc_bounds(None, None, amsterdam) == (None, None)
