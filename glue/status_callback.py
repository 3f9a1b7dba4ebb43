"""POST /twilio/status: Twilio's message status callbacks for the outbox.

Answered like the webhook: the body is read and the signature checked against the URL Twilio called
(the query string, which names the outbound message, included) before anything touches the database;
then one call of public.record_whatsapp_status, which only ever moves a message's status forward.
Any valid callback gets 200, even for a message not in the outbox: Twilio has nothing to retry.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator

from glue.errors import BadRequest, InputRejected
from glue.settings import Settings
from glue.twilio_request import Form, verified_form

STATUS_PATH = "/twilio/status"
# ASCII digits only (str.isdigit() also takes "²", which int() refuses), and few enough to fit the
# database's integer: Twilio's error codes have five.
ERROR_CODE = re.compile(r"[0-9]{1,9}")
# The form the worker writes; uuid.UUID() would also take braces, urn:uuid: and misplaced hyphens.
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class StatusReport:
    """One status callback: which message, the status Twilio reports, its error code if any."""

    message_sid: str
    status: str
    error_code: int | None
    outbound_message_id: uuid.UUID | None

    def rpc_arguments(self) -> dict[str, Any]:
        return {
            "message_sid": self.message_sid,
            "message_status": self.status,
            "error_code": self.error_code,
            "outbound_message_id": str(self.outbound_message_id) if self.outbound_message_id else None,
        }


def read_status(form: Form, query: dict[str, str]) -> StatusReport:
    """The callback's fields, or BadRequest naming the one missing or malformed."""
    for name in ("MessageSid", "MessageStatus"):
        if "\x00" in form.get(name, ""):
            raise BadRequest(f"{name} contains a NUL character")  # PostgreSQL text cannot hold one
    sid = form.get("MessageSid", "").strip()
    status = form.get("MessageStatus", "").strip()
    if not sid:
        raise BadRequest("MessageSid is required")
    if not status:
        raise BadRequest("MessageStatus is required")
    code = form.get("ErrorCode", "").strip()
    if code and not ERROR_CODE.fullmatch(code):
        raise BadRequest("ErrorCode must be a number of at most 9 digits")
    outbound = query.get("outbound_message_id")
    if outbound and not UUID.fullmatch(outbound):
        raise BadRequest("outbound_message_id must be a uuid")
    outbound_id = uuid.UUID(outbound) if outbound else None
    return StatusReport(sid, status, int(code) if code else None, outbound_id)


def status_endpoint(
    settings: Settings,
    validators: Sequence[RequestValidator],
    record: Callable[[StatusReport], Awaitable[str | None]],
) -> Callable[[Request], Awaitable[Response]]:
    """The handler of POST /twilio/status, built from the relay's settings and validators."""

    async def status(request: Request) -> Response:
        fields: dict[str, Any] = request.state.log
        form = await verified_form(request, settings, validators, fields, to_is_ours=False)
        report = read_status(form, dict(request.query_params))
        fields.update(message_sid=report.message_sid, message_status=report.status)
        try:
            now = await record(report)
        except InputRejected as error:
            fields["reason"] = "rejected_by_database"
            raise BadRequest(error.message[:200]) from error
        fields["outbound_status"] = now or "not_in_outbox"
        return PlainTextResponse("ok")

    return status
