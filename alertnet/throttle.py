"""A request budget per key (a token bucket): pure decisions over plain data; the caller keeps the buckets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    #: Requests that may come at once (the bucket's size) ...
    burst: int
    #: ... refilled at this many a second.
    per_s: float


@dataclass(frozen=True)
class Bucket:
    tokens: float
    #: When `tokens` was counted, in the caller's monotonic seconds.
    at: float


def spend(budget: Budget, bucket: Bucket | None, now: float) -> tuple[Bucket, float]:
    """Spend one request: the bucket after it, and 0 when allowed, else the seconds until a request
    is allowed again (a refused request spends nothing)."""
    if bucket is None:
        tokens = float(budget.burst)
    else:
        tokens = min(float(budget.burst), bucket.tokens + max(0.0, now - bucket.at) * budget.per_s)
    if tokens >= 1:
        return Bucket(tokens - 1, now), 0.0
    return Bucket(tokens, now), (1 - tokens) / budget.per_s
