"""Response statistics (pure): per incident, and per week for the meeting with the buurtregisseur."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

Row = Mapping[str, Any]
DURATIONS = ("time_to_first_ally_ok_s", "time_to_responder_ok_s", "time_to_resolve_s")


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 1)


def incident_stats(incident: Row, answers: Sequence[Row], alerted: int) -> dict[str, Any]:
    """Time to the first ally's OK and the responder's OK (from escalation), time to resolve, who answered."""
    first_ally = min((a["at"] for a in answers if a["kind"] == "ally_ack"), default=None)
    first_responder = min((a["at"] for a in answers if a["kind"] == "responder_ack"), default=None)
    answered = {(a["member_id"], a["responder_id"]) for a in answers if a["kind"] != "resolve"}
    return {
        "time_to_first_ally_ok_s": _seconds(incident["opened_at"], first_ally),
        "time_to_responder_ok_s": _seconds(incident["escalated_at"], first_responder),
        "time_to_resolve_s": _seconds(incident["opened_at"], incident["resolved_at"]),
        "alerted": alerted,
        "answered": len(answered),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


def week_of(moment: datetime, zone: str) -> str:
    """The ISO week, in the neighbourhood's zone: "2026-W48"."""
    year, week, _ = moment.astimezone(ZoneInfo(zone)).isocalendar()
    return f"{year}-W{week:02d}"


def weekly(
    incidents: Iterable[tuple[Row, Mapping[str, Any]]], segments: Iterable[tuple[datetime, int]], zone: str
) -> list[dict[str, Any]]:
    """Per ISO week: incidents, escalations by trigger, medians and 90th percentiles, SMS segments."""
    weeks: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "incidents": 0,
            "false_alarms": 0,
            "escalations": Counter(),
            "sms_segments": 0,
            **{name: [] for name in DURATIONS},
        }
    )
    for incident, stats in incidents:
        week = weeks[week_of(incident["opened_at"], zone)]
        week["incidents"] += 1
        week["false_alarms"] += bool(incident["false_alarm"])
        if incident["escalation_trigger"]:
            week["escalations"][incident["escalation_trigger"]] += 1
        for name in DURATIONS:
            if stats[name] is not None:
                week[name].append(stats[name])
    for at, count in segments:
        weeks[week_of(at, zone)]["sms_segments"] += count
    return [_summary(name, data) for name, data in sorted(weeks.items())]


def _summary(week: str, data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "week": week,
        "incidents": data["incidents"],
        "false_alarms": data["false_alarms"],
        "escalations": dict(data["escalations"]),
        "sms_segments": data["sms_segments"],
    }
    for name in DURATIONS:
        values = data[name]
        result[name] = {"median": percentile(values, 50), "p90": percentile(values, 90), "count": len(values)}
    return result


def utc_bounds(start: date | None, end: date | None, zone: str) -> tuple[datetime | None, datetime | None]:
    """The neighbourhood's days `start` to `end` (both included; None: open) as UTC instants,
    from the first one's local midnight up to, not including, the midnight after the last."""
    local = ZoneInfo(zone)
    since = None if start is None else datetime.combine(start, time(), local).astimezone(UTC)
    until = None if end is None else datetime.combine(end + timedelta(days=1), time(), local).astimezone(UTC)
    return since, until
