"""The escalation policy of a group: when an incident escalates and whom it calls."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Whole words that escalate at once, Dutch and English, compared without accents.
DEFAULT_URGENT_KEYWORDS = (
    "112",
    "brand",
    "fire",
    "wapen",
    "weapon",
    "mes",
    "knife",
    "geweld",
    "violence",
    "inbraak",
    "burglary",
    "overval",
    "robbery",
    "pistool",
    "gun",
)

# Whole numbers are strict: JSON true or "600" is a client's mistake, not 1 or 600.
DbId = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]
Seconds = Annotated[int, Field(strict=True, ge=1, le=7 * 24 * 3600)]


class ChainStep(BaseModel):
    """One step of the chain: these responders, then wait this long for an OK."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    responder_ids: list[DbId] = Field(min_length=1, max_length=10)
    timeout_s: Seconds = 600


class EscalationPolicy(BaseModel):
    """Snapshotted onto each incident when it opens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold_reporters: int = Field(3, strict=True, ge=1, le=100)
    window_s: Seconds = 600
    ack_timeout_s: Seconds = 300
    urgent_keywords: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=lambda: list(DEFAULT_URGENT_KEYWORDS), max_length=100
    )
    chain: list[ChainStep] = Field(default_factory=list, max_length=10)
    repeat: int = Field(1, strict=True, ge=0, le=10)

    @field_validator("urgent_keywords")
    @classmethod
    def _lower(cls, words: list[str]) -> list[str]:
        if any(not word.isprintable() for word in words):
            raise ValueError("a keyword must not contain control characters")
        return [word.strip().lower() for word in words if word.strip()]

    def responder_ids(self) -> set[int]:
        return {rid for step in self.chain for rid in step.responder_ids}
