"""supabase/config.toml keeps the settings the identity layer's security rests on."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from actors import Database

CONFIG_PATH = Path(__file__).resolve().parents[1] / "supabase" / "config.toml"
SECRET_KEYS = {
    "auth_token",
    "secret",
    "api_key",
    "access_key",
    "secret_key",
    "pass",
    "password",
    "openai_api_key",
}
ENV_REFERENCE = re.compile(r"^env\([A-Z][A-Z0-9_]*\)$")
SMS_PROVIDERS = ("twilio", "twilio_verify", "messagebird", "textlocal", "vonage")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with CONFIG_PATH.open("rb") as file:
        return tomllib.load(file)


def _settings(table: dict[str, Any], path: str = "") -> Iterator[tuple[str, str, Any]]:
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _settings(value, f"{path}{key}.")
        else:
            yield path.rstrip("."), key, value


def test_phone_changes_need_the_code_sent_to_the_phone(config: dict[str, Any]) -> None:
    """[auth.sms] enable_confirmations is true, so a confirmed phone is proof its owner signed in with it."""
    sms = config["auth"]["sms"]
    assert sms.get("enable_confirmations") is True, (
        "[auth.sms] enable_confirmations must be true: with it off, updateUser({ phone }) sets any number "
        "without a code and anyone could take over a WhatsApp user's profile"
    )
    assert sms.get("enabled") is True


def test_plain_twilio_alone_sends_the_codes(config: dict[str, Any]) -> None:
    """Confirmation is only possible when a provider delivers the code, and only plain Twilio checks a phone
    change's code against the account it was sent for (Twilio Verify checks per number: supabase/auth#2430)."""
    sms = config["auth"]["sms"]
    enabled = [name for name in SMS_PROVIDERS if sms.get(name, {}).get("enabled")]
    assert enabled == ["twilio"], enabled
    assert ENV_REFERENCE.match(sms["twilio"].get("content_sid", "")), "WhatsApp needs an approved template"


FICTIONAL_NUMBER = re.compile(r"^1[2-9]\d{2}55501\d{2}$")  # NANP 555-0100..0199, reserved for fiction


def test_codes_are_pinned_only_for_fictional_numbers(config: dict[str, Any]) -> None:
    """[auth.sms.test_otp] codes are checked per number (a pending change of another account could take
    them), so only numbers nobody can own may have one: the local tour's, never a real person's."""
    pinned = config["auth"]["sms"].get("test_otp", {})
    assert [number for number in pinned if not FICTIONAL_NUMBER.match(str(number))] == []


def test_a_code_lives_no_longer_than_the_database_counts_a_pending_change(config: dict[str, Any]) -> None:
    """[auth.sms] otp_expiry is at most the hour during which another account's pending change disputes a
    confirmation (private.phone_change_pending_elsewhere)."""
    assert 0 < config["auth"]["sms"].get("otp_expiry", 60) <= 3600


def test_only_public_is_exposed_by_the_api(config: dict[str, Any]) -> None:
    """PostgREST exposes public alone; private (security-definer internals) never gets an endpoint."""
    assert config["api"]["schemas"] == ["public"]


def test_secrets_are_only_env_references(config: dict[str, Any]) -> None:
    """Every secret-bearing setting, and every Twilio credential, is an env(...) reference, never a value."""
    offenders = [
        f"[{table}] {key} = {value!r}"
        for table, key, value in _settings(config)
        if (key in SECRET_KEYS or (".twilio" in table and key.endswith("_sid")))
        and isinstance(value, str)
        and value
        and not ENV_REFERENCE.match(value)
    ]
    assert not offenders, offenders


def test_anonymous_sign_ins_stay_off(config: dict[str, Any]) -> None:
    """An anonymous user has neither phone nor email to tie a profile to."""
    assert config["auth"].get("enable_anonymous_sign_ins", False) is False


def test_db_major_version_is_the_one_we_test_on(config: dict[str, Any], db: Database) -> None:
    """[db] major_version names the PostgreSQL major version the tests run against."""
    with psycopg.connect(db.url("postgres")) as conn:
        row = conn.execute("select current_setting('server_version_num')::int / 10000").fetchone()
    assert row is not None
    assert config["db"]["major_version"] == row[0]
