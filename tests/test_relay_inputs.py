"""Hostile and arbitrary input to the relay's Twilio side, fuzzed with hypothesis (no server needed)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from starlette.datastructures import URL, Headers, ImmutableMultiDict
from twilio.request_validator import RequestValidator

from glue.errors import BadRequest, Forbidden
from glue.settings import Settings
from glue.twilio_request import (
    check_allowed,
    check_signature,
    parse_form,
    phone_match_key,
    public_url,
    read_message,
    signed_text,
)

TOKEN = "0123456789abcdef0123456789abcdef"
URL_ = "https://relay.example.com/twilio/webhook?tenant=a%20b"
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
pairs = st.lists(st.tuples(text, text), max_size=12)


@given(pairs)
def test_any_form_signed_by_twilio_passes_after_encoding_and_parsing(items: list[tuple[str, str]]) -> None:
    """Whatever keys, values, repeats and unicode a form has, the signature over it survives our parsing."""
    signature = RequestValidator(TOKEN).compute_signature(URL_, ImmutableMultiDict(items))
    form = parse_form(urlencode(items).encode(), "application/x-www-form-urlencoded; charset=utf-8")
    check_signature([RequestValidator(TOKEN)], URL_, form, signature)


@given(pairs, text, text)
def test_any_change_to_a_signed_form_is_refused(items: list[tuple[str, str]], key: str, value: str) -> None:
    """Adding a parameter the signature did not cover makes it fail."""
    # (A repeat of an identical key=value pair is not detectable: twilio signs the set of values.)
    assume(all(k != key + "X" for k, _ in items))
    signature = RequestValidator(TOKEN).compute_signature(URL_, ImmutableMultiDict(items))
    altered = [*items, (key + "X", value)]
    form = parse_form(urlencode(altered).encode(), None)
    with pytest.raises(Forbidden):
        check_signature([RequestValidator(TOKEN)], URL_, form, signature)


@given(pairs)
def test_reading_any_form_is_a_message_or_a_400(items: list[tuple[str, str]]) -> None:
    """read_message never fails with anything but BadRequest, and what it returns has a sid and a sender."""
    try:
        message = read_message(ImmutableMultiDict(items))
    except BadRequest:
        return
    assert message.message_sid.strip() and message.sender.strip()


@given(st.binary(max_size=200))
def test_any_bytes_are_a_form_or_a_400(body: bytes) -> None:
    """Arbitrary body bytes parse as a form or are refused with BadRequest."""
    with contextlib.suppress(BadRequest):
        parse_form(body, "application/x-www-form-urlencoded")


def test_signature_without_any_token_configured_is_refused() -> None:
    """With no validators, even a correct-looking request is refused."""
    with pytest.raises(Forbidden):
        check_signature([], URL_, ImmutableMultiDict([]), "sig")


@pytest.mark.parametrize(
    ("base", "trusted", "headers", "expected"),
    [
        (None, False, {}, "http://10.0.0.5:8000/twilio/webhook?x=1"),
        ("https://wa.example.com/relay", False, {}, "https://wa.example.com/relay/twilio/webhook?x=1"),
        (None, False, {"x-forwarded-proto": "https"}, "http://10.0.0.5:8000/twilio/webhook?x=1"),
        (
            None,
            True,
            {"x-forwarded-proto": "https, http", "x-forwarded-host": "wa.example.com"},
            "https://wa.example.com/twilio/webhook?x=1",
        ),
        (None, True, {"x-forwarded-proto": "https"}, "https://10.0.0.5:8000/twilio/webhook?x=1"),
        (
            "https://wa.example.com",
            True,
            {"x-forwarded-host": "evil.example.com"},
            "https://wa.example.com/twilio/webhook?x=1",
        ),
    ],
    ids=[
        "the URL as received when nothing is configured",
        "PUBLIC_BASE_URL with a path prefix",
        "forwarded headers ignored unless trusted",
        "trusted forwarded proto and host, first value of a list",
        "trusted forwarded proto alone keeps the host",
        "PUBLIC_BASE_URL wins over forwarded headers",
    ],
)
def test_public_url(base: str | None, trusted: bool, headers: dict[str, str], expected: str) -> None:
    """The URL the signature is checked against is built from configuration first, then trusted headers."""
    url = URL("http://10.0.0.5:8000/twilio/webhook?x=1")
    assert public_url(url, Headers(headers), base, trusted) == expected


@pytest.mark.parametrize(
    ("to", "allowed"),
    [("whatsapp:+14155238886", True), ("+14155238886", True), ("whatsapp:+14155230000", False), ("", False)],
    ids=["whatsapp: prefixed", "bare number", "another number", "no To"],
)
def test_to_allow_list_accepts_our_number_with_or_without_prefix(to: str, allowed: bool) -> None:
    """TWILIO_TO_NUMBERS entries match To with or without the whatsapp: prefix."""
    form = ImmutableMultiDict([("To", to)])
    if allowed:
        check_allowed(form, [], ["+14155238886"])
    else:
        with pytest.raises(Forbidden):
            check_allowed(form, [], ["+14155238886"])


def test_settings_read_lists_and_blank_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Comma-separated lists are split, blank optional values count as unset, and the base URL loses its slash."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_SECONDARY", "")
    monkeypatch.setenv("TWILIO_ACCOUNT_SIDS", "AC1, AC2,,")
    monkeypatch.setenv("WELCOME_REPLY", " ")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://wa.example.com/")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h:6543/postgres")
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.twilio_account_sids == ["AC1", "AC2"]
    assert settings.auth_tokens() == [TOKEN]
    assert settings.welcome_reply is None
    assert settings.public_base_url == "https://wa.example.com"
    assert settings.gateway_kind() == "psycopg"
    assert TOKEN not in repr(settings) and ":p@" not in repr(settings)


def test_the_relay_refuses_to_start_without_a_public_url_unless_told_to_trust_the_host() -> None:
    """Without PUBLIC_BASE_URL the signed URL would come from the Host header: create_app refuses unless TRUST_HOST_HEADER."""
    from glue.app import create_app
    from glue.gateway import PsycopgGateway

    gateway = PsycopgGateway("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ValueError, match=r"Set PUBLIC_BASE_URL .* or TRUST_HOST_HEADER=true"):
        create_app(Settings(_env_file=None, twilio_auth_token=TOKEN), gateway)  # type: ignore[call-arg]
    for trusted in (
        {"trust_host_header": True},
        {"trust_forwarded_headers": True},
        {"public_base_url": "https://x.example"},
    ):
        create_app(Settings(_env_file=None, twilio_auth_token=TOKEN, **trusted), gateway)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "phone",
    [
        "+14155550123",
        "+551187654321",
        "+5511987654321",
        "+551123456789",
        "+5211234567890",
        "+521123456789",
        "+5491123456789",
        "+541123456789",
        "+447400123456",
    ],
)
def test_the_relays_match_key_is_the_identity_layers(sql: Any, phone: str) -> None:
    """glue's phone_match_key gives what private.phone_match_key gives, so From and WaId compare as the database does."""
    row = sql.execute("select private.phone_match_key(%s) as key", (phone,)).fetchone()
    assert phone_match_key(phone) == row["key"]


def test_signed_text_is_what_the_signature_covers() -> None:
    """HMAC-SHA1 over the URL plus signed_text(form) is the signature the twilio library computes for the form."""
    form = ImmutableMultiDict(
        [("To", "x"), ("Body", "b"), ("Digits", "5678"), ("Digits", "1234"), ("Body", "b")]
    )
    mac = hmac.new(TOKEN.encode(), (URL_ + signed_text(form)).encode(), hashlib.sha1).digest()
    assert base64.b64encode(mac).decode() == RequestValidator(TOKEN).compute_signature(URL_, form)
