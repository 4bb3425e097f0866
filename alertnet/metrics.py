"""Prometheus metrics, one registry per application."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "alertnet_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "alertnet_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

        self.sms = Counter(
            "alertnet_sms",
            "Outbound SMS attempts by purpose and result.",
            ["purpose", "result"],
            registry=self.registry,
        )
        self.segments = Counter(
            "alertnet_sms_segments",
            "SMS segments handed to the provider.",
            ["purpose"],
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "alertnet_sms_send_seconds",
            "Time for the provider to take one SMS.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
            registry=self.registry,
        )
        self.possible_duplicates = Counter(
            "alertnet_sms_possible_duplicates",
            "Sends retried after a crash lost the previous attempt's outcome (each may be a duplicate).",
            registry=self.registry,
        )
        self.inbound = Counter(
            "alertnet_sms_inbound",
            "Inbound SMS by command and outcome.",
            ["command", "outcome"],
            registry=self.registry,
        )

        self.units_per_transaction = Histogram(
            "alertnet_db_units_per_transaction",
            "Inbound SMS and status callbacks that shared one write transaction (group commit, SQLite).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )

        self.timer_lateness = Histogram(
            "alertnet_timer_lateness_seconds",
            "How late escalation timers fire after their due time.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
            registry=self.registry,
        )

        # Read from the database at each scrape, so the same in every process: alert on their max.
        self.outbox_jobs = Gauge(
            "alertnet_outbox_jobs",
            "Messages waiting in the outbox, due or retried later (the whole database).",
            registry=self.registry,
        )
        self.outbox_overdue = Gauge(
            "alertnet_outbox_overdue_seconds",
            "How long the due message that has waited longest has waited (the whole database; 0: none).",
            registry=self.registry,
        )
        self.timers_overdue = Gauge(
            "alertnet_timers_overdue_seconds",
            "How long the most overdue escalation timer has been due and not fired (0: none).",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def backlog(self, jobs: float, job_waited_s: float, timer_waited_s: float) -> None:
        self.outbox_jobs.set(jobs)
        self.outbox_overdue.set(job_waited_s)
        self.timers_overdue.set(timer_waited_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
