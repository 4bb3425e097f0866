"""Free ports for the servers that tests and the benchmark start as processes of their own."""

from __future__ import annotations

import os
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


def _share() -> tuple[int, int]:
    """This pytest-xdist worker's index and the number of workers ((0, 1) outside xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return (int(worker.removeprefix("gw")), count) if worker.startswith("gw") else (0, 1)


def _candidates() -> list[int]:
    low, _high = ephemeral_range()
    index, workers = _share()
    # Each xdist worker has ports of its own: two workers never hand out the same one.
    ports = [port for port in range(_LOWEST, max(low, _LOWEST + 1_000)) if port % workers == index]
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
