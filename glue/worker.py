"""The outbox worker: claims queued WhatsApp messages, sends them through Twilio's Messages API, settles them.

Any number of workers share one queue: public.claim_outbound_messages takes rows FOR UPDATE SKIP LOCKED,
so each message is claimed by one worker. A Twilio 4xx is a failure with Twilio's code. A timeout, a
dropped connection or a 5xx leaves the outcome unknown: the message is never sent again blindly.
Reconciliation asks Twilio first (by SID when there is one, else the account's log of messages to the
recipient since the attempt) and queues the message again only when Twilio has no trace of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import psycopg
import requests
from psycopg.rows import dict_row
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

# Twilio's log has second resolution and clocks differ: a message created this long before our
# attempt started may still be ours.
CLOCK_SKEW = dt.timedelta(seconds=5)


@dataclass
class Tally:
    """What one pass did, for logs and tests."""

    sent: int = 0
    failed: int = 0
    unknown: int = 0
    reconciled: int = 0
    requeued: int = 0
    sids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerConfig:
    """Who sends (a WhatsApp sender or a Messaging Service) and how long a claim holds."""

    from_address: str | None = None
    messaging_service_sid: str | None = None
    status_callback_url: str | None = None
    batch: int = 10
    lease_seconds: int = 60
    # A message Twilio's log does not show is queued again only after this long, so that a
    # message Twilio accepted a moment ago has time to appear there.
    requeue_after_seconds: int = 60


def _send_arguments(row: dict[str, Any], config: WorkerConfig) -> dict[str, Any]:
    args: dict[str, Any] = {"to": row["to_address"]}
    if config.messaging_service_sid:
        args["messaging_service_sid"] = config.messaging_service_sid
    if config.from_address:
        args["from_"] = config.from_address
    if row["content_sid"]:
        args["content_sid"] = row["content_sid"]
        if row["content_variables"] is not None:
            import json

            args["content_variables"] = json.dumps(row["content_variables"])
    else:
        args["body"] = row["body"]
    if config.status_callback_url:
        args["status_callback"] = f"{config.status_callback_url}?outbound_message_id={row['id']}"
    return args


def _settle(conn: psycopg.Connection[Any], row: dict[str, Any], outcome: str, **extra: Any) -> None:
    conn.execute(
        "select * from public.settle_outbound_message(%(id)s, %(attempt)s, %(outcome)s, %(sid)s, %(code)s,"
        " %(error)s, %(recheck)s)",
        {
            "id": row["id"],
            "attempt": row["attempts"],
            "outcome": outcome,
            "sid": extra.get("sid"),
            "code": extra.get("code"),
            "error": extra.get("error"),
            "recheck": extra.get("recheck", 0),
        },
    )


def send_pass(conn: psycopg.Connection[Any], client: Client, config: WorkerConfig, tally: Tally) -> int:
    """Claims one batch and sends it; returns how many were claimed."""
    rows = conn.execute(
        "select * from public.claim_outbound_messages(%s, %s)", (config.batch, config.lease_seconds)
    ).fetchall()
    for row in rows:
        try:
            message = client.messages.create(**_send_arguments(row, config))
        except TwilioRestException as error:
            if 400 <= error.status < 500:
                _settle(conn, row, "failed", code=error.code, error=str(error.msg)[:500])
                tally.failed += 1
            else:
                _settle(conn, row, "unknown", code=error.code, error=f"Twilio answered {error.status}")
                tally.unknown += 1
        except requests.RequestException as error:
            _settle(conn, row, "unknown", error=f"{type(error).__name__}: the API call's outcome is unknown")
            tally.unknown += 1
        else:
            _settle(conn, row, "sent", sid=message.sid)
            tally.sent += 1
            tally.sids.append(str(message.sid))
    return len(rows)


def reconcile_pass(conn: psycopg.Connection[Any], client: Client, config: WorkerConfig, tally: Tally) -> int:
    """Settles messages whose outcome is unknown by asking Twilio; returns how many it looked at."""
    rows = conn.execute(
        "select * from public.claim_unsettled_outbound_messages(%s, %s)", (config.batch, config.lease_seconds)
    ).fetchall()
    for row in rows:
        try:
            found = _find_in_twilio(conn, client, row, config)
        except (TwilioRestException, requests.RequestException) as error:
            _settle(conn, row, "unknown", error=f"reconciliation failed: {type(error).__name__}", recheck=10)
            continue
        if found is not None:
            _settle(conn, row, "sent", sid=found)
            tally.reconciled += 1
            continue
        waited = dt.datetime.now(dt.UTC) - (row["unknown_at"] or row["sending_at"])
        if waited >= dt.timedelta(seconds=config.requeue_after_seconds):
            _settle(conn, row, "queued", error="Twilio has no trace of the message: queued again")
            tally.requeued += 1
        else:
            _settle(conn, row, "unknown", error=row["error_message"], recheck=config.requeue_after_seconds)
    return len(rows)


def _find_in_twilio(
    conn: psycopg.Connection[Any], client: Client, row: dict[str, Any], config: WorkerConfig
) -> str | None:
    """The SID of the message Twilio made of this attempt, or None if it has none; ambiguity raises."""
    if row["message_sid"]:
        return str(client.messages(row["message_sid"]).fetch().sid)
    since: dt.datetime = row["sending_at"] - CLOCK_SKEW
    candidates = [
        m
        for m in client.messages.list(to=row["to_address"], date_sent_after=since, limit=50)
        if m.date_created is None or m.date_created >= since
    ]
    known = {
        r["message_sid"]
        for r in conn.execute(
            "select message_sid from public.outbound_messages where message_sid = any(%s)",
            ([str(m.sid) for m in candidates],),
        ).fetchall()
    }
    unclaimed = [m for m in candidates if str(m.sid) not in known and _same_content(m, row)]
    if len(unclaimed) > 1:
        raise TwilioRestException(409, "", msg="more than one message could be this one: settle it by hand")
    return str(unclaimed[0].sid) if unclaimed else None


def _same_content(message: Any, row: dict[str, Any]) -> bool:
    # A template's text is Twilio's rendering, which we cannot compare: any message to the
    # recipient since the attempt counts.
    return row["body"] is None or message.body == row["body"]


def run_once(database_url: str, client: Client, config: WorkerConfig) -> Tally:
    """One send pass and one reconciliation pass."""
    tally = Tally()
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row, prepare_threshold=None) as conn:
        send_pass(conn, client, config, tally)
        reconcile_pass(conn, client, config, tally)
    return tally


class RedirectedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The twilio library's own HTTP client, pointed at another base URL (a local stand-in of the API)."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(
            method, url.replace("https://api.twilio.com", self.base_url, 1), *args, **kwargs
        )
