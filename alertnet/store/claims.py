"""Claiming due rows of a work table (outbox jobs, timers) for one worker, under a lease."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def picked(table: sa.Table, due: sa.Select[Any]) -> sa.ColumnElement[bool]:
    """The rows `due` picks (with its LIMIT and FOR UPDATE SKIP LOCKED), picked once.

    As a plain `IN (subquery)` PostgreSQL may plan the subquery as the inner side of a nested loop
    and run it again for each candidate row, each run locking more rows: a claim could take more
    than its LIMIT. A MATERIALIZED CTE runs once, whatever the plan (SQLite ignores the locking).
    """
    chosen = due.cte(f"{table.name}_due").prefix_with("MATERIALIZED")
    return table.c.id.in_(sa.select(chosen.c.id))
