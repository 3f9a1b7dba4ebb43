"""The relay's configuration: one typed object read from environment variables (and `.env`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

WEBHOOK_PATH = "/twilio/webhook"


class Settings(BaseSettings):
    """Everything the relay and the `glue` CLI read from the environment. See .env.example."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # The database: DATABASE_URL wins when both ways are configured.
    database_url: SecretStr | None = None
    supabase_url: str | None = None
    supabase_service_role_key: SecretStr | None = None
    db_timeout: float = Field(default=5.0, gt=0)
    db_pool_size: int = Field(default=10, ge=1)

    # Twilio.
    twilio_auth_token: SecretStr | None = None
    # The outbox worker (`glue worker`): the account that sends, and its WhatsApp sender or
    # Messaging Service; TWILIO_API_BASE_URL points the twilio library elsewhere (a local stand-in).
    twilio_account_sid: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str | None = None
    # Where Twilio reports each message's status: PUBLIC_BASE_URL + /twilio/status unless set
    # (the Edge Function's is https://<ref>.supabase.co/functions/v1/whatsapp-webhook/status).
    status_callback_url: str | None = None
    worker_interval: float = Field(default=1.0, gt=0)
    twilio_auth_token_secondary: SecretStr | None = None
    public_base_url: str | None = None
    trust_forwarded_headers: bool = False
    trust_host_header: bool = False
    twilio_account_sids: Annotated[list[str], NoDecode] = []
    twilio_to_numbers: Annotated[list[str], NoDecode] = []

    # Replies.
    welcome_reply: str | None = None
    reply_hook: str | None = None
    hook_timeout: float = Field(default=5.0, gt=0)

    # HTTP.
    max_body_bytes: int = Field(default=65536, ge=1024)
    retry_after_seconds: int = Field(default=5, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("twilio_account_sids", "twilio_to_numbers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("public_base_url", "supabase_url", "welcome_reply", "reply_hook", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("PUBLIC_BASE_URL must start with https:// (or http:// for local tests)")
        return value.rstrip("/")

    @field_validator("reply_hook")
    @classmethod
    def _hook_shape(cls, value: str | None) -> str | None:
        if value is not None and value.count(":") != 1:
            raise ValueError("REPLY_HOOK must be 'package.module:callable'")
        return value

    def public_url_problem(self) -> str | None:
        """Why the URL signatures are checked against is not pinned by configuration, or None when it is."""
        if self.public_base_url or self.trust_forwarded_headers or self.trust_host_header:
            return None
        return (
            "PUBLIC_BASE_URL is not set: signatures would be checked against the request's Host header, so a"
            " signature made for another deployment sharing the auth token would pass. Set PUBLIC_BASE_URL"
            " to the URL Twilio calls (without /twilio/webhook), or TRUST_HOST_HEADER=true for local use"
        )

    def auth_tokens(self) -> list[str]:
        """The tokens a signature may be made with: the primary, then the secondary during rotation."""
        tokens = [self.twilio_auth_token, self.twilio_auth_token_secondary]
        return [t.get_secret_value() for t in tokens if t is not None and t.get_secret_value()]

    def gateway_kind(self) -> Literal["psycopg", "supabase"] | None:
        """Which way to the database this configuration selects, or None when neither is complete."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return "psycopg"
        if self.supabase_url and self.supabase_service_role_key is not None:
            return "supabase"
        return None
