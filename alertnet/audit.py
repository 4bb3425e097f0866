"""The audit chain: canonical event content, its hash, and verification (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: The hash before the first event.
GENESIS = "0" * 64
#: The fields an event's hash covers, besides the previous hash.
HASHED_FIELDS = ("seq", "at", "actor", "actor_role", "type", "subject", "neighbourhood_id", "data")


def canonical(event: Mapping[str, Any]) -> str:
    """The event's content as one deterministic JSON text."""
    content = {name: event[name] for name in HASHED_FIELDS}
    at = content["at"]
    if isinstance(at, datetime):
        content["at"] = at.isoformat(timespec="microseconds")
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """The hash of an event linked to its predecessor."""
    return hashlib.sha256(f"{prev_hash}\n{canonical(event)}".encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    #: The first event that does not fit the chain: edited, or after a removed or moved one.
    bad_seq: int | None = None
    reason: str | None = None


class ChainChecker:
    """Checks events fed in seq order; keeps only the last hash, so any length fits.

    With a neighbourhood given, `count` counts only that neighbourhood's events: a
    coordinator learns that the whole chain holds, not how busy other neighbourhoods are.
    """

    def __init__(self, neighbourhood_id: int | None = None) -> None:
        self.scope = neighbourhood_id
        self.prev_hash = GENESIS
        self.prev_seq = 0
        self.count = 0
        self.failure: Verdict | None = None

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Check one event; False (and `failure` set) at the first break."""
        seq = event["seq"]
        if seq != self.prev_seq + 1:
            reason = f"expected seq {self.prev_seq + 1}: an event was removed or moved"
        elif event["prev_hash"] != self.prev_hash:
            reason = "does not link to the event before it"
        elif chain_hash(self.prev_hash, event) != event["hash"]:
            reason = "content does not match its hash: edited"
        else:
            self.prev_hash, self.prev_seq = event["hash"], seq
            self.count += self.scope is None or event["neighbourhood_id"] == self.scope
            return True
        self.failure = Verdict(ok=False, count=self.count, bad_seq=seq, reason=reason)
        return False

    def verdict(self) -> Verdict:
        return self.failure or Verdict(ok=True, count=self.count)


def verify(events: Iterable[Mapping[str, Any]]) -> Verdict:
    """Verify a whole chain given in seq order."""
    checker = ChainChecker()
    for event in events:
        if not checker.feed(event):
            break
    return checker.verdict()
