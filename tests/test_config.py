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


def test_exactly_one_sms_provider_sends_the_codes(config: dict[str, Any]) -> None:
    """Confirmation is only possible when a provider delivers the code: one Twilio provider is enabled."""
    sms = config["auth"]["sms"]
    enabled = [name for name in SMS_PROVIDERS if sms.get(name, {}).get("enabled")]
    assert len(enabled) == 1 and enabled[0].startswith("twilio"), enabled


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
