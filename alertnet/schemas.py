"""Request and response bodies of the HTTP API; the OpenAPI document is built from them."""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from . import audit, phones
from .auth import Role
from .incidents import State
from .policy import DbId, EscalationPolicy
from .schedules import DutyWindow

Language = Literal["nl", "en"]


def _printable(value: str) -> str:
    """No control characters (PostgreSQL refuses NUL in text; none belongs in a name or an SMS)."""
    if any(unicodedata.category(char) == "Cc" and char not in "\n\t" for char in value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]
Text = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_printable)]
Label = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_printable)]
_JOIN_CODE = re.compile(r"^[A-Z0-9]{3,20}$")


@functools.cache
def _zones() -> frozenset[str]:
    """IANA zone names; not "localtime" (whatever the server's zone is) nor "Factory" (no zone)."""
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


class JoinPolicy(StrEnum):
    #: A coordinator approves each resident who joins by SMS.
    approval = "approval"
    #: Anyone who texts the join code (and accepts the rules) is in.
    open = "open"


class MemberRole(StrEnum):
    #: A resident who sends and receives signals.
    ally = "ally"
    #: A trekker: an ally who also approves joins and may resolve incidents.
    coordinator = "coordinator"


class MemberStatus(StrEnum):
    #: Joined by SMS, waiting for consent or a coordinator's approval.
    pending = "pending"
    #: Sends and receives signals.
    active = "active"
    #: Texted STOP (or the carrier said so): receives nothing until START.
    opted_out = "opted_out"


def _phone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a phone number as text, e.g. +31612345678")
    try:
        return phones.normalize(value)
    except phones.InvalidPhone as exc:
        raise ValueError(f"{exc}, e.g. +31612345678 or 0612345678") from exc


def _join_code(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    code = value.strip().upper()
    if not _JOIN_CODE.fullmatch(code):
        raise ValueError("must be 3 to 20 letters or digits, one word that residents can text")
    return code


Phone = Annotated[str, BeforeValidator(_phone)]
JoinCode = Annotated[str, BeforeValidator(_join_code)]


class Body(BaseModel):
    """A request body: unknown fields are an error, text is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NeighbourhoodIn(Body):
    name: Name
    timezone: str = "Europe/Amsterdam"
    language: Language = "nl"
    share_reporter_phone: bool = Field(True, strict=True)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError("must be an IANA time zone such as Europe/Amsterdam")
        return value


class NeighbourhoodOut(Out):
    id: int
    name: str
    timezone: str
    language: str
    share_reporter_phone: bool
    created_at: datetime


class ResponderIn(Body):
    name: Name
    phone: Phone
    role: Label = "buurtregisseur"
    language: Language | None = None
    schedule: list[DutyWindow] | None = Field(
        None, max_length=50, description="weekly on-duty hours in the neighbourhood's time zone; null: always"
    )


class ResponderPatch(Body):
    name: Name | None = None
    phone: Phone | None = None
    role: Label | None = None
    language: Language | None = None
    schedule: list[DutyWindow] | None = Field(None, max_length=50, description="null: always on duty")


class ResponderOut(Out):
    id: int
    neighbourhood_id: int
    name: str
    phone: str
    role: str
    language: str
    schedule: list[DutyWindow] | None
    opted_out_at: datetime | None = Field(
        None, description="when they texted STOP: chains skip them until they text START"
    )
    created_at: datetime


class GroupIn(Body):
    name: Name
    join_code: JoinCode
    join_policy: JoinPolicy = JoinPolicy.approval
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)


class GroupPatch(Body):
    name: Name | None = None
    join_code: JoinCode | None = None
    join_policy: JoinPolicy | None = None
    escalation: EscalationPolicy | None = None


class GroupOut(Out):
    id: int
    neighbourhood_id: int
    name: str
    join_code: str
    join_policy: JoinPolicy
    escalation: EscalationPolicy
    members: dict[str, int] = Field(description="member counts by status")
    coverage_gaps: list[dict[str, str]] = Field(
        description="local week hours when no step of the chain has a responder on duty"
    )
    created_at: datetime


class MemberIn(Body):
    phone: Phone
    name: Name | None = None
    language: Language | None = None
    role: MemberRole = MemberRole.ally
    share_name: bool = Field(
        False, strict=True, description="allies see the first name on this member's signals"
    )


class MemberPatch(Body):
    """What a coordinator may change about a member; the number is the member (a new phone joins anew)."""

    name: Name | None = None
    language: Language | None = None
    role: MemberRole | None = None
    share_name: bool | None = Field(None, strict=True)


class MemberOut(Out):
    id: int
    group_id: int
    phone: str
    name: str | None
    language: str
    role: MemberRole
    status: MemberStatus
    share_name: bool
    consent_at: datetime | None
    created_at: datetime


class TokenIn(Body):
    role: Literal[Role.coordinator, Role.source]
    neighbourhood_id: DbId | None = None
    group_id: DbId | None = None
    label: Name | None = None


class TokenOut(Out):
    id: int
    role: Role
    neighbourhood_id: int | None
    group_id: int | None
    label: str | None
    created_at: datetime


class TokenCreated(TokenOut):
    token: str = Field(description="the secret: shown once, store it now")


class AuditEventOut(Out):
    seq: int
    at: datetime
    actor: str
    actor_role: str
    type: str
    subject: str | None
    neighbourhood_id: int | None
    data: dict[str, Any]
    hash: str


class AuditPage(Out):
    items: list[AuditEventOut]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at the end")


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


def _anchor(value: str) -> str:
    return str(audit.Anchor.parse(value))


class AuditVerifyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expect: Annotated[
        str | None,
        Field(
            max_length=100,
            description="an anchor, SEQ:HASH, that an earlier verify gave as `head`: the chain must "
            "still hold that event with that hash (nothing after it removed, nothing before it rewritten)",
        ),
        AfterValidator(lambda value: None if value is None else _anchor(value)),
    ] = None


class AuditVerdict(Out):
    ok: bool
    count: int
    bad_seq: int | None = None
    reason: str | None = None
    head: Annotated[
        str | None,
        Field(description="the newest event checked, as SEQ:HASH: note it down outside this server"),
        BeforeValidator(lambda value: None if value is None else str(value)),
    ] = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str | None = None


# Twilio's ids are 34 characters (SM + 32 hex), its error codes five digits: room to spare, no more.
MESSAGE_SID = r"^[A-Za-z0-9]{1,64}$"
ERROR_CODE = r"^[0-9]{1,10}$"


class TwilioInbound(BaseModel):
    """The fields of Twilio's messaging webhook that alertnet reads (Twilio sends more)."""

    model_config = ConfigDict(extra="allow")

    MessageSid: str = Field(pattern=MESSAGE_SID)
    From: str
    To: str | None = None
    Body: str = Field("", max_length=1600)


class TwilioStatus(BaseModel):
    """The fields of Twilio's status callback that alertnet reads (Twilio sends more)."""

    model_config = ConfigDict(extra="allow")

    MessageSid: str = Field(pattern=MESSAGE_SID)
    MessageStatus: str
    ErrorCode: str | None = Field(None, pattern=ERROR_CODE)


class StatusQuery(BaseModel):
    d: int | None = Field(
        None, ge=1, description="the delivery's own id, as alertnet put it in the StatusCallback URL"
    )


class SignalIn(Body):
    """A signal from an app or device."""

    group_id: DbId
    text: Text
    reporter_phone: Phone | None = Field(
        None, description="the resident who reports; never shown to the group"
    )
    urgent: bool = Field(False, strict=True)


class SignalAccepted(Out):
    signal_id: int
    incident_id: int
    number: int = Field(description="the incident's number in its group, shown in SMS as #n")
    new_incident: bool
    recipients: int = Field(description="allies the signal was sent to")
    limited: bool = Field(
        description="stored and joined to the incident, but not sent again: the sender's flood limit "
        "(5 signals in 10 minutes) was reached"
    )


class SignalOut(Out):
    id: int
    received_at: datetime
    text: str
    channel: str
    urgent: bool
    #: "member:ID" or the channel; never a phone number.
    reporter: str


class IncidentOut(Out):
    id: int
    group_id: int
    neighbourhood_id: int
    number: int
    state: State
    reporters: int
    urgent: bool
    opened_at: datetime
    last_signal_at: datetime
    acknowledged_at: datetime | None
    escalated_at: datetime | None
    escalation_trigger: str | None
    responder_ack_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    outcome: str | None
    false_alarm: bool
    signals: list[SignalOut]


class IncidentStats(Out):
    time_to_first_ally_ok_s: float | None
    time_to_responder_ok_s: float | None = Field(description="from escalation to the first responder's OK")
    time_to_resolve_s: float | None
    alerted: int = Field(description="allies the signals were sent to")
    answered: int = Field(description="allies and responders who answered OK")


class TimelineEntry(Out):
    seq: int
    at: datetime
    type: str
    actor: str
    data: dict[str, Any]


class IncidentDetail(IncidentOut):
    stats: IncidentStats
    deliveries: dict[str, dict[str, int]] = Field(description="message counts by purpose and status")
    timeline: list[TimelineEntry]


class IncidentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    state: State | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    before: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = Field(
        None, description="an incident id: older ones"
    )


class IncidentPage(Out):
    items: list[IncidentOut]
    next_before: int | None


class ResolveIn(Body):
    outcome: Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_printable)] | None = None
    false_alarm: bool = Field(False, strict=True)


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    neighbourhood_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    from_: date | None = Field(None, alias="from", description="first local day, YYYY-MM-DD")
    to: date | None = Field(None, description="last local day, YYYY-MM-DD")


class StatsOut(Out):
    neighbourhood_id: int
    weeks: list[dict[str, Any]]
    totals: dict[str, Any]
