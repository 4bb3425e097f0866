"""A group's past, written straight into its SQLite database: years of resolved incidents."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta


def add_history(database: str, join_code: str, incidents: int, *, years: float = 1.0) -> str:
    """`incidents` resolved incidents of the group, numbered on from its own, spread over the past
    `years`: in each, every member signalled once and the others got it, and one answered OK.
    Returns what the database then holds."""
    connection = sqlite3.connect(database)
    try:
        group_id, neighbourhood_id, last = connection.execute(
            "SELECT groups.id, groups.neighbourhood_id, coalesce(max(incidents.number), 0) FROM groups"
            " LEFT JOIN incidents ON incidents.group_id = groups.id WHERE groups.join_code = ?",
            (join_code,),
        ).fetchone()
        members = [
            row[0] for row in connection.execute("SELECT id FROM members WHERE group_id = ?", (group_id,))
        ]
        start = datetime.now(UTC) - timedelta(days=365 * years)
        every = timedelta(days=365 * years) / incidents
        with connection:
            for number in range(last + 1, last + incidents + 1):
                # As alertnet stores a time on SQLite: naive UTC text.
                at = (start + every * (number - last)).replace(tzinfo=None).isoformat(" ", "microseconds")
                incident = connection.execute(
                    "INSERT INTO incidents (group_id, number, state, policy, opened_at, last_signal_at,"
                    " resolved_at, reporters, urgent, version, false_alarm, resolution)"
                    " VALUES (?, ?, 'resolved', '{}', ?, ?, ?, 1, 0, 0, 0, 'klaar')",
                    (group_id, number, at, at, at),
                ).lastrowid
                for member in members:
                    connection.execute(
                        "INSERT INTO signals (group_id, incident_id, member_id, text, channel, urgent,"
                        " received_at) VALUES (?, ?, ?, 'Verdachte persoon', 'sms', 0, ?)",
                        (group_id, incident, member, at),
                    )
                    connection.execute(
                        "INSERT INTO deliveries (incident_id, group_id, recipient_phone, member_id, purpose,"
                        " body, segments, status, attempts, created_at, updated_at)"
                        " SELECT ?, ?, phone, id, 'fanout', 'Buurtalarm', 1, 'delivered', 1, ?, ?"
                        " FROM members WHERE group_id = ? AND id != ?",
                        (incident, group_id, at, at, group_id, member),
                    )
                connection.execute(
                    "INSERT INTO answers (incident_id, member_id, kind, at) VALUES (?, ?, 'ally_ack', ?)",
                    (incident, members[number % len(members)], at),
                )
                # Its audit trail (the chain's hashes are not made: nothing here verifies it).
                for kind in ("incident.opened", *["signal.received"] * len(members), "incident.resolved"):
                    connection.execute(
                        "INSERT INTO audit_events (at, actor, actor_role, type, subject, neighbourhood_id,"
                        " data, prev_hash, hash) VALUES (?, 'system', 'system', ?, ?, ?, '{}', '', '')",
                        (at, kind, f"incident:{incident}", neighbourhood_id),
                    )
        counts = [
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("incidents", "signals", "deliveries", "audit_events")
        ]
    finally:
        connection.close()
    return "{:,} incidents, {:,} signals, {:,} messages, {:,} audit events".format(*counts)
