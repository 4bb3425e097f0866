"""Responders' weekly on-duty hours in the neighbourhood's time zone, and the gaps in a chain (pure).

A window is local wall-clock time ("mon" 22:00 to 06:00 runs into Tuesday), so it follows
daylight saving time by construction: the UTC instant is converted with the zone's rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: Coverage is computed in slots of this many minutes over the week.
SLOT_MINUTES = 15
WEEK_SLOTS = 7 * 24 * 60 // SLOT_MINUTES
END_OF_DAY = time(23, 59, 59, 999999)


class DutyWindow(BaseModel):
    """On duty on these days from `start` to `end`, local time; an end before the start runs past midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: Annotated[list[Day], Field(min_length=1, max_length=7)]
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if isinstance(value, time):
            return value
        if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}(:00)?", value):
            raise ValueError("must be a local time as HH:MM, e.g. 08:00")
        return END_OF_DAY if value.startswith("24:00") else value

    @field_serializer("start", "end")
    def _as_hh_mm(self, value: time) -> str:
        return "24:00" if value == END_OF_DAY else f"{value:%H:%M}"

    def covers(self, day: int, at: time) -> bool:
        """Whether local weekday `day` (0 = Monday) at `at` falls in the window."""
        today, yesterday = DAYS[day] in self.days, DAYS[(day - 1) % 7] in self.days
        if self.start < self.end:
            return today and self.start <= at < self.end
        if self.start == self.end:
            return today
        return (today and at >= self.start) or (yesterday and at < self.end)


Schedule = Sequence[DutyWindow]


def on_duty(schedule: Schedule | None, zone: str, now: datetime) -> bool:
    """Whether a responder with this schedule is on duty at the instant `now`; no schedule: always."""
    if schedule is None:
        return True
    local = now.astimezone(ZoneInfo(zone))
    return any(window.covers(local.weekday(), local.time()) for window in schedule)


def _slot_time(slot: int) -> tuple[int, time]:
    minutes = slot * SLOT_MINUTES
    day, rest = divmod(minutes, 24 * 60)
    return day, time(rest // 60, rest % 60)


def coverage_gaps(steps: Iterable[Iterable[Schedule | None]]) -> list[dict[str, str]]:
    """Local week hours when no step of the chain has anyone on duty, as {day, start, end} ranges."""
    schedules = [schedule for step in steps for schedule in step]
    if any(schedule is None for schedule in schedules):
        return []
    covered = [
        any(window.covers(*_slot_time(slot)) for schedule in schedules for window in schedule or ())
        for slot in range(WEEK_SLOTS)
    ]
    gaps, start = [], None
    for slot, is_covered in enumerate([*covered, True]):
        if not is_covered and start is None:
            start = slot
        elif is_covered and start is not None:
            gaps.append(_range(start, slot))
            start = None
    return gaps


def _range(start: int, end: int) -> dict[str, str]:
    day, begins = _slot_time(start)
    end_day, ends = _slot_time(end % WEEK_SLOTS)
    return {
        "from": f"{DAYS[day]} {begins:%H:%M}",
        "to": f"{DAYS[end_day]} {ends:%H:%M}",
    }
