"""Helpers for the outbox tests: inbound messages that open the window, sends as the service role, races."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

Conn = psycopg.Connection[dict[str, Any]]

PHONE = "+14155550123"
TEMPLATE = "HX" + "0123456789abcdef" * 2


def receive(
    sql: Conn, sid: str, phone: str = PHONE, body: str = "hello", bsuid: str | None = None
) -> dict[str, Any]:
    """An inbound message as the relay stores it; returns the RPC's row."""
    row = sql.execute(
        "select * from public.receive_whatsapp_message(%s, %s, %s, 'Ada WA', '[]'::jsonb, %s)",
        (sid, f"whatsapp:{phone}" if phone else None, body, bsuid),
    ).fetchone()
    assert row is not None
    return row


def age_inbound_messages(sql: Conn, user_id: uuid.UUID, hours: float) -> None:
    """Moves the profile's inbound messages `hours` into the past, as if time had passed."""
    sql.execute(
        "update public.whatsapp_messages set received_at = received_at - make_interval(secs => %s)"
        " where user_id = %s",
        (hours * 3600, user_id),
    )


def send_sql(
    cur: Any,
    user_id: uuid.UUID,
    key: str,
    body: str | None = None,
    content_sid: str | None = None,
    variables: str | None = None,
) -> dict[str, Any]:
    row = cur.execute(
        "select * from public.send_whatsapp_message(%s, %s, %s, %s, %s::jsonb)",
        (user_id, key, body, content_sid, variables),
    ).fetchone()
    assert row is not None
    return row  # type: ignore[no-any-return]


def race(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Runs every job on its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Any]) -> Any:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def wait_until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    """Polls `condition` until it holds; fails after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def waiting_on_a_lock(sql: Conn, pid: int) -> bool:
    """Whether backend `pid` is blocked on a lock."""
    row = sql.execute("select wait_event_type from pg_stat_activity where pid = %s", (pid,)).fetchone()
    return row is not None and row["wait_event_type"] == "Lock"
