"""`glue simulate`: a correctly signed Twilio-style inbound WhatsApp request, or a status callback for
an outbound message, for trying the relay without a Twilio account."""

from __future__ import annotations

import secrets

import httpx
from twilio.request_validator import RequestValidator

from glue.settings import WEBHOOK_PATH
from glue.status_callback import STATUS_PATH

SIGNATURE_HEADER = "X-Twilio-Signature"
ACCOUNT_SID = "AC" + "0" * 32  # well-formed; the relay checks it only when told which SIDs to allow


def message_sid() -> str:
    """A fresh MessageSid shaped like Twilio's (SM + 32 hex digits)."""
    return "SM" + secrets.token_hex(16)


def inbound_params(
    sender: str,
    body: str,
    *,
    to: str = "whatsapp:+14155238886",
    sid: str | None = None,
    profile_name: str | None = None,
    media: list[tuple[str, str]] | None = None,
) -> dict[str, str]:
    """The parameters Twilio posts for an inbound WhatsApp message."""
    phone = sender.removeprefix("whatsapp:")
    sid = sid or message_sid()
    params = {
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "SmsStatus": "received",
        "From": f"whatsapp:{phone}",
        "To": to if to.startswith("whatsapp:") else f"whatsapp:{to}",
        "WaId": phone.lstrip("+"),
        "Body": body,
        "NumMedia": str(len(media or [])),
        "NumSegments": "1",
        "MessageType": "text" if not media else "image",
    }
    if profile_name is not None:
        params["ProfileName"] = profile_name
    for index, (url, content_type) in enumerate(media or []):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = content_type
    return params


def status_params(
    sid: str,
    status: str,
    *,
    sender: str = "whatsapp:+14155238886",
    recipient: str | None = None,
    error_code: int | None = None,
) -> dict[str, str]:
    """The parameters Twilio posts to a message's StatusCallback when its status changes."""
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": sender if sender.startswith("whatsapp:") else f"whatsapp:{sender}",
    }
    if recipient is not None:
        params["To"] = recipient if recipient.startswith("whatsapp:") else f"whatsapp:{recipient}"
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def signed_headers(url: str, params: dict[str, str], token: str) -> dict[str, str]:
    """The headers Twilio would send: the signature over `url` and every parameter."""
    return {SIGNATURE_HEADER: RequestValidator(token).compute_signature(url, params)}


def default_url(host: str, port: int, path: str = WEBHOOK_PATH) -> str:
    host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    return f"http://{host}:{port}{path}"


def default_status_url(host: str, port: int) -> str:
    return default_url(host, port, STATUS_PATH)


def send(url: str, params: dict[str, str], token: str, timeout: float = 20.0) -> httpx.Response:
    """POST the signed form to `url`, as Twilio would."""
    with httpx.Client(timeout=timeout) as client:
        return client.post(url, data=params, headers=signed_headers(url, params, token))
