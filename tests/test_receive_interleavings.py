"""receive_whatsapp_message held still at each point where an erasure can cut in, and what follows.

A stress loop (test_whatsapp_rpc) runs deliveries against erasures and hits these windows by
chance, or not at all. Here a trigger the test adds holds the delivery at one exact point,
on an advisory lock the test owns, while forget_user runs on another connection; then the
delivery goes on. Each window ends in a whole receipt, or in an error that the relay either
retries itself or answers with 503 so that Twilio delivers again; nothing is half written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from actors import Database
from relay_support import WELCOME, count, deadline_poll, post, running_relay

from glue.simulate import inbound_params

Conn = psycopg.Connection[dict[str, Any]]

PAUSE_LOCK = 7_340_001
SID = "SM00000000000000000000000000000071"
PHONE = "+14155550171"
BSUID = "US.13491208655302741918"

# Before each row: after the sender lookup, before the message's foreign key check.
# After the statement: after `on conflict do nothing` chose not to insert (a statement
# trigger fires with no rows), before the redelivery reads the first delivery's row.
PAUSE_POINTS = {
    "before the message insert": "before insert on public.whatsapp_messages for each row",
    "after the message insert": "after insert on public.whatsapp_messages for each statement",
}


@contextmanager
def paused(db: Database, point: str) -> Iterator[Callable[[], None]]:
    """Deliveries stop at `point` until the returned `release` is called, and pass it freely after."""
    holder = db.connect("postgres")
    holder.execute(
        "create function public.test_pause() returns trigger language plpgsql set search_path = ''"
        f" as $$ begin perform pg_catalog.pg_advisory_xact_lock_shared({PAUSE_LOCK}); return new; end; $$"
    )
    holder.execute(f"create trigger test_pause {PAUSE_POINTS[point]} execute function public.test_pause()")
    holder.execute("select pg_advisory_lock(%s)", (PAUSE_LOCK,))
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            holder.execute("select pg_advisory_unlock(%s)", (PAUSE_LOCK,))
            released = True

    try:
        yield release
    finally:
        release()
        holder.close()


def waiting_on(conn: Conn, wait_event: str) -> Callable[[], bool]:
    """Whether a session in this test's database waits on a lock of this kind ('advisory', 'transactionid')."""

    def check() -> bool:
        row = conn.execute(
            "select count(*) as n from pg_stat_activity"
            " where datname = current_database() and wait_event_type = 'Lock' and wait_event = %s",
            (wait_event,),
        ).fetchone()
        return row is not None and row["n"] > 0

    return check


class Background:
    """One statement run on its own connection in a thread; `result()` returns its rows or raises its error."""

    def __init__(self, db: Database, query: str, params: tuple[Any, ...] = ()) -> None:
        self.conn = db.connect("postgres")
        self.outcome: list[dict[str, Any]] | BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(query, params))
        self.thread.start()

    def _run(self, query: str, params: tuple[Any, ...]) -> None:
        try:
            self.outcome = self.conn.execute(query, params).fetchall()
        except BaseException as error:  # handed to the test thread by result()
            self.outcome = error

    def result(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the statement did not finish"
        self.conn.close()
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome


RECEIVE = "select * from public.receive_whatsapp_message(%s, %s, 'hello', null, '[]', %s)"

# receive finds a known sender whose profile holds the number as written itself, and any other
# through private.whatsapp_user: each window is held open on both ways, which must lock alike.
NUMBER_WRITTEN = pytest.mark.parametrize(
    "sent_from",
    [f"whatsapp:{PHONE}", "+1 (415) 555-0171"],
    ids=["receive's own lookup", "through whatsapp_user"],
)


def forget(sql: Conn, phone: str) -> None:
    """Erase the number's profile; fail rather than hang if the erasure has to wait for the delivery."""
    sql.execute("set lock_timeout = '5s'")
    sql.execute("select public.forget_user(u.id) from public.users as u where u.phone_number = %s", (phone,))


@NUMBER_WRITTEN
def test_a_sender_erased_between_lookup_and_insert_fails_the_delivery_whole(
    db: Database, sql: Conn, sent_from: str
) -> None:
    """Found by number alone (no lock), then erased before the message is written: 23503, nothing
    stored, and the redelivery stores the message under a new profile for the number."""
    sql.execute("select public.get_or_create_whatsapp_user(%s)", (PHONE,))
    [erased] = sql.execute("select id from public.users where phone_number = %s", (PHONE,)).fetchall()
    with paused(db, "before the message insert") as release:
        delivery = Background(db, RECEIVE, (SID, sent_from, None))
        deadline_poll(waiting_on(sql, "advisory"), what="the delivery to reach the message insert")
        forget(sql, PHONE)  # does not wait: the number-only lookup locked nothing
        assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 0}
        release()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            delivery.result()
    assert sql.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 0}
    [again] = sql.execute(RECEIVE, (SID, f"whatsapp:{PHONE}", None)).fetchall()
    assert (again["duplicate"], again["user_created"]) == (False, True)
    assert again["user_id"] != erased["id"]


@pytest.mark.parametrize(
    "bsuid_sent", [BSUID, f"whatsapp:{BSUID}"], ids=["receive's own lookup", "through whatsapp_user"]
)
def test_with_a_bsuid_the_sender_is_locked_until_the_message_is_stored(
    db: Database, sql: Conn, bsuid_sent: str
) -> None:
    """Found by number and BSUID, the profile is held (for key share): the erasure waits for the
    delivery, which stores its message whole; then the erasure removes profile and message."""
    sql.execute("select public.get_or_create_whatsapp_user(%s, null, %s)", (PHONE, BSUID))
    with paused(db, "before the message insert") as release:
        delivery = Background(db, RECEIVE, (SID, f"whatsapp:{PHONE}", bsuid_sent))
        deadline_poll(waiting_on(sql, "advisory"), what="the delivery to reach the message insert")
        erasure = Background(
            db, "select public.forget_user(u.id) from public.users as u where u.phone_number = %s", (PHONE,)
        )
        deadline_poll(waiting_on(sql, "transactionid"), what="the erasure to wait for the delivery")
        release()
        [stored] = delivery.result()
        erasure.result()
    assert (stored["duplicate"], stored["user_created"]) == (False, False)
    assert sql.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 0}
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 0}


@NUMBER_WRITTEN
def test_a_redelivery_whose_first_delivery_is_erased_before_the_reread_asks_for_a_retry(
    db: Database, sql: Conn, sent_from: str
) -> None:
    """The redelivery's insert meets the first delivery's row, then the erasure removes it before the
    redelivery reads it: 40001, nothing stored; delivered again, the message is stored afresh."""
    [first] = sql.execute(RECEIVE, (SID, f"whatsapp:{PHONE}", None)).fetchall()
    with paused(db, "after the message insert") as release:
        redelivery = Background(db, RECEIVE, (SID, sent_from, None))
        deadline_poll(waiting_on(sql, "advisory"), what="the redelivery to pass its insert")
        forget(sql, PHONE)
        release()
        with pytest.raises(psycopg.errors.SerializationFailure, match=f"message_sid {SID} was erased"):
            redelivery.result()
    assert sql.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 0}
    [again] = sql.execute(RECEIVE, (SID, f"whatsapp:{PHONE}", None)).fetchall()
    assert (again["duplicate"], again["user_created"]) == (False, True)
    assert again["user_id"] != first["user_id"]


def deliver_through_erasure(
    db: Database, sql: Conn, client: httpx.Client, point: str
) -> list[httpx.Response]:
    """Through a real relay: a first delivery, then a redelivery held at `point` while the sender is
    erased, then Twilio's next delivery of the same message. Returns the three answers."""
    params = inbound_params(PHONE, "hello")
    answers: list[httpx.Response] = []
    with running_relay(db.url("postgres")) as relay:
        answers.append(post(client, relay.url, params))
        with paused(db, point) as release:
            redelivery = threading.Thread(target=lambda: answers.append(post(client, relay.url, params)))
            redelivery.start()
            deadline_poll(waiting_on(sql, "advisory"), what=f"the redelivery to reach {point}")
            forget(sql, PHONE)
            release()
            redelivery.join(20)
        answers.append(post(client, relay.url, params))
    return answers


def test_through_the_relay_a_sender_erased_before_the_insert_is_a_503_and_the_retry_is_stored(
    db: Database, sql: Conn, client: httpx.Client
) -> None:
    """The 23503 window end to end: 503 with Retry-After (never 500), and Twilio's retry is stored."""
    first, refused, retried = deliver_through_erasure(db, sql, client, "before the message insert")
    assert (first.status_code, retried.status_code) == (200, 200)
    assert (refused.status_code, refused.headers.get("retry-after")) == (503, "7")
    assert count(db, "whatsapp_messages") == 1


def test_through_the_relay_the_erased_first_delivery_is_stored_again_by_the_relays_own_retry(
    db: Database, sql: Conn, client: httpx.Client
) -> None:
    """The 40001 window end to end: a serialization failure is retried once by the relay itself, which
    stores the message afresh, so the redelivery is answered 200 (with the welcome of a first contact,
    since the number's profile was erased), and Twilio's next delivery gets the same answer."""
    first, redelivered, again = deliver_through_erasure(db, sql, client, "after the message insert")
    assert [r.status_code for r in (first, redelivered, again)] == [200, 200, 200]
    assert WELCOME in redelivered.text and again.text == redelivered.text
    assert count(db, "whatsapp_messages") == 1
    assert count(db, "users") == 1
