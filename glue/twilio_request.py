"""Twilio's side of a webhook: reading the form, checking the signature, reading the message, TwiML.

Everything here uses the twilio library for what it does (RequestValidator, MessagingResponse);
our part is finding the URL Twilio called and keeping every form value for the signature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import URL, Headers, ImmutableMultiDict
from starlette.requests import Request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from glue.errors import BadRequest, Forbidden, PayloadTooLarge, RelayError, UnsupportedMediaType
from glue.settings import Settings

SIGNATURE_HEADER = "x-twilio-signature"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_MEDIA = 20  # WhatsApp allows one attachment, MMS ten; anything above is not Twilio.
# Characters XML 1.0 cannot carry at all (control characters, surrogates, U+FFFE/U+FFFF): escaping
# does not help, so they are dropped from replies to keep the TwiML well-formed.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# A business-scoped user id ("US.1349..."): Twilio puts it in From when WhatsApp withheld the phone.
BSUID_PREFIX = re.compile(r"^[A-Z]{2}\.")
# Twilio's channel prefix: only a From that carries it is a WhatsApp sender.
WHATSAPP = "whatsapp:"
# The two shapes Twilio writes a WhatsApp From in (the database checks the rest: length, country code).
PHONE_SENDER = re.compile(r"\+[0-9]+")
# Sender fields as they appear in the signed text (name immediately followed by value, see check_sender).
PHONE_RUNS = (re.compile(r"From(?:whatsapp:)?\+([0-9]+)"), re.compile(r"WaId\+?([0-9]+)"))
BSUID_RUN_NAMES = ("ExternalUserId", "Fromwhatsapp:")
PARENT_BSUID = re.compile(r"[A-Z]{2}\.[A-Z]{2,8}\.")  # ParentExternalUserId: US.ENT.…
NOT_SENDER = "the sender fields (From, WaId, ExternalUserId) name more than one WhatsApp user"

Form = ImmutableMultiDict[str, str]


@dataclass(frozen=True)
class Media:
    """One attachment: Twilio's URL for it (fetched with the account's credentials) and its type."""

    url: str
    content_type: str

    def as_json(self) -> dict[str, str]:
        return {"url": self.url, "content_type": self.content_type}


@dataclass(frozen=True)
class InboundMessage:
    """An inbound WhatsApp (or SMS) message as Twilio described it. Body and ProfileName are hostile input."""

    message_sid: str
    sender: str
    body: str
    to: str | None = None
    account_sid: str | None = None
    wa_id: str | None = None
    profile_name: str | None = None
    media: tuple[Media, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    external_user_id: str | None = None

    @property
    def is_whatsapp(self) -> bool:
        """True when From is a WhatsApp address; anything else (an SMS to the same number) is not stored."""
        return self.sender.startswith(WHATSAPP)

    @property
    def sender_is_bsuid(self) -> bool:
        """True when From carries a WhatsApp username's BSUID instead of a phone number."""
        return bool(BSUID_PREFIX.match(self.sender.removeprefix(WHATSAPP)))

    @property
    def phone(self) -> str | None:
        """The sender's number as Twilio wrote it (the database normalises it), or None for a BSUID sender."""
        return None if self.sender_is_bsuid else self.sender

    @property
    def whatsapp_user_id(self) -> str | None:
        """The sender's BSUID: ExternalUserId, else a BSUID in From."""
        if self.external_user_id:
            return self.external_user_id
        return self.sender.removeprefix(WHATSAPP) if self.sender_is_bsuid else None


def parse_form(body: bytes, content_type: str | None) -> Form:
    """Every key and value of a form body, repeated keys included (they are part of the signature)."""
    media_type = (content_type or FORM_TYPE).split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        raise UnsupportedMediaType(f"expected {FORM_TYPE}")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest("the form is not valid UTF-8 form encoding") from error
    return ImmutableMultiDict(pairs)


def public_url(url: URL, headers: Headers, base_url: str | None, trust_forwarded: bool) -> str:
    """The URL Twilio called: PUBLIC_BASE_URL + path, else trusted X-Forwarded-*, else what we were sent."""
    tail = url.path + (f"?{url.query}" if url.query else "")
    if base_url:
        return base_url + tail
    if trust_forwarded:
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip()
        host = headers.get("x-forwarded-host", "").split(",")[0].strip()
        if proto or host:
            return f"{proto or url.scheme}://{host or url.netloc}{tail}"
    return str(url)


def check_signature(
    validators: Sequence[RequestValidator], url: str, form: Form, signature: str | None
) -> None:
    """Raise Forbidden unless one of the tokens (primary, secondary) signed this URL and these parameters."""
    if not signature or not validators:
        raise Forbidden("forbidden")
    for validator in validators:
        if validator.validate(url, form, signature):
            return
    raise Forbidden("forbidden")


def check_allowed(form: Form, account_sids: Sequence[str], to_numbers: Sequence[str]) -> None:
    """Raise Forbidden when an allow-list is configured and the AccountSid or To is not on it."""
    if account_sids and form.get("AccountSid") not in account_sids:
        raise Forbidden("forbidden")
    if to_numbers:
        to = form.get("To", "")
        bare = to.removeprefix("whatsapp:")
        if to not in to_numbers and bare not in to_numbers:
            raise Forbidden("forbidden")


def _single(form: Form, name: str, required: bool) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once")
    if values and "\x00" in values[0]:
        raise BadRequest(f"{name} contains a NUL character")  # PostgreSQL text cannot hold one
    value = values[0].strip() if values else ""
    if required and not value:
        raise BadRequest(f"{name} is required")
    return value or None


def phone_match_key(phone: str) -> str:
    """private.phone_match_key: one key for the forms of one E.164 number WhatsApp and Supabase Auth write differently."""
    if re.fullmatch(r"\+55[1-9][1-9][6-9][0-9]{7}", phone):
        return "+55" + phone[3:5] + "9" + phone[5:]  # Brazil: the ninth digit
    if re.fullmatch(r"\+521[0-9]{10}", phone):
        return "+52" + phone[4:]  # Mexico: the old mobile 1
    if re.fullmatch(r"\+549[0-9]{10}", phone):
        return "+54" + phone[4:]  # Argentina: the mobile 9
    return phone


def signed_text(form: Form) -> str:
    """The parameters as Twilio signs them: each name (sorted) immediately followed by each of its values."""
    names = sorted({name for name, _ in form.multi_items()})
    return "".join(name + value for name in names for value in sorted(set(form.getlist(name))))


def _same_bsuid(text: str, at: int, bsuid: str | None) -> bool:
    # Nothing separates a value from the next name in the signed text, so the id ends where the next
    # name (an upper-case letter) or the text does.
    if bsuid is None:
        return False
    follows = text[at : at + len(bsuid) + 1]
    return follows.startswith(bsuid) and re.fullmatch("[A-Z]?", follows[len(bsuid) :]) is not None


def check_sender(form: Form, message: InboundMessage) -> None:
    """BadRequest unless every sender field in the signed text names the one sender this message is stored under.

    Twilio signs the URL plus every name and value joined without separators, so one signed request
    can be re-split into another form (a longer Body swallowing forged fields, an invented parameter
    swallowing the real ones). The real fields are still in the signed text, so they are read back
    from it: every From and WaId written there must be the message's number (as the identity layer
    compares numbers), every ExternalUserId and BSUID From the message's BSUID.
    """
    bare = message.sender.removeprefix(WHATSAPP)
    phone = bare if PHONE_SENDER.fullmatch(bare) else None
    if phone is None and not BSUID_PREFIX.match(bare):
        raise BadRequest(
            f"From '{message.sender[:40]}' is not a WhatsApp sender: Twilio writes whatsapp:+<number>"
            " or whatsapp:<BSUID>"
        )
    bsuid = message.whatsapp_user_id
    if bsuid is not None:
        bsuid = re.sub(r"(?i)^\s*whatsapp:", "", bsuid).strip(" ")
    if message.sender_is_bsuid and bsuid != bare:
        raise BadRequest(NOT_SENDER)  # From and ExternalUserId name two users
    text = signed_text(form)
    keys = {phone_match_key("+" + digits) for run in PHONE_RUNS[:1] for digits in run.findall(text)}
    if phone is not None:
        keys |= {phone_match_key("+" + digits) for digits in PHONE_RUNS[1].findall(text)}
        wa_id = (message.wa_id or "").removeprefix("+")
        if wa_id.isascii() and wa_id.isdigit():
            keys.add(phone_match_key("+" + wa_id))
    if keys - ({phone_match_key(phone)} if phone else set()):
        raise BadRequest(NOT_SENDER)
    for name in BSUID_RUN_NAMES:
        for match in re.finditer(re.escape(name), text):
            at = match.end()
            if not BSUID_PREFIX.match(text[at : at + 3]):
                continue
            parent = text[max(0, match.start() - 6) : match.start()] == "Parent"
            if parent and PARENT_BSUID.match(text[at : at + 12]):
                continue  # ParentExternalUserId: the business portfolio's id, not a user's
            if not _same_bsuid(text, at, bsuid):
                raise BadRequest(NOT_SENDER)


def read_message(form: Form) -> InboundMessage:
    """The message in a signed form, or BadRequest when it lacks what a message needs."""
    message_sid = _single(form, "MessageSid", required=True)
    sender = _single(form, "From", required=True)
    assert message_sid is not None and sender is not None
    body_values = form.getlist("Body")
    if len(body_values) > 1:
        raise BadRequest("Body given more than once")
    if body_values and "\x00" in body_values[0]:
        raise BadRequest("Body contains a NUL character")
    raw_count = _single(form, "NumMedia", required=False) or "0"
    if not raw_count.isdigit() or int(raw_count) > MAX_MEDIA:
        raise BadRequest("NumMedia is not a small whole number")
    media = []
    for index in range(int(raw_count)):
        media_url = _single(form, f"MediaUrl{index}", required=True)
        content_type = _single(form, f"MediaContentType{index}", required=False)
        assert media_url is not None
        media.append(Media(media_url, content_type or "application/octet-stream"))
    message = InboundMessage(
        message_sid=message_sid,
        sender=sender,
        body=body_values[0] if body_values else "",
        to=_single(form, "To", required=False),
        account_sid=_single(form, "AccountSid", required=False),
        wa_id=_single(form, "WaId", required=False),
        profile_name=_single(form, "ProfileName", required=False),
        media=tuple(media),
        params={key: value for key, value in form.multi_items()},
        external_user_id=_single(form, "ExternalUserId", required=False),
    )
    if message.is_whatsapp:
        check_sender(form, message)
    return message


EMPTY_TWIML = str(MessagingResponse())  # the common answer, built once


def twiml(replies: Sequence[str]) -> str:
    """TwiML with one <Message> per reply; `<Response />` when there is nothing to say."""
    if not replies:
        return EMPTY_TWIML
    response = MessagingResponse()
    for reply in replies:
        response.message(NOT_XML.sub("", reply))
    return str(response)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or PayloadTooLarge as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("request body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def verified_form(
    request: Request,
    settings: Settings,
    validators: Sequence[RequestValidator],
    fields: dict[str, Any],
    to_is_ours: bool = True,
) -> Form:
    """The form Twilio signed, read within the size limit; RelayError (403) for a bad signature or a
    sender outside the allow-lists, before anything touches the database. `to_is_ours` is false for
    status callbacks, whose To is the recipient: then only the account is checked."""
    body = await read_body(request, settings.max_body_bytes)
    form = parse_form(body, request.headers.get("content-type"))
    url = public_url(request.url, request.headers, settings.public_base_url, settings.trust_forwarded_headers)
    try:
        check_signature(validators, url, form, request.headers.get(SIGNATURE_HEADER))
    except RelayError:
        fields["reason"] = "bad_signature"
        raise
    try:
        check_allowed(form, settings.twilio_account_sids, settings.twilio_to_numbers if to_is_ours else [])
    except RelayError:
        fields["reason"] = "not_allowed"
        raise
    return form
