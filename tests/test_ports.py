"""The test harness's ports: children bind them a moment after they are handed out."""

from __future__ import annotations

import socket

import pytest

from . import ports
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


def test_each_xdist_worker_has_ports_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    shares = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        shares.append(set(ports._candidates()))
    assert shares[0]
    assert shares[1]
    assert not shares[0] & shares[1]
