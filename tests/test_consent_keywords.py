"""Inbound consent keywords: STOP-type words opt the sender out and START-type back in, in the one receive call."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from actors import Database, Postgrest
from outbox_support import TEMPLATE, receive, send_sql
from relay_support import WELCOME, RelayServer, post, twiml

from glue.simulate import inbound_params

Conn = psycopg.Connection[dict[str, Any]]

STOP_EN = "You will get no more WhatsApp messages from us. Reply START to opt back in."
START_EN = "You will get WhatsApp messages from us again. Reply STOP to opt out."


def opted_out(sql: Conn, user_id: Any) -> bool:
    row = sql.execute("select public.whatsapp_opted_out(%s) as out", (user_id,)).fetchone()
    assert row is not None
    return bool(row["out"])


@pytest.mark.parametrize(
    ("body", "effect"),
    [
        ("STOP", True),
        ("stop", True),
        ("  Stop!  ", True),
        ("Parar", True),
        ("BAJA.", True),
        ("opt out", True),
        ("please stop", False),
        ("stopwatch", False),
        ("START", False),
    ],
    ids=[
        "STOP",
        "lower case",
        "spaces and an exclamation mark",
        "Portuguese",
        "Spanish with a full stop",
        "two words",
        "a sentence containing stop",
        "a word starting with stop",
        "START when not opted out",
    ],
)
def test_a_message_that_is_an_opt_out_keyword_opts_the_sender_out(sql: Conn, body: str, effect: bool) -> None:
    """Only a whole message that is a keyword, any case, trailing punctuation ignored, opts out."""
    ada = receive(sql, "SMk1", body="hello")["user_id"]
    row = receive(sql, "SMk2", body=body)
    assert opted_out(sql, ada) is effect
    assert (row["consent_reply"] is not None) is (effect or body == "START")


def test_start_opts_back_in_and_sending_works_again(sql: Conn, postgrest: Postgrest) -> None:
    """STOP then START: the send is refused in between and accepted after."""
    ada = receive(sql, "SMs1", body="STOP")["user_id"]
    with pytest.raises(psycopg.Error) as refused, postgrest.as_service() as cur:
        send_sql(cur, ada, "a", content_sid=TEMPLATE)
    row = receive(sql, "SMs2", body="start")
    with postgrest.as_service() as cur:
        queued = send_sql(cur, ada, "b", body="welcome back")
    assert refused.value.sqlstate == "PT403"
    assert (row["consent_reply"], queued["status"]) == (START_EN, "queued")


def test_a_redelivered_stop_answers_again_without_undoing_a_later_start(sql: Conn) -> None:
    """A STOP delivered again after START confirms again but changes nothing: the START stands."""
    ada = receive(sql, "SMd1", body="STOP")["user_id"]
    receive(sql, "SMd2", body="START")
    again = receive(sql, "SMd1", body="STOP")
    assert (again["duplicate"], again["consent_reply"], opted_out(sql, ada)) == (True, STOP_EN, False)


def test_an_opt_out_by_bsuid_follows_the_merge_into_the_numbers_profile(sql: Conn) -> None:
    """A BSUID-only profile that wrote STOP is merged into its number's profile: the person stays opted out."""
    bsuid = "US.13491208655302741918"
    by_phone = receive(sql, "SMb1")["user_id"]
    receive(sql, "SMb2", phone="", body="STOP", bsuid=bsuid)
    survivor = receive(sql, "SMb3", body="hi", bsuid=bsuid)["user_id"]
    assert survivor == by_phone
    assert opted_out(sql, survivor) is True


def test_keywords_are_configurable(sql: Conn) -> None:
    """A row added to whatsapp_consent_keywords is a keyword, with its own confirmation."""
    sql.execute(
        "insert into public.whatsapp_consent_keywords (keyword, effect, reply) values ('HALT', 'opt_out', 'Halted.')"
    )
    row = receive(sql, "SMh1", body="halt")
    assert (row["consent_reply"], opted_out(sql, row["user_id"])) == ("Halted.", True)


def test_the_relay_confirms_an_opt_out_and_an_opt_in_in_its_twiml(
    relay: RelayServer, client: httpx.Client, db: Database
) -> None:
    """STOP is answered with the confirmation alone (no hook reply), START with its own."""
    first = post(client, relay.url, inbound_params("+14155550123", "hi"))
    stop = post(client, relay.url, inbound_params("+14155550123", "STOP"))
    start = post(client, relay.url, inbound_params("+14155550123", "Start"))
    assert first.text == twiml(WELCOME, "echo: hi")
    assert (stop.status_code, stop.text) == (200, twiml(STOP_EN))
    assert (start.status_code, start.text) == (200, twiml(START_EN))
