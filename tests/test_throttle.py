"""Request budgets: a burst at once, then a steady rate; a refused request costs nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertnet.throttle import Bucket, Budget, spend

BUDGET = Budget(burst=3, per_s=0.5)


def test_burst_then_wait() -> None:
    """Three at once; the fourth waits two seconds (one request per two seconds comes back)."""
    bucket = None
    for _ in range(3):
        bucket, wait = spend(BUDGET, bucket, 100.0)
        assert wait == 0
    bucket, wait = spend(BUDGET, bucket, 100.0)
    assert wait == pytest.approx(2.0)
    bucket, wait = spend(BUDGET, bucket, 101.0)
    assert wait == pytest.approx(1.0)
    _, wait = spend(BUDGET, bucket, 102.0)
    assert wait == 0


def test_refill_stops_at_the_burst() -> None:
    """An hour of quiet gives back the burst, not an hour's worth of requests."""
    bucket, _ = spend(BUDGET, None, 0.0)
    bucket, _ = spend(BUDGET, bucket, 3600.0)
    assert bucket.tokens == pytest.approx(BUDGET.burst - 1)


@given(st.lists(st.floats(min_value=0, max_value=10), max_size=200))
def test_never_more_than_burst_plus_rate(gaps: list[float]) -> None:
    """Over any run of requests, at most burst + per_s x elapsed are allowed."""
    bucket: Bucket | None = None
    now = allowed = 0.0
    for gap in gaps:
        now += gap
        bucket, wait = spend(BUDGET, bucket, now)
        allowed += wait == 0
    assert allowed <= BUDGET.burst + BUDGET.per_s * now + 1e-9
