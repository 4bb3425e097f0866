"""The audit chain: canonical event content, its hash, and verification (pure)."""

from __future__ import annotations

import hashlib
import json
import re
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


_ANCHOR = re.compile(r"([1-9][0-9]{0,18}):([0-9a-f]{64})")


@dataclass(frozen=True)
class Anchor:
    """One event's seq and hash, noted down outside the database.

    The chain alone cannot show that its newest events were removed, or that someone with write
    access rewrote it and recomputed every hash. An anchor can: each hash covers all before it, so
    a later verify that still finds this seq with this hash proves the chain up to it unchanged.
    """

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        match = _ANCHOR.fullmatch(text.strip().lower())
        if match is None:
            raise ValueError("an anchor is SEQ:HASH as verify prints it: a seq, a colon, 64 hex digits")
        return cls(int(match[1]), match[2])

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    #: The first event that does not fit the chain: edited, or after a removed or moved one.
    bad_seq: int | None = None
    reason: str | None = None
    #: The newest event checked (in scope): the anchor to note down for a later verify.
    head: Anchor | None = None
    #: Whether the events before `bad_seq` can be trusted: not when the anchor was not found.
    intact_before: bool = True


class ChainChecker:
    """Checks events fed in seq order; keeps only the last hash, so any length fits.

    With a neighbourhood given, `count` counts only that neighbourhood's events, `head` is its
    newest, and an anchor must be one of its events: a coordinator learns that the whole chain
    holds, not how busy other neighbourhoods are nor which of their events exist.
    """

    def __init__(self, neighbourhood_id: int | None = None, anchor: Anchor | None = None) -> None:
        self.scope = neighbourhood_id
        self.anchor = anchor
        self.anchor_found = False
        self.prev_hash = GENESIS
        self.prev_seq = 0
        self.count = 0
        self.head: Anchor | None = None
        self.failure: Verdict | None = None

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Check one event; False (and `failure` set) at the first break."""
        seq = event["seq"]
        mine = self.scope is None or event["neighbourhood_id"] == self.scope
        if seq != self.prev_seq + 1:
            reason = f"expected seq {self.prev_seq + 1}: an event was removed or moved"
        elif event["prev_hash"] != self.prev_hash:
            reason = "does not link to the event before it"
        elif chain_hash(self.prev_hash, event) != event["hash"]:
            reason = "content does not match its hash: edited"
        elif (
            mine and self.anchor is not None and seq == self.anchor.seq and event["hash"] != self.anchor.hash
        ):
            self.failure = Verdict(
                ok=False,
                count=self.count,
                bad_seq=seq,
                reason="does not match the anchor noted down: the chain was rewritten up to here",
                head=self.head,
                intact_before=False,
            )
            return False
        else:
            self.prev_hash, self.prev_seq = event["hash"], seq
            if mine:
                self.count += 1
                self.head = Anchor(seq, event["hash"])
                self.anchor_found |= self.anchor is not None and seq == self.anchor.seq
            return True
        self.failure = Verdict(ok=False, count=self.count, bad_seq=seq, reason=reason, head=self.head)
        return False

    def verdict(self) -> Verdict:
        if self.failure is not None:
            return self.failure
        if self.anchor is not None and not self.anchor_found:
            # Scoped, an event of another neighbourhood and no event at all read the same.
            reason = (
                f"missing: the chain ends at seq {self.prev_seq}, so newer events were removed"
                if self.scope is None
                else "missing: no event of this neighbourhood has this seq; it was removed, with "
                "every event after it, or it was never this neighbourhood's"
            )
            return Verdict(
                ok=False,
                count=self.count,
                bad_seq=self.anchor.seq,
                reason=reason,
                head=self.head,
                intact_before=False,
            )
        return Verdict(ok=True, count=self.count, head=self.head)


def verify(events: Iterable[Mapping[str, Any]], anchor: Anchor | None = None) -> Verdict:
    """Verify a whole chain given in seq order (and that it holds the anchor, if given)."""
    checker = ChainChecker(anchor=anchor)
    for event in events:
        if not checker.feed(event):
            break
    return checker.verdict()
