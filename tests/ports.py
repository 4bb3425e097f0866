"""Free ports for the servers that tests and the benchmark start as processes of their own."""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: Used when the kernel's range cannot be read (Linux's default).
_EPHEMERAL_DEFAULT = (32768, 60999)
_LOWEST = 10_000


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections and `bind(0)` (ip_local_port_range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _EPHEMERAL_DEFAULT


def _candidates() -> list[int]:
    low, _high = ephemeral_range()
    ports = list(range(_LOWEST, max(low, _LOWEST + 1_000)))
    random.shuffle(ports)  # two test runs on one machine rarely try the same ports in turn
    return ports


_queue = _candidates()


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a child process to bind a moment later.

    Not from the ephemeral range: a port the kernel reports free there can be taken, between
    this check and the child's bind, by any outgoing connection (a database client, the fake
    Twilio's), and the child then fails with "address already in use". Below that range only an
    explicit bind takes a port, and this process hands each one out once.
    """
    while _queue:
        port = _queue.pop()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port left below the ephemeral range")
