"""Who receives what (pure): never the sender, never anyone who opted out, nobody twice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ACTIVE = "active"


def allies(members: Iterable[Mapping[str, Any]], sender_phone: str | None) -> list[Mapping[str, Any]]:
    """The members a signal goes to: active, not the sender, one per phone number."""
    seen = {sender_phone} if sender_phone else set()
    chosen = []
    for member in members:
        if member["status"] == ACTIVE and member["phone"] not in seen:
            seen.add(member["phone"])
            chosen.append(member)
    return chosen


def coordinators(members: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [m for m in members if m["status"] == ACTIVE and m["role"] == "coordinator"]
