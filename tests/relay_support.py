"""Serving the relay in tests: a real uvicorn on a loopback port, requests signed as Twilio signs them.

Shared by every test that talks to the relay over HTTP; its fixtures (`hook`, `relay`, `client`)
live in conftest.py.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from actors import Database
from twilio.request_validator import RequestValidator

from glue.app import create_app
from glue.devdb.serving import BackgroundServer
from glue.gateway import PsycopgGateway
from glue.hooks import ReplyHook, Sender
from glue.settings import WEBHOOK_PATH, Settings
from glue.twilio_request import InboundMessage

TOKEN = "0123456789abcdef0123456789abcdef"
SECONDARY = "fedcba9876543210fedcba9876543210"
WELCOME = "Welcome to Acme! Reply STOP to opt out."
PHONE = "+14155550123"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def twiml(*messages: str) -> str:
    body = "".join(f"<Message>{m}</Message>" for m in messages)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>' if messages else EMPTY_TWIML


def deadline_poll(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Call `check` until it returns True, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class RelayServer(BackgroundServer):
    """The relay (or any app) served by a real uvicorn on 127.0.0.1, with its webhook URL at hand."""

    @property
    def url(self) -> str:
        return self.base + WEBHOOK_PATH

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        assert not self.thread.is_alive(), "uvicorn did not stop"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_auth_token": TOKEN,
        "welcome_reply": WELCOME,
        "db_timeout": 3.0,
        "retry_after_seconds": 7,
        "trust_host_header": True,  # requests are signed for the loopback URL the relay listens on
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.contextmanager
def running_relay(
    database_url: str, hook: ReplyHook | None = None, pool_size: int = 10, **overrides: Any
) -> Iterator[RelayServer]:
    settings = make_settings(**overrides)
    gateway = PsycopgGateway(database_url, pool_size=pool_size, timeout=settings.db_timeout)
    with RelayServer(create_app(settings, gateway, hook)) as server:
        yield server


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


class HookRecorder:
    """A reply hook that counts its calls and answers with the body."""

    def __init__(self) -> None:
        self.calls: list[tuple[Sender, InboundMessage]] = []
        self.lock = threading.Lock()

    def __call__(self, sender: Sender, message: InboundMessage) -> str | None:
        with self.lock:
            self.calls.append((sender, message))
        return f"echo: {message.body}"


def post(client: httpx.Client, url: str, params: dict[str, str], token: str = TOKEN) -> httpx.Response:
    return client.post(url, data=params, headers=sign(url, params, token))


def count(db: Database, table: str) -> int:
    with db.connect("postgres") as conn:
        row = conn.execute(f"select count(*) as n from public.{table}").fetchone()
        assert row is not None
        return int(row["n"])
