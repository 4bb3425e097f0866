"""Signals coming in: Twilio's inbound and status webhooks, and the JSON signal API."""

from __future__ import annotations

import functools
import hashlib
import math
import re
import time
from datetime import timedelta
from typing import Any, NoReturn

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection
from twilio.request_validator import RequestValidator, compare
from twilio.twiml.messaging_response import MessagingResponse

from . import delivery, engine, inbound, keys, phones, signals, throttle
from .auth import Role
from .bodies import json_body, read_in_time
from .errors import BadInput, Forbidden, NotFound, TooManyRequests, Unprocessable, UnsupportedMediaType
from .middleware import principal
from .schemas import ERROR_CODE, MESSAGE_SID, SignalAccepted, SignalIn
from .store import db, outbox
from .store import signals as store

log = structlog.get_logger("alertnet.webhooks")
IDEMPOTENCY_TTL = timedelta(hours=24)
_SID = re.compile(MESSAGE_SID)
_ERROR_CODE = re.compile(ERROR_CODE)
#: A delivery id in the StatusCallback URL: ASCII digits only (int() takes "٣" too, and "²" fails).
_ID = re.compile(r"[0-9]{1,18}")
#: Signals one source token may post: Grafana OnCall's 300 per 5 minutes per integration. Far above
#: any device's need (the flood limit already holds back its fan-outs); it bounds a runaway one's writes.
SIGNAL_BUDGET = throttle.Budget(burst=300, per_s=1.0)


async def _twilio_form(request: web.Request) -> dict[str, str]:
    """The posted form, after checking Twilio's signature against the URL Twilio called."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Twilio posts application/x-www-form-urlencoded")
    token = request.app[keys.settings].twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature", "")
    if token is not None and not signature:
        _refuse(request)
    await read_in_time(request)
    try:
        posted = await request.post()
    except (UnicodeError, LookupError) as exc:  # bad UTF-8, an unknown or unusable charset
        raise BadInput(f"the form cannot be decoded: {exc.__class__.__name__}", field="body") from exc
    form = {key: str(value) for key, value in posted.items()}
    if token is not None:
        url = request.app[keys.settings].effective_public_url + request.path_qs
        if not _signed(_validator(token.get_secret_value()), url, form, signature):
            _refuse(request)
    return form


@functools.lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def _signed(validator: RequestValidator, url: str, form: dict[str, str], signature: str) -> bool:
    """`validator.validate`, which accepts the URL with and without its port (Twilio signs either)
    and so computes two signatures; the URL as we know it is one of the two, and tried first."""
    if compare(validator.compute_signature(url, form), signature):
        return True
    return bool(validator.validate(url, form, signature))


def _refuse(request: web.Request) -> NoReturn:
    log.warning("twilio_signature_invalid", path=request.path)
    raise Forbidden("missing or invalid X-Twilio-Signature")


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise BadInput(f"{name}: required", field=name)
    return value


def _message_sid(form: dict[str, str]) -> str:
    sid = _required(form, "MessageSid")
    if not _SID.fullmatch(sid):
        raise BadInput("MessageSid: letters and digits, at most 64", field="MessageSid")
    return sid


def _error_code(form: dict[str, str]) -> str | None:
    code = form.get("ErrorCode", "").strip()
    if code and not _ERROR_CODE.fullmatch(code):
        raise BadInput("ErrorCode: a number of at most ten digits", field="ErrorCode")
    return code or None


def _twiml(text: str | None) -> web.Response:
    return web.Response(text=_twiml_text(text), content_type="text/xml")


@functools.lru_cache(maxsize=1024)
def _twiml_text(text: str | None) -> str:
    """The TwiML reply; most replies are one of a few texts, so each is rendered once."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


async def sms_inbound(request: web.Request) -> web.Response:
    form = await _twilio_form(request)
    sid = _message_sid(form)
    try:
        sender = phones.from_provider(_required(form, "From"))
    except phones.InvalidPhone:
        log.info("sms_from_non_phone_ignored")
        return _twiml(None)
    sms = inbound.Sms(sid=sid, sender=sender, to=form.get("To", ""), body=form.get("Body", ""))
    now = request.app[keys.clock]()
    received = await db.write_together(request.app[keys.engine], lambda conn: inbound.receive(conn, sms, now))
    request.app[keys.sender].notify()
    request.app[keys.metrics].inbound.labels(received.command, "new" if received.fresh else "replay").inc()
    request[keys.log_fields] = {
        "command": received.command,
        "fresh": received.fresh,
        "sender": phones.mask(sender),
    }
    return _twiml(received.reply)


async def sms_status(request: web.Request) -> web.Response:
    form = await _twilio_form(request)
    sid = _message_sid(form)
    error_code = _error_code(form)
    word = _required(form, "MessageStatus")
    status = delivery.PROVIDER_STATUS.get(word)
    delivery_id = request.query.get("d", "")
    if status is None:
        return web.Response(status=204)
    now = request.app[keys.clock]()

    async def record(conn: AsyncConnection) -> dict[str, Any] | None:
        moved = await outbox.record_status(
            conn,
            delivery_id=int(delivery_id) if _ID.fullmatch(delivery_id) else None,
            sid=sid,
            status=status,
            error_code=error_code,
            now=now,
        )
        if moved and moved["status"] in (delivery.Status.failed, delivery.Status.undelivered):
            await engine.delivery_failed(
                conn, moved["id"], moved["recipient_phone"], moved["error_code"], now
            )
        return moved

    # A fan-out's callbacks come in bursts (two or three per SMS): they share transactions.
    moved = await db.write_together(request.app[keys.engine], record)
    fields: dict[str, object] = {"sms_status": word, "moved": moved is not None, "error_code": error_code}
    request[keys.log_fields] = fields
    return web.Response(status=204)


def _request_hash(body: SignalIn) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
        raise BadInput("Idempotency-Key: 1 to 255 printable characters", field="Idempotency-Key")
    return key


def _spend_budget(request: web.Request, actor: str) -> None:
    budgets = request.app[keys.budgets]
    budgets[actor], wait = throttle.spend(SIGNAL_BUDGET, budgets.get(actor), time.monotonic())
    if wait:
        raise TooManyRequests(
            f"more than {SIGNAL_BUDGET.burst} signals from this token in a short time; "
            f"try again in {math.ceil(wait)} s",
            retry_after_s=math.ceil(wait),
        )


async def post_signal(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role == Role.source:  # devices and apps; coordinators and admins are people
        _spend_budget(request, who.actor)
    body = await json_body(request, SignalIn)
    key = _idempotency_key(request)
    now = request.app[keys.clock]()
    async with db.write(request.app[keys.engine]) as conn:
        if key is not None:
            replay = await _replay(conn, who.actor, key, _request_hash(body), now)
            if replay is not None:
                return web.json_response(replay, status=202)
        answer = await _accept(conn, request, body, now)
        if key is not None:
            await store.save_idempotent_answer(conn, who.actor, key, answer)
    request.app[keys.sender].notify()
    return web.json_response(answer, status=202)


async def _replay(
    conn: AsyncConnection, scope: str, key: str, request_hash: str, now: Any
) -> dict[str, Any] | None:
    """The first answer to this key, if it is less than a day old; 422 if the body differs."""
    found = await store.claim_idempotency_key(conn, scope, key, request_hash, now, IDEMPOTENCY_TTL)
    if found is None:
        return None
    if found["request_hash"] != request_hash:
        raise Unprocessable("Idempotency-Key was already used with a different body", field="Idempotency-Key")
    stored: dict[str, Any] = found["response"]
    return stored


async def _accept(conn: AsyncConnection, request: web.Request, body: SignalIn, now: Any) -> dict[str, Any]:
    who = principal(request)
    group = await store.lock_group(conn, body.group_id)
    if group is None or not who.sees(group["neighbourhood_id"]) or who.group_id not in (None, group["id"]):
        raise NotFound("no such group", field="group_id")
    member = None
    if body.reporter_phone is not None:
        member = next(
            (r for r in await store.memberships(conn, body.reporter_phone) if r["group_id"] == group["id"]),
            None,
        )
    intake = await signals.accept(
        conn,
        group=group,
        member=member,
        reporter_phone=body.reporter_phone,
        text=body.text,
        channel="api",
        urgent=body.urgent,
        now=now,
        who=who,
    )
    return SignalAccepted(
        signal_id=intake.signal_id,
        incident_id=intake.incident_id,
        number=intake.number,
        new_incident=intake.new_incident,
        recipients=intake.recipients,
        limited=intake.limited,
    ).model_dump(mode="json")
