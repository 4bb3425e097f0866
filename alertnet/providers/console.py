"""The console provider: prints each SMS readably, for demos and development."""

from __future__ import annotations

import sys
import uuid
from typing import TextIO

from .. import gsm
from ..phones import mask, mask_in_text
from . import Accepted, Outgoing


class ConsoleProvider:
    calls_back = False

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    async def send(self, message: Outgoing) -> Accepted:
        segments = gsm.segments(message.body)
        # A page carries the reporter's number for the responder; the terminal is a log, so masked.
        indented = "\n".join("  | " + line for line in mask_in_text(message.body).splitlines())
        self.stream.write(
            f"\n  SMS to {mask(message.to)} ({segments} segment{'s' * (segments > 1)})\n{indented}\n"
        )
        self.stream.flush()
        return Accepted(sid=f"CONSOLE{uuid.uuid4().hex}", status="delivered", segments=segments)

    async def close(self) -> None:
        return None
