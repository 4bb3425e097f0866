"""SMS providers behind one small interface; vendor errors become `SendFailed`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..settings import Settings


@dataclass(frozen=True)
class Outgoing:
    """One SMS to hand to the provider."""

    to: str
    body: str
    #: Where the provider reports delivery; None when it does not call back.
    status_callback: str | None
    #: Seconds the carrier may hold the message before it expires unsent.
    validity_s: int


@dataclass(frozen=True)
class Accepted:
    """The provider took the message."""

    sid: str
    status: str
    segments: int


class SendFailed(Exception):
    """The provider did not take the message; the engine decides what happens next."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        retry_after_s: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.retry_after_s = retry_after_s
        #: No answer came (a time-out, a lost connection): the provider may have taken it anyway.
        self.uncertain = uncertain


class Provider(Protocol):
    #: Whether the provider posts status callbacks (so deliveries wait for "delivered").
    calls_back: bool

    async def send(self, message: Outgoing) -> Accepted: ...

    async def close(self) -> None: ...


def create(settings: Settings) -> Provider:
    """The configured provider. Call inside the running loop: HTTP sessions bind to it."""
    if settings.sms_provider == "twilio":
        from .twilio import TwilioProvider

        return TwilioProvider(settings)
    from .console import ConsoleProvider

    return ConsoleProvider()
