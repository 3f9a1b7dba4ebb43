"""get_or_create_whatsapp_user and receive_whatsapp_message: one profile per number, one row per MessageSid."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from actors import Database

Conn = psycopg.Connection[dict[str, Any]]


def call_concurrently(db: Database, calls: int, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Runs `query` once on each of `calls` connections, released together by a barrier."""
    connections = [db.connect("postgres") for _ in range(calls)]
    barrier = threading.Barrier(calls)

    def run(conn: Conn) -> dict[str, Any]:
        barrier.wait()
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return row

    try:
        with ThreadPoolExecutor(max_workers=calls) as pool:
            return list(pool.map(run, connections))
    finally:
        for conn in connections:
            conn.close()


def test_first_contact_creates_the_profile_once(sql: Conn) -> None:
    """The first call creates the profile, later calls find it; the number is stored in E.164."""
    first = sql.execute(
        "select * from public.get_or_create_whatsapp_user('whatsapp:+14155550123', 'Ada')"
    ).fetchall()
    again = sql.execute("select * from public.get_or_create_whatsapp_user('+1 (415) 555-0123')").fetchall()
    assert len(first) == 1 and len(again) == 1
    assert first[0]["created"] is True and again[0]["created"] is False
    assert first[0]["id"] == again[0]["id"]
    assert again[0]["phone_number"] == "+14155550123"
    assert again[0]["full_name"] == "Ada"


def test_profile_name_fills_only_an_empty_name(sql: Conn) -> None:
    """A later WhatsApp profile name never overwrites a name the profile already has."""
    sql.execute("select * from public.get_or_create_whatsapp_user('+14155550124')")
    named = sql.execute(
        "select full_name from public.get_or_create_whatsapp_user('+14155550124', 'First')"
    ).fetchone()
    renamed = sql.execute(
        "select full_name from public.get_or_create_whatsapp_user('+14155550124', 'Second')"
    ).fetchone()
    assert named == {"full_name": "First"}
    assert renamed == {"full_name": "First"}


def test_fifty_concurrent_calls_for_one_new_phone_create_one_row(db: Database, sql: Conn) -> None:
    """50 connections racing on one new number: one row, one id, exactly one `created`."""
    rows = call_concurrently(
        db, 50, "select id, created from public.get_or_create_whatsapp_user(%s)", ("+14155550150",)
    )
    assert len({r["id"] for r in rows}) == 1
    assert sum(r["created"] for r in rows) == 1
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 1}


def test_random_phones_with_duplicates_across_eight_workers(db: Database, sql: Conn) -> None:
    """2,000 calls over 8 connections with repeated numbers leave exactly one row per distinct number."""
    rng = random.Random(20261126)
    phones = [f"+1415{rng.randrange(0, 600):07d}" for _ in range(2000)]
    chunks = [phones[i::8] for i in range(8)]
    barrier = threading.Barrier(8)

    def work(chunk: list[str]) -> int:
        created = 0
        with db.connect("postgres") as conn:
            barrier.wait()
            for phone in chunk:
                row = conn.execute(
                    "select created from public.get_or_create_whatsapp_user(%s)", (phone,)
                ).fetchone()
                assert row is not None
                created += row["created"]
        return created

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = sum(pool.map(work, chunks))
    distinct = len(set(phones))
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": distinct}
    assert created == distinct


def test_same_message_sid_five_times_stores_one_message(sql: Conn) -> None:
    """A redelivered MessageSid stores nothing new and answers as the first delivery did."""
    calls = [
        sql.execute(
            "select * from public.receive_whatsapp_message('SM00000000000000000000000000000001',"
            " 'whatsapp:+14155550125', 'hello', 'Ada')"
        ).fetchone()
        for _ in range(5)
    ]
    first, *redeliveries = calls
    assert first is not None and first["duplicate"] is False and first["user_created"] is True
    for again in redeliveries:
        assert again == {**first, "duplicate": True}
    assert sql.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 1}
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 1}


def test_concurrent_redeliveries_store_one_message(db: Database, sql: Conn) -> None:
    """The same first message delivered on 20 connections at once: one user, one message, 19 duplicates."""
    rows = call_concurrently(
        db,
        20,
        "select * from public.receive_whatsapp_message(%s, %s, %s)",
        ("SM00000000000000000000000000000002", "whatsapp:+14155550126", "hi"),
    )
    assert sum(not r["duplicate"] for r in rows) == 1
    assert {(r["user_id"], r["message_id"], r["user_created"]) for r in rows} == {
        (rows[0]["user_id"], rows[0]["message_id"], True)
    }
    assert sql.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 1}


def test_redeliveries_racing_an_erasure_answer_in_full_or_ask_for_a_retry(db: Database, sql: Conn) -> None:
    """One message delivered over and over while forget_user erases its sender over and over: each
    delivery answers with the whole receipt, or fails with an error the relay turns into a retry
    (23503 when the sender went between the lookup and the insert; 40001 when the first delivery went
    between the insert and the re-read, a window too narrow for this loop to hit reliably:
    test_receive_interleavings holds each window open)."""
    deliver = db.connect("postgres")
    erase = db.connect("postgres")
    stop = threading.Event()
    outcomes: dict[str, int] = {}
    incomplete: list[dict[str, Any]] = []

    def erase_repeatedly() -> None:
        while not stop.is_set():
            erase.execute(
                "select public.forget_user(u.id) from public.users as u where u.phone_number = '+14155550132'"
            )

    eraser = threading.Thread(target=erase_repeatedly)
    eraser.start()
    try:
        for _ in range(1500):
            try:
                row = deliver.execute(
                    "select * from public.receive_whatsapp_message('SM00000000000000000000000000000009',"
                    " 'whatsapp:+14155550132', 'again')"
                ).fetchone()
            except (psycopg.errors.SerializationFailure, psycopg.errors.ForeignKeyViolation) as error:
                outcomes[str(error.sqlstate)] = outcomes.get(str(error.sqlstate), 0) + 1
                continue
            assert row is not None
            # consent_reply and the link columns are null for an ordinary message; the receipt is the rest.
            if None in (row["user_id"], row["message_id"], row["user_created"], row["duplicate"]):
                incomplete.append(row)
            key = "duplicate" if row["duplicate"] else "stored"
            outcomes[key] = outcomes.get(key, 0) + 1
    finally:
        stop.set()
        eraser.join()
        deliver.close()
        erase.close()
    print(f"outcomes of 1500 deliveries racing erasures: {outcomes}")
    assert incomplete == []
    assert outcomes.get("stored", 0) > 1  # the eraser did erase in between: the race was run


def test_message_content_is_stored_verbatim(sql: Conn) -> None:
    """Body, media and profile name are stored as received, hostile characters included."""
    body = '\'; drop table public.users; -- \\ "quoted" ✓ 日本語'
    media = '[{"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"}]'
    row = sql.execute(
        "select * from public.receive_whatsapp_message('MM00000000000000000000000000000003', '+14155550127',"
        " %s, %s, %s::jsonb)",
        (body, "Robert'); --", media),
    ).fetchone()
    assert row is not None
    stored = sql.execute(
        "select body, media, profile_name from public.whatsapp_messages where id = %s", (row["message_id"],)
    ).fetchone()
    assert stored == {
        "body": body,
        "media": [{"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"}],
        "profile_name": "Robert'); --",
    }


BAD_MESSAGES = [
    ((None, "+14155550128", "x", None, "[]"), "message_sid null is not a Twilio MessageSid"),
    (("", "+14155550128", "x", None, "[]"), "message_sid '' is not a Twilio MessageSid"),
    (("SM1; drop", "+14155550128", "x", None, "[]"), "message_sid 'SM1; drop' is not a Twilio MessageSid"),
    (("S", "+14155550128", "x", None, "[]"), "message_sid 'S' is not a Twilio MessageSid"),
    (("SM\u00e91", "+14155550128", "x", None, "[]"), "message_sid 'SM\u00e91' is not a Twilio MessageSid"),
    (("SM1\n", "+14155550128", "x", None, "[]"), "message_sid 'SM1\n' is not a Twilio MessageSid"),
    (("S" * 65, "+14155550128", "x", None, "[]"), f"message_sid '{'S' * 40}' is not a Twilio MessageSid"),
    (("SM4", None, "x", None, "[]"), "phone or whatsapp_user_id is required"),
    (("SM4", "  ", "x", None, "[]"), "phone or whatsapp_user_id is required"),
    (("SM4", "0415550128", "x", None, "[]"), "phone '0415550128' is not a valid international phone number"),
    (("SM4", "+14155550128", "x", None, '{"url": 1}'), "media must be a JSON array"),
]


@pytest.mark.parametrize(("args", "message"), BAD_MESSAGES, ids=[m for _, m in BAD_MESSAGES])
def test_bad_input_is_refused_with_22023_and_stores_nothing(
    sql: Conn, args: tuple[Any, ...], message: str
) -> None:
    """Bad input gets invalid_parameter_value naming the field, and no row is written."""
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        sql.execute("select * from public.receive_whatsapp_message(%s, %s, %s, %s, %s::jsonb)", args)
    assert raised.value.diag.message_primary == message
    assert sql.execute(
        "select (select count(*) from public.users) as users, (select count(*) from public.whatsapp_messages) as m"
    ).fetchone() == {"users": 0, "m": 0}


def test_absent_body_media_and_name_are_stored_as_empty(sql: Conn) -> None:
    """A media-only or nameless delivery passes nulls: stored as '' and [], and a blank name as no name."""
    row = sql.execute(
        "select * from public.receive_whatsapp_message('SM00000000000000000000000000000004', '+14155550129',"
        " null, '   ', null)"
    ).fetchone()
    assert row is not None and row["duplicate"] is False
    stored = sql.execute(
        "select m.body, m.media, m.profile_name, u.full_name from public.whatsapp_messages m"
        " join public.users u on u.id = m.user_id"
    ).fetchone()
    assert stored == {"body": "", "media": [], "profile_name": None, "full_name": None}


def test_message_sids_of_two_to_sixty_four_letters_and_digits_are_accepted(sql: Conn) -> None:
    """The shortest and the longest MessageSid the RPC takes are stored as sent."""
    for sid in ("S1", "SM" + "0" * 62):
        row = sql.execute(
            "select * from public.receive_whatsapp_message(%s, '+14155550130', 'x')", (sid,)
        ).fetchone()
        assert row is not None and row["duplicate"] is False
    stored = sql.execute(
        "select message_sid from public.whatsapp_messages order by length(message_sid)"
    ).fetchall()
    assert stored == [{"message_sid": "S1"}, {"message_sid": "SM" + "0" * 62}]


@pytest.mark.parametrize(
    ("sid", "error"),
    [
        ("S", psycopg.errors.CheckViolation),
        ("SM-1", psycopg.errors.CheckViolation),
        ("SM 1", psycopg.errors.CheckViolation),
        ("SM\u00e91", psycopg.errors.CheckViolation),
        ("S" * 65, psycopg.errors.StringDataRightTruncation),
    ],
    ids=["one character", "a dash", "a space", "a non-ASCII letter", "65 characters"],
)
def test_the_table_refuses_a_malformed_message_sid_written_directly(
    sql: Conn, sid: str, error: type[psycopg.Error]
) -> None:
    """Writers other than the RPC meet the same shape rule in the table itself."""
    user = sql.execute(
        "insert into public.users (phone_number) values ('+14155550131') returning id"
    ).fetchone()
    assert user is not None
    with pytest.raises(error):
        sql.execute(
            "insert into public.whatsapp_messages (message_sid, user_id) values (%s, %s)", (sid, user["id"])
        )
