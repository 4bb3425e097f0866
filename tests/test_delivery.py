"""Delivery rules: status moves forward only; retries back off, honour Retry-After, and end."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertnet.delivery import (
    MAX_ATTEMPTS,
    MAX_DELAY_S,
    VALIDITY_S,
    GiveUp,
    Purpose,
    Retry,
    after_failure,
    rank,
)


@pytest.mark.parametrize(
    ("current", "new", "moves"),
    [
        ("pending", "queued", True),
        ("queued", "sent", True),
        ("sent", "delivered", True),
        ("delivered", "sent", False),
        ("delivered", "queued", False),
        ("sent", "sent", False),
        ("sent", "undelivered", True),
        ("delivered", "failed", False),
        ("failed", "delivered", False),
    ],
)
def test_status_moves_forward_only(current: str, new: str, moves: bool) -> None:
    """Out-of-order and repeated callbacks never move a delivery back: the store moves one only to a
    higher rank (its SQL uses this table)."""
    assert (rank(new) > rank(current)) is moves


def test_permanent_errors_are_never_retried() -> None:
    """An invalid number or a carrier STOP ends at once."""
    assert after_failure(
        attempts=1, permanent=True, retry_after_s=None, jitter=0.5, expires_in_s=1800
    ) == GiveUp("permanent")


def test_transient_errors_end_after_max_attempts() -> None:
    """A provider that never recovers does not clog the workers forever."""
    assert isinstance(
        after_failure(attempts=MAX_ATTEMPTS, permanent=False, retry_after_s=None, jitter=0, expires_in_s=1e9),
        GiveUp,
    )


@given(st.lists(st.floats(0, 1, exclude_max=True), min_size=MAX_ATTEMPTS, max_size=MAX_ATTEMPTS))
def test_transient_errors_are_retried_until_the_message_expires(jitters: list[float]) -> None:
    """A provider down for good: the retries go on until the next one would come after the
    message's validity, and never past it (an outage of 9 minutes used to lose every alert)."""
    validity = VALIDITY_S[Purpose.fanout]
    elapsed, attempts = 0.0, 1
    while True:
        decision = after_failure(
            attempts=attempts,
            permanent=False,
            retry_after_s=None,
            jitter=jitters[attempts - 1],
            expires_in_s=validity - elapsed,
        )
        if isinstance(decision, GiveUp):
            break
        elapsed += decision.delay_s
        attempts += 1
    assert decision == GiveUp("expired")
    assert validity - MAX_DELAY_S <= elapsed < validity


@given(st.integers(1, MAX_ATTEMPTS - 1), st.floats(0, 1, exclude_max=True), st.none() | st.floats(0, 3600))
def test_backoff_bounded_and_honours_retry_after(
    attempts: int, jitter: float, retry_after: float | None
) -> None:
    """The delay grows with attempts, stays under the cap, and never undercuts Retry-After."""
    decision = after_failure(
        attempts=attempts, permanent=False, retry_after_s=retry_after, jitter=jitter, expires_in_s=1e9
    )
    assert isinstance(decision, Retry)
    assert decision.delay_s >= (retry_after or 0)
    assert decision.delay_s <= max(MAX_DELAY_S, retry_after or 0)
    assert decision.delay_s >= min(MAX_DELAY_S, 2 ** (attempts - 1)) / 2


def test_job_skip_reasons() -> None:
    """A queued message is not sent to someone no longer reachable, nor once its validity has passed."""
    from datetime import UTC, datetime, timedelta

    from alertnet.delivery import Purpose
    from alertnet.store.outbox import Job

    made = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    job = Job(1, 1, 1, "+31612345678", "x", 1, Purpose.fanout, False, made)
    assert job.skip_reason(made + timedelta(minutes=29)) is None
    assert job.skip_reason(made + timedelta(minutes=31)) == "expired"
    gone = Job(1, 1, 1, "+31612345678", "x", 1, Purpose.fanout, False, made, reachable=False)
    assert gone.skip_reason(made) == "not_reachable"
