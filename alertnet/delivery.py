"""Delivery states and retry decisions (pure): forward-only status, bounded backoff with jitter."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

#: A transient failure is retried while the message is valid (`VALIDITY_S`): a Twilio outage of
#: 20 minutes must not lose an alert. This cap only bounds a provider that fails in a loop.
MAX_ATTEMPTS = 40
BASE_DELAY_S = 1.0
MAX_DELAY_S = 300.0
#: Provider codes that mean the recipient opted out at the carrier.
OPT_OUT_CODES = frozenset({"21610"})


class Status(StrEnum):
    #: In the outbox, not yet taken by the provider.
    pending = "pending"
    #: Taken by the provider, waiting in its queue.
    queued = "queued"
    #: On its way to the carrier.
    sending = "sending"
    #: The carrier has it.
    sent = "sent"
    #: The handset has it.
    delivered = "delivered"
    #: The carrier could not deliver it.
    undelivered = "undelivered"
    #: The provider refused it, or we gave up retrying.
    failed = "failed"


class Purpose(StrEnum):
    #: A signal passed on to an ally.
    fanout = "fanout"
    #: A message to one person (join approval, welcome, notices).
    notice = "notice"
    #: News about an incident to those alerted: someone is going, it is resolved.
    update = "update"
    #: A responder called in.
    escalation = "escalation"


class Priority(IntEnum):
    """Lower goes first: a responder call never waits behind a bulk fan-out."""

    escalation = 0
    notice = 1
    update = 3
    fanout = 5


#: Seconds the carrier may hold each kind before it expires: a stale alert is worse than none.
VALIDITY_S = {Purpose.fanout: 1800, Purpose.notice: 3600, Purpose.update: 1800, Purpose.escalation: 1800}

_RANK = {
    Status.pending: 0,
    Status.queued: 1,
    Status.sending: 2,
    Status.sent: 3,
    Status.delivered: 4,
    Status.undelivered: 4,
    Status.failed: 4,
}
#: Twilio's words, and what they mean for us; unknown ones are ignored.
PROVIDER_STATUS = {
    "accepted": Status.queued,
    "scheduled": Status.queued,
    "queued": Status.queued,
    "sending": Status.sending,
    "sent": Status.sent,
    "delivered": Status.delivered,
    "read": Status.delivered,
    "undelivered": Status.undelivered,
    "failed": Status.failed,
    "canceled": Status.failed,
}


def rank(status: str) -> int:
    """How far a delivery got: a status moves it only to a higher rank (the store compares them in
    SQL), so a late "sent" never overwrites "delivered"."""
    return _RANK[Status(status)]


@dataclass(frozen=True)
class Retry:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


def after_failure(
    *, attempts: int, permanent: bool, retry_after_s: float | None, jitter: float, expires_in_s: float
) -> Retry | GiveUp:
    """What to do after a failed attempt; `jitter` in [0, 1) is drawn by the caller.

    Exponential backoff with equal jitter, never sooner than the provider's Retry-After, for as
    long as the message is still valid (`expires_in_s`: what is left of its validity).
    """
    if permanent:
        return GiveUp("permanent")
    if attempts >= MAX_ATTEMPTS:
        return GiveUp("too many attempts")
    backoff = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (attempts - 1))
    delay = max(backoff / 2 + backoff / 2 * jitter, retry_after_s or 0.0)
    if delay >= expires_in_s:
        return GiveUp("expired")
    return Retry(delay)
