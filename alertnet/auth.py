"""Tokens and scopes: who is asking, and which neighbourhood they may see."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from .errors import NotFound

TOKEN_PREFIX = "an_"


class Role(StrEnum):
    #: Runs the deployment; sees every neighbourhood.
    admin = "admin"
    #: A trekker: runs the groups of one neighbourhood.
    coordinator = "coordinator"
    #: An app or device that posts signals to one group.
    source = "source"


@dataclass(frozen=True)
class Principal:
    """The holder of a valid token."""

    #: "bootstrap" for ALERTNET_ADMIN_TOKEN, "cli" for the command line, else the token row id.
    token_id: str
    role: Role
    neighbourhood_id: int | None = None
    group_id: int | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return self.token_id if self.token_id in ("bootstrap", "cli") else f"token:{self.token_id}"

    def sees(self, neighbourhood_id: int) -> bool:
        return self.role == Role.admin or self.neighbourhood_id == neighbourhood_id

    def require(self, neighbourhood_id: int, what: str) -> None:
        """Out of scope looks exactly like absent: no route tells a stranger what exists."""
        if not self.sees(neighbourhood_id):
            raise NotFound(f"no such {what}")


@dataclass(frozen=True)
class Actor:
    """Someone acting without a token, as the audit log names them."""

    actor: str
    role: str


#: Timers, workers and other decisions the service takes itself.
SYSTEM = Actor("system", "system")
#: The SMS provider, reporting what the carrier said.
PROVIDER = Actor("provider", "provider")


def resident(member_id: int, role: str) -> Actor:
    """A member acting by SMS; the audit names the member, never the number."""
    return Actor(f"member:{member_id}", role)


def stranger() -> Actor:
    return Actor("unknown", "unknown")


BOOTSTRAP = Principal(token_id="bootstrap", role=Role.admin)
CLI = Principal(token_id="cli", role=Role.admin)


def new_secret() -> str:
    """A fresh token secret, shown once."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the database keeps. Secrets are 256 random bits: a plain hash cannot be reversed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())
