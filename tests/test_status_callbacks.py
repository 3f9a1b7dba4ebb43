"""Twilio's status callbacks: each message's status only moves forward, whatever the order or repetition."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import psycopg
import pytest
from actors import Database, Postgrest
from outbox_support import TEMPLATE, race, receive, send_sql
from relay_support import RelayServer, post, sign

Conn = psycopg.Connection[dict[str, Any]]

SID = "SM" + "ab" * 16


def sent_message(sql: Conn, postgrest: Postgrest, sid: str | None = SID) -> dict[str, Any]:
    """A message queued, claimed by a worker and settled as sent with `sid` (or left unknown without one)."""
    ada = receive(sql, "SMin")["user_id"]
    with postgrest.as_service() as cur:
        row = send_sql(cur, ada, "k", content_sid=TEMPLATE)
        [claimed] = cur.execute("select * from public.claim_outbound_messages(1)").fetchall()
        outcome = "sent" if sid else "unknown"
        cur.execute(
            "select * from public.settle_outbound_message(%s, %s, %s, %s)",
            (row["id"], claimed["attempts"], outcome, sid),
        ).fetchall()
    return row


def callback(sql: Conn, status: str, code: int | None = None, sid: str = SID, outbound: Any = None) -> Any:
    return sql.execute(
        "select * from public.record_whatsapp_status(%s, %s, %s, %s)", (sid, status, code, outbound)
    ).fetchall()


def final_status(sql: Conn, message_id: Any) -> dict[str, Any]:
    row = sql.execute(
        "select status, error_code, delivered_at is not null as delivered, read_at is not null as read"
        " from public.outbound_messages where id = %s",
        (message_id,),
    ).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["sent", "delivered", "read"])),
    ids=lambda order: " then ".join(order),
)
def test_callbacks_in_every_order_end_at_read(
    sql: Conn, postgrest: Postgrest, order: tuple[str, ...]
) -> None:
    """sent, delivered and read in any order leave the message read, with every timestamp stamped."""
    message = sent_message(sql, postgrest)
    for status in order:
        callback(sql, status)
    assert final_status(sql, message["id"]) == {
        "status": "read",
        "error_code": None,
        "delivered": True,
        "read": True,
    }


def test_a_redelivered_callback_changes_nothing(sql: Conn, postgrest: Postgrest) -> None:
    """The same delivered callback twice: the second reports no change."""
    message = sent_message(sql, postgrest)
    first = callback(sql, "delivered")
    second = callback(sql, "delivered")
    assert first == [{"id": message["id"], "status": "delivered", "changed": True}]
    assert second == [{"id": message["id"], "status": "delivered", "changed": False}]


def test_undelivered_beats_sent_but_not_delivered(sql: Conn, postgrest: Postgrest) -> None:
    """A late sent does not undo undelivered (kept with its code); Twilio reporting delivered afterwards wins."""
    message = sent_message(sql, postgrest)
    callback(sql, "undelivered", 63016)
    callback(sql, "sent")
    assert final_status(sql, message["id"])["status"] == "undelivered"
    callback(sql, "delivered")
    assert final_status(sql, message["id"]) == {
        "status": "delivered",
        "error_code": 63016,
        "delivered": True,
        "read": False,
    }


def test_a_callback_for_a_message_outside_the_outbox_is_ignored(sql: Conn) -> None:
    """No row, no error: the message was sent by something else."""
    assert callback(sql, "delivered", sid="SM" + "cd" * 16) == []


def test_a_callback_settles_a_message_whose_send_outcome_was_unknown(sql: Conn, postgrest: Postgrest) -> None:
    """Named by the outbound id in its URL, a callback gives an unknown message its SID and status."""
    message = sent_message(sql, postgrest, sid=None)
    callback(sql, "sent", outbound=message["id"])
    row = sql.execute("select status, message_sid from public.outbound_messages").fetchone()
    assert row == {"status": "sent", "message_sid": SID}


def test_concurrent_callbacks_never_move_backwards(sql: Conn, postgrest: Postgrest, db: Database) -> None:
    """read, delivered and sent from three connections at once (10 rounds) always end at read."""
    apis = [Postgrest(db) for _ in range(3)]
    try:
        for round_ in range(10):
            sid = f"SM{round_:032x}"
            ada = receive(sql, f"SMr{round_}", phone=f"+1415555{round_:04d}")["user_id"]
            with postgrest.as_service() as cur:
                row = send_sql(cur, ada, "k", content_sid=TEMPLATE)
                cur.execute("select * from public.claim_outbound_messages(1)").fetchall()
                cur.execute(
                    "select * from public.settle_outbound_message(%s, 1, 'sent', %s)", (row["id"], sid)
                )

            def job(api: Postgrest, status: str, sid: str = sid) -> Any:
                with api.as_service() as cur:
                    return cur.execute(
                        "select * from public.record_whatsapp_status(%s, %s)", (sid, status)
                    ).fetchall()

            race(
                [lambda a=a, s=s: job(a, s) for a, s in zip(apis, ["read", "delivered", "sent"], strict=True)]
            )
            assert final_status(sql, row["id"])["status"] == "read"
    finally:
        for api in apis:
            api.close()


# the relay's route ------------------------------------------------------------------


def status_params(status: str, sid: str = SID) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "MessageStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "From": "whatsapp:+14155238886",
        "To": "whatsapp:+14155550123",
        "ApiVersion": "2010-04-01",
    }


def test_the_relay_records_signed_callbacks_and_refuses_unsigned_ones(
    relay: RelayServer, client: httpx.Client, sql: Conn, postgrest: Postgrest
) -> None:
    """POST /twilio/status: a forged callback is 403 and changes nothing; signed ones are 200, read beats delivered."""
    message = sent_message(sql, postgrest)
    url = relay.base + f"/twilio/status?outbound_message_id={message['id']}"
    forged = client.post(url, data=status_params("failed"), headers={"X-Twilio-Signature": "bogus"})
    assert forged.status_code == 403
    assert post(client, url, status_params("read")).status_code == 200
    assert post(client, url, status_params("delivered")).status_code == 200
    assert final_status(sql, message["id"])["status"] == "read"


def test_the_relay_names_a_missing_field_with_400(relay: RelayServer, client: httpx.Client) -> None:
    """A signed callback without MessageStatus is a 400 naming it."""
    url = relay.base + "/twilio/status"
    params = status_params("sent")
    del params["MessageStatus"]
    response = client.post(url, data=params, headers=sign(url, params))
    assert (response.status_code, response.text) == (400, "MessageStatus is required")
