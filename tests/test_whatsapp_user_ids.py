"""WhatsApp usernames: senders known by a business-scoped user id (BSUID) keep one profile."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from actors import Database

Conn = psycopg.Connection[dict[str, Any]]
BSUID = "US.13491208655302741918"
RECEIVE = (
    "select * from public.receive_whatsapp_message(message_sid => %s, phone => %s, body => %s,"
    " whatsapp_user_id => %s)"
)


def receive(sql: Conn, sid: str, phone: str | None, bsuid: str | None, body: str = "hi") -> dict[str, Any]:
    row = sql.execute(RECEIVE, (sid, phone, body, bsuid)).fetchone()
    assert row is not None
    return row


def profiles(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(
        "select u.id, u.phone_number, u.whatsapp_user_id,"
        " (select count(*) from public.whatsapp_messages m where m.user_id = u.id) as messages"
        " from public.users u order by u.created_at"
    ).fetchall()


def test_a_message_with_only_a_bsuid_is_stored_on_a_bsuid_profile(sql: Conn) -> None:
    """No phone in the payload: the sender gets a profile keyed by BSUID, and the message is kept."""
    first = receive(sql, "SMu1", None, f"whatsapp:{BSUID}")
    again = receive(sql, "SMu2", None, BSUID)
    assert first["user_created"] is True and again["user_created"] is False
    assert first["user_id"] == again["user_id"]
    assert profiles(sql) == [
        {"id": first["user_id"], "phone_number": None, "whatsapp_user_id": BSUID, "messages": 2}
    ]


def test_a_parent_bsuid_is_accepted(sql: Conn) -> None:
    """Parent BSUIDs shared across portfolios (US.ENT.…) are BSUIDs too."""
    row = receive(sql, "SMu3", None, "US.ENT.11815799212886844830")
    assert row["user_created"] is True


def test_phone_and_bsuid_together_make_one_profile_with_both(sql: Conn) -> None:
    """A first message carrying both identifiers creates one profile holding both."""
    row = receive(sql, "SMu4", "whatsapp:+14155550140", BSUID)
    assert profiles(sql) == [
        {"id": row["user_id"], "phone_number": "+14155550140", "whatsapp_user_id": BSUID, "messages": 1}
    ]


def test_the_bsuid_is_recorded_on_an_existing_phone_profile(sql: Conn) -> None:
    """A phone profile from before BSUIDs gets the BSUID of its next message; later BSUID-only messages find it."""
    before = receive(sql, "SMu5", "+14155550141", None)
    after = receive(sql, "SMu6", "+14155550141", BSUID)
    bsuid_only = receive(sql, "SMu7", None, BSUID)
    assert before["user_id"] == after["user_id"] == bsuid_only["user_id"]
    assert profiles(sql) == [
        {"id": before["user_id"], "phone_number": "+14155550141", "whatsapp_user_id": BSUID, "messages": 3}
    ]


def test_a_bsuid_profile_takes_the_phone_when_no_profile_has_it(sql: Conn) -> None:
    """A BSUID-only sender whose phone later appears in a message keeps one profile, now with the phone."""
    first = receive(sql, "SMu8", None, BSUID)
    later = receive(sql, "SMu9", "+14155550142", BSUID)
    assert first["user_id"] == later["user_id"]
    assert profiles(sql)[0]["phone_number"] == "+14155550142"


def test_a_late_phone_merges_the_bsuid_profile_into_the_phone_profile(sql: Conn) -> None:
    """Two profiles named by one message are one person: merged, every message kept, one audit row."""
    by_phone = receive(sql, "SMv1", "+14155550143", None)
    receive(sql, "SMv2", "+14155550143", None)
    by_bsuid = receive(sql, "SMv3", None, BSUID)
    assert by_phone["user_id"] != by_bsuid["user_id"]
    both = receive(sql, "SMv4", "+14155550143", BSUID)
    assert both["user_id"] == by_phone["user_id"]
    assert profiles(sql) == [
        {"id": by_phone["user_id"], "phone_number": "+14155550143", "whatsapp_user_id": BSUID, "messages": 4}
    ]
    audit = sql.execute(
        "select survivor_id, absorbed_id, moved, outcome, reason, triggered_by from public.user_merges"
    )
    assert audit.fetchall() == [
        {
            "survivor_id": by_phone["user_id"],
            "absorbed_id": by_bsuid["user_id"],
            "moved": {"public.whatsapp_messages": 1},
            "outcome": "merged",
            "reason": f"same WhatsApp user: one message carried phone +14155550143 and BSUID {BSUID}",
            "triggered_by": "inbound_message",
        }
    ]


def _race(db: Database, calls: list[tuple[str, str | None, str | None]]) -> list[dict[str, Any]]:
    connections = [db.connect("postgres") for _ in calls]
    barrier = threading.Barrier(len(calls))

    def run(args: tuple[Conn, tuple[str, str | None, str | None]]) -> dict[str, Any]:
        conn, (sid, phone, bsuid) = args
        barrier.wait()
        return receive(conn, sid, phone, bsuid)

    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(run, zip(connections, calls, strict=True)))
    finally:
        for conn in connections:
            conn.close()


def test_concurrent_first_messages_with_only_a_bsuid_create_one_profile(db: Database, sql: Conn) -> None:
    """20 first messages from one BSUID at once: one profile, all 20 messages on it, one `user_created`."""
    rows = _race(db, [(f"SMw{i}", None, BSUID) for i in range(20)])
    assert len({r["user_id"] for r in rows}) == 1
    assert sum(r["user_created"] for r in rows) == 1
    assert [p["messages"] for p in profiles(sql)] == [20]


def test_concurrent_messages_naming_two_profiles_merge_them_once(db: Database, sql: Conn) -> None:
    """10 messages at once, each carrying the phone of one profile and the BSUID of another: one merge, no loss."""
    receive(sql, "SMx0", "+14155550144", None)
    receive(sql, "SMx1", None, BSUID)
    rows = _race(db, [(f"SMy{i}", "+14155550144", BSUID) for i in range(10)])
    assert len({r["user_id"] for r in rows}) == 1
    assert [(p["phone_number"], p["whatsapp_user_id"], p["messages"]) for p in profiles(sql)] == [
        ("+14155550144", BSUID, 12)
    ]
    assert sql.execute("select count(*) as n from public.user_merges").fetchone() == {"n": 1}


@pytest.mark.parametrize(
    "bad",
    [
        "US",
        "US.",
        "us.1349",
        "USA.1349",
        "US.13-49",
        "US.1349; drop table public.users",
        "1349120865",
        "US." + "1" * 129,
        "US.ENT." + "1" * 129,
        "US.1349\n",
        "US.ENT.1349.5",
    ],
)
def test_a_malformed_bsuid_is_refused_naming_the_field(sql: Conn, bad: str) -> None:
    """A value not shaped like a BSUID is refused with 22023 and nothing is stored."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        receive(sql, "SMz1", None, bad)
    assert (raised.value.diag.message_primary or "").startswith("whatsapp_user_id ")
    assert profiles(sql) == []


def test_a_bsuid_of_up_to_128_letters_and_digits_after_the_country_is_accepted(sql: Conn) -> None:
    """The longest BSUID allowed is stored whole, with or without a parent segment."""
    for sid, bsuid in (("SMl1", "US." + "7" * 128), ("SMl2", "US.ENT." + "8" * 128)):
        row = receive(sql, sid, None, bsuid)
        assert row["user_created"] is True
    stored = sql.execute("select whatsapp_user_id from public.users order by whatsapp_user_id").fetchall()
    assert stored == [{"whatsapp_user_id": "US." + "7" * 128}, {"whatsapp_user_id": "US.ENT." + "8" * 128}]


def test_the_table_refuses_a_bsuid_one_character_too_long(sql: Conn) -> None:
    """The shape rule holds for writers other than the RPC too."""
    with pytest.raises(psycopg.errors.CheckViolation, match="users_whatsapp_user_id_shape"):
        sql.execute("insert into public.users (whatsapp_user_id) values (%s)", ("US." + "1" * 129,))


def test_neither_phone_nor_bsuid_is_refused(sql: Conn) -> None:
    """A message must name its sender one way or the other."""
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="phone or whatsapp_user_id is required"):
        receive(sql, "SMz2", None, None)


def test_get_or_create_accepts_the_bsuid_as_a_named_argument(sql: Conn) -> None:
    """Today's positional calls stay valid; whatsapp_user_id is an optional named argument."""
    old_style = sql.execute(
        "select id, created from public.get_or_create_whatsapp_user('+14155550145', 'Ada')"
    )
    new_style = sql.execute(
        "select id, created, whatsapp_user_id from public.get_or_create_whatsapp_user("
        "phone => '+14155550145', whatsapp_user_id => %s)",
        (BSUID,),
    )
    first = old_style.fetchone()
    second = new_style.fetchone()
    assert first is not None and second is not None
    assert (first["created"], second["created"]) == (True, False)
    assert second == {"id": first["id"], "created": False, "whatsapp_user_id": BSUID}


def test_deleting_the_auth_user_keeps_a_bsuid_profile(sql: Conn, supabase_auth: Any) -> None:
    """An app user whose profile carries a BSUID stays reachable on WhatsApp after their account is deleted."""
    user_id = supabase_auth.sign_up("bsuid@example.com")
    sql.execute("update public.users set whatsapp_user_id = %s where auth_id = %s", (BSUID, user_id))
    supabase_auth.delete_user(user_id)
    assert sql.execute("select auth_id, email, whatsapp_user_id from public.users").fetchall() == [
        {"auth_id": None, "email": None, "whatsapp_user_id": BSUID}
    ]
