"""`alertnet serve` with the intake stubbed out: what alertnet's HTTP shell costs per inbound SMS.

Every inbound SMS still goes through the middlewares, the form parsing, the signature check, the
group-commit queue (an empty transaction), the logs, the metrics and the TwiML reply; only
`inbound.receive` is replaced by an answer that a fanned-out signal would get. Its rate is the
most the ingest can reach on this machine, however fast the intake becomes
(`python -m bench.run --only ingest --db sqlite --shell-ceiling`). Not for production.
"""

from __future__ import annotations

import sys
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from alertnet import cli, inbound, messages

REPLY = messages.render("signal_joined", "nl", n=1, count=9)


async def receive(_conn: AsyncConnection, _sms: inbound.Sms, _now: datetime) -> inbound.Received:
    return inbound.Received(REPLY, True, "signal")


if __name__ == "__main__":
    inbound.receive = receive  # type: ignore[assignment]  # the one stub, by design
    sys.argv[0] = "alertnet"
    sys.exit(cli.main())
