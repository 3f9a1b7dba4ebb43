"""The outbox worker against a local stand-in of Twilio's Messages API, through the official twilio library."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from actors import Database, Postgrest
from outbox_support import TEMPLATE, race, receive, send_sql
from relay_support import RelayServer
from twilio.rest import Client

from glue.devdb.twilio_api import ACCOUNT, TOKEN, TwilioStandIn
from glue.worker import RedirectedHttpClient, Tally, WorkerConfig, reconcile_pass, run_once, send_pass

Conn = psycopg.Connection[dict[str, Any]]
CONFIG = WorkerConfig(from_address="whatsapp:+14155238886", requeue_after_seconds=0)


@pytest.fixture
def standin() -> Iterator[tuple[TwilioStandIn, RelayServer]]:
    fake = TwilioStandIn()
    with RelayServer(fake.app) as server:  # RelayServer serves any ASGI app on a loopback port
        yield fake, server


def twilio(server: RelayServer, timeout: float = 5.0) -> Client:
    return Client(ACCOUNT, TOKEN, http_client=RedirectedHttpClient(server.base, timeout=timeout))


def queue(sql: Conn, postgrest: Postgrest, n: int) -> list[Any]:
    ids = []
    for i in range(n):
        user = receive(sql, f"SMq{i}", phone=f"+1415556{i:04d}")["user_id"]
        with postgrest.as_service() as cur:
            ids.append(send_sql(cur, user, "k", body=f"hello {i}")["id"])
    return ids


def test_a_message_is_sent_and_recorded_with_its_sid(
    sql: Conn, postgrest: Postgrest, db: Database, standin: tuple[TwilioStandIn, RelayServer]
) -> None:
    """The worker sends the body to the resolved address and records Twilio's SID as sent."""
    fake, server = standin
    [message_id] = queue(sql, postgrest, 1)
    tally = run_once(db.url("postgres"), twilio(server), CONFIG)
    row = sql.execute(
        "select status, message_sid from public.outbound_messages where id = %s", (message_id,)
    ).fetchone()
    assert (tally.sent, [(m["to"], m["body"]) for m in fake.messages]) == (
        1,
        [("whatsapp:+14155560000", "hello 0")],
    )
    assert row == {"status": "sent", "message_sid": fake.messages[0]["sid"]}


def test_a_4xx_is_a_failure_with_twilios_code(
    sql: Conn, postgrest: Postgrest, db: Database, standin: tuple[TwilioStandIn, RelayServer]
) -> None:
    """Twilio's 21211 (invalid To) fails the message with that code; nothing is retried."""
    fake, server = standin
    queue(sql, postgrest, 1)
    fake.fail_next = (400, 21211, "The 'To' number is not a valid phone number.")
    run_once(db.url("postgres"), twilio(server), CONFIG)
    again = run_once(db.url("postgres"), twilio(server), CONFIG)
    row = sql.execute("select status, error_code from public.outbound_messages").fetchone()
    assert (row, again.sent, fake.messages) == ({"status": "failed", "error_code": 21211}, 0, [])


def test_a_timeout_is_reconciled_to_sent_once(
    sql: Conn, postgrest: Postgrest, db: Database, standin: tuple[TwilioStandIn, RelayServer]
) -> None:
    """Twilio accepts but the answer is lost: the message goes unknown, reconciliation finds it, nothing is resent."""
    fake, server = standin
    [message_id] = queue(sql, postgrest, 1)
    fake.stall_next = 3.0
    with psycopg.connect(db.url("postgres"), autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        tally = Tally()
        send_pass(conn, twilio(server, timeout=1.0), CONFIG, tally)
        status = conn.execute("select status from public.outbound_messages").fetchone()
        conn.execute("update public.outbound_messages set claimed_until = now() - interval '1 second'")
        reconcile_pass(conn, twilio(server), CONFIG, tally)
        send_pass(conn, twilio(server), CONFIG, tally)
    row = sql.execute(
        "select status, message_sid from public.outbound_messages where id = %s", (message_id,)
    ).fetchone()
    assert status == {"status": "unknown"}
    assert (tally.unknown, tally.reconciled, tally.sent, len(fake.messages)) == (1, 1, 0, 1)
    assert row == {"status": "sent", "message_sid": fake.messages[0]["sid"]}


def test_a_message_twilio_never_saw_is_queued_again_and_sent(
    sql: Conn, postgrest: Postgrest, db: Database, standin: tuple[TwilioStandIn, RelayServer]
) -> None:
    """A 503 from Twilio is unknown; the log shows nothing, so the message is queued again and sent once."""
    fake, server = standin
    queue(sql, postgrest, 1)
    fake.fail_next = (503, 20500, "Service unavailable")
    with psycopg.connect(db.url("postgres"), autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        tally = Tally()
        send_pass(conn, twilio(server), CONFIG, tally)
        reconcile_pass(conn, twilio(server), CONFIG, tally)
        send_pass(conn, twilio(server), CONFIG, tally)
    assert (tally.unknown, tally.requeued, tally.sent, len(fake.messages)) == (1, 1, 1, 1)


def test_two_workers_racing_send_each_message_once(
    sql: Conn, postgrest: Postgrest, db: Database, standin: tuple[TwilioStandIn, RelayServer]
) -> None:
    """Two workers claiming at once (batch 3, 12 messages) send every message exactly once."""
    fake, server = standin
    ids = queue(sql, postgrest, 12)
    config = WorkerConfig(from_address="whatsapp:+14155238886", batch=3)

    def worker() -> int:
        total = 0
        while (n := run_once(db.url("postgres"), twilio(server), config).sent) > 0:
            total += n
        return total

    counts = race([worker, worker])
    assert sum(counts) == 12
    assert sorted(m["body"] for m in fake.messages) == sorted(f"hello {i}" for i in range(12))
    assert sql.execute(
        "select count(*) as n from public.outbound_messages where status = 'sent'"
    ).fetchone() == {"n": len(ids)}


def test_a_template_is_sent_by_content_sid(
    sql: Conn, postgrest: Postgrest, db: Database, standin: tuple[TwilioStandIn, RelayServer]
) -> None:
    """A queued template goes as ContentSid, not as a body."""
    fake, server = standin
    ada = receive(sql, "SMt")["user_id"]
    with postgrest.as_service() as cur:
        send_sql(cur, ada, "t", content_sid=TEMPLATE, variables='{"1": "Ada"}')
    run_once(db.url("postgres"), twilio(server), CONFIG)
    assert [(m["content_sid"], m["body"]) for m in fake.messages] == [(TEMPLATE, "")]


def test_glue_worker_once_sends_the_queued_message(
    db: Database, sql: Conn, postgrest: Postgrest, standin: tuple[TwilioStandIn, RelayServer], tmp_path: Any
) -> None:
    """`glue worker --once`, configured from the environment as a deployment is, sends what is queued."""
    fake, server = standin
    [message_id] = queue(sql, postgrest, 1)
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": db.url("postgres"),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "TWILIO_API_BASE_URL": server.base,
        "PUBLIC_BASE_URL": "https://relay.example.com",
    }
    glue = str(Path(sys.executable).with_name("glue"))
    result = subprocess.run(
        [glue, "worker", "--once"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "worker: sent 1, failed 0" in result.stdout
    assert [m["to"] for m in fake.messages] == ["whatsapp:+14155560000"]
    row = sql.execute(
        "select status, message_sid from public.outbound_messages where id = %s", (message_id,)
    ).fetchone()
    assert row is not None and row["status"] == "sent" and row["message_sid"] == fake.messages[0]["sid"]


def test_glue_worker_says_what_is_missing(tmp_path: Any) -> None:
    """Without its settings the worker exits 2 and names each one."""
    glue = str(Path(sys.executable).with_name("glue"))
    env = {"PATH": os.environ["PATH"]}
    result = subprocess.run(
        [glue, "worker", "--once"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "DATABASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN" in result.stderr


def test_glue_worker_points_status_callbacks_at_status_callback_url(
    db: Database, sql: Conn, postgrest: Postgrest, standin: tuple[TwilioStandIn, RelayServer], tmp_path: Any
) -> None:
    """STATUS_CALLBACK_URL (the Edge Function's URL + /status) is the StatusCallback each message names, with its id."""
    fake, server = standin
    [message_id] = queue(sql, postgrest, 1)
    edge = "https://ref.supabase.co/functions/v1/whatsapp-webhook/status"
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": db.url("postgres"),
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "TWILIO_API_BASE_URL": server.base,
        "PUBLIC_BASE_URL": "https://relay.example.com",
        "STATUS_CALLBACK_URL": edge,
    }
    glue = str(Path(sys.executable).with_name("glue"))
    result = subprocess.run(
        [glue, "worker", "--once"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert [m["callback"] for m in fake.messages] == [f"{edge}?outbound_message_id={message_id}"]
