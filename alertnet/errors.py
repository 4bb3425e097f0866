"""Domain errors, each carrying the HTTP status and code it is answered with."""

from __future__ import annotations


class AlertnetError(Exception):
    """Base of every error a client can cause; never a 500."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadInput(AlertnetError):
    status, code = 400, "invalid"


class Unauthorized(AlertnetError):
    status, code = 401, "unauthorized"


class Forbidden(AlertnetError):
    status, code = 403, "forbidden"


class NotFound(AlertnetError):
    status, code = 404, "not_found"


class Conflict(AlertnetError):
    status, code = 409, "conflict"


class RequestTimeout(AlertnetError):
    status, code = 408, "request_timeout"


class UnsupportedMediaType(AlertnetError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(AlertnetError):
    status, code = 422, "unprocessable"


class TooManyRequests(AlertnetError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
