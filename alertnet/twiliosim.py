"""Posting to alertnet as Twilio does: signed form posts, for `alertnet sms`, the tests and the benchmark."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_TO = "+3197010000000"


class PostFailed(Exception):
    """The service could not be reached or refused the post."""


def inbound_form(sender: str, text: str, *, to: str | None = None, sid: str | None = None) -> dict[str, str]:
    """The fields Twilio posts for an inbound SMS."""
    return {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": to or DEFAULT_TO,
        "Body": text,
        "NumMedia": "0",
    }


def headers(url: str, form: dict[str, str], auth_token: str | None) -> dict[str, str]:
    """Form headers, with X-Twilio-Signature for the exact URL when a token is given."""
    result = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth_token is not None:
        result["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(url, form)
    return result


def replies(twiml: str) -> list[str]:
    """The texts of the <Message> elements of a TwiML answer."""
    return [node.text or "" for node in ElementTree.fromstring(twiml).iter("Message")]  # noqa: S314 (our own TwiML)


def post(url: str, form: dict[str, str], auth_token: str | None, timeout_s: float = 30) -> list[str]:
    """Post the form to `url` and return the replies."""
    if not url.startswith(("http://", "https://")):
        raise PostFailed(f"not an http(s) URL: {url}")
    body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=body, headers=headers(url, form, auth_token))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return replies(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise PostFailed(f"{url} answered {exc.code}: {exc.read().decode()}") from exc
    except OSError as exc:
        raise PostFailed(
            f"cannot reach {url}: {exc}. Is `alertnet serve` or `alertnet demo` running?"
        ) from exc
