"""Whatever the database answers besides a refused value, the relay says 503, never 500."""

from __future__ import annotations

import logging

import httpx
import pytest
from actors import Database
from relay_support import count, post, running_relay

from glue.simulate import inbound_params


def test_an_unexpected_database_error_is_503_with_retry_after(
    db: Database, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A trigger the application added raises: the webhook gets 503 + Retry-After, and Twilio retries later."""
    with db.connect("postgres") as conn:
        conn.execute(
            "create function public.refuse_messages() returns trigger language plpgsql set search_path = ''"
            " as $$ begin raise exception 'maintenance in progress'; end; $$"
        )
        conn.execute(
            "create trigger refuse before insert on public.whatsapp_messages"
            " for each row execute function public.refuse_messages()"
        )
    params = inbound_params("+14155550170", "hi")
    with running_relay(db.url("postgres")) as relay, caplog.at_level(logging.INFO, logger="glue.relay"):
        refused = post(client, relay.url, params)
        with db.connect("postgres") as conn:
            conn.execute("drop trigger refuse on public.whatsapp_messages")
        retried = post(client, relay.url, params)
    assert (refused.status_code, refused.headers.get("retry-after")) == (503, "7")
    assert "maintenance" not in refused.text
    assert retried.status_code == 200
    assert count(db, "whatsapp_messages") == 1
    [refusal] = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("status") == 503]
    assert (refusal["reason"], refusal["sqlstate"]) == ("db_unavailable", "P0001")
