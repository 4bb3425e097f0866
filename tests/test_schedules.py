"""On-duty hours: local time in the neighbourhood's zone, across midnight and daylight saving time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alertnet.schedules import DutyWindow, coverage_gaps, on_duty

AMS = "Europe/Amsterdam"
OFFICE = [DutyWindow(days=["mon", "tue", "wed", "thu", "fri"], start="08:00", end="18:00")]
NIGHTS = [DutyWindow(days=["fri", "sat"], start="22:00", end="06:00")]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 11, 23, 7, 0, tzinfo=UTC), True),  # Monday 08:00 CET (UTC+1)
        (datetime(2026, 11, 23, 6, 59, tzinfo=UTC), False),  # Monday 07:59 CET
        (datetime(2026, 7, 6, 6, 0, tzinfo=UTC), True),  # Monday 08:00 CEST (UTC+2)
        (datetime(2026, 7, 6, 16, 0, tzinfo=UTC), False),  # Monday 18:00 CEST
        (datetime(2026, 11, 28, 11, 0, tzinfo=UTC), False),  # Saturday
    ],
)
def test_office_hours_follow_local_time(utc: datetime, expected: bool) -> None:
    """08:00-18:00 weekdays means Amsterdam wall-clock time, in winter and in summer."""
    assert on_duty(OFFICE, AMS, utc) is expected


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 11, 27, 21, 30, tzinfo=UTC), True),  # Friday 22:30
        (datetime(2026, 11, 28, 4, 0, tzinfo=UTC), True),  # Saturday 05:00, Friday's night
        (datetime(2026, 11, 29, 4, 0, tzinfo=UTC), True),  # Sunday 05:00, Saturday's night
        (datetime(2026, 11, 30, 4, 0, tzinfo=UTC), False),  # Monday 05:00: no Sunday night shift
        (datetime(2026, 11, 27, 20, 59, tzinfo=UTC), False),  # Friday 21:59
    ],
)
def test_night_window_runs_past_midnight(utc: datetime, expected: bool) -> None:
    """22:00-06:00 on Friday covers Saturday early morning."""
    assert on_duty(NIGHTS, AMS, utc) is expected


def test_dst_change_night() -> None:
    """On the night the clocks go back (25 Oct 2026), 02:30 happens twice and is on duty both times."""
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    shift = [DutyWindow(days=["sat"], start="22:00", end="04:00")]
    assert on_duty(shift, AMS, first)
    assert on_duty(shift, AMS, second)


def test_no_schedule_means_always() -> None:
    """A responder without a schedule is always on duty."""
    assert on_duty(None, AMS, datetime(2026, 11, 28, 3, 0, tzinfo=UTC))


def test_coverage_gaps() -> None:
    """Office hours plus weekend nights leave the weekday nights and weekend days uncovered."""
    gaps = coverage_gaps([[OFFICE], [NIGHTS]])
    assert gaps[0] == {"from": "mon 00:00", "to": "mon 08:00"}
    assert {"from": "fri 18:00", "to": "fri 22:00"} in gaps
    assert {"from": "sat 06:00", "to": "sat 22:00"} in gaps
    assert gaps[-1] == {"from": "sun 06:00", "to": "mon 00:00"}


def test_anyone_always_on_duty_leaves_no_gap() -> None:
    """One responder without a schedule covers the whole week."""
    assert coverage_gaps([[OFFICE], [None]]) == []


def test_window_validation() -> None:
    """Days must be real days; 24:00 is accepted as the end of the day."""
    assert DutyWindow(days=["sun"], start="00:00", end="24:00").covers(6, datetime(2026, 1, 1, 23, 59).time())
    with pytest.raises(ValueError, match="days"):
        DutyWindow(days=["maandag"], start="08:00", end="18:00")  # type: ignore[list-item]


def test_window_round_trips_as_hh_mm() -> None:
    """Stored as HH:MM (24:00 for the end of the day) and read back unchanged."""
    window = DutyWindow(days=["mon"], start="08:30", end="24:00")
    stored = window.model_dump(mode="json")
    assert stored == {"days": ["mon"], "start": "08:30", "end": "24:00"}
    assert DutyWindow.model_validate(stored) == window
