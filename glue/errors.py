"""The relay's own exceptions. Each carries the HTTP status and the short text Twilio gets back;
app.py maps them to responses in one place."""

from __future__ import annotations


class RelayError(Exception):
    """A request the relay answers with a non-200 status and a short plain-text message."""

    status = 500
    reason = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RelayError):
    """The form is not an inbound message we can store (no From, no MessageSid, a refused phone)."""

    status = 400
    reason = "bad_request"


class Forbidden(RelayError):
    """The signature is missing or wrong, or the AccountSid/To is not one we accept."""

    status = 403
    reason = "forbidden"


class PayloadTooLarge(RelayError):
    """The body is over MAX_BODY_BYTES."""

    status = 413
    reason = "too_large"


class UnsupportedMediaType(RelayError):
    """The body is not application/x-www-form-urlencoded."""

    status = 415
    reason = "unsupported_media_type"


class DatabaseUnavailable(RelayError):
    """The database could not be reached or did not answer within DB_TIMEOUT: Twilio should retry."""

    status = 503
    reason = "db_unavailable"


class InputRejected(Exception):
    """The database refused an argument (SQLSTATE 22023); the gateway raises it, the app answers 400."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
