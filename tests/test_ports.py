"""The test harness's ports: children bind them a moment after they are handed out."""

from __future__ import annotations

import socket

from .ports import ephemeral_range, free_port


def test_ports_lie_below_the_kernels_ephemeral_range() -> None:
    # Outgoing connections take ports from that range at any time, so a port from it could be
    # gone by the time the child binds it.
    low, _high = ephemeral_range()
    assert all(free_port() < low for _ in range(50))


def test_a_port_is_handed_out_once_and_is_free() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))
