"""A reassigned number is a new person: a known number arriving with another WhatsApp account's BSUID
moves to a profile of that account, and the history stays with the profile it belongs to."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from actors import Database, Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]

NUMBER = "+14155557001"
DIGITS = "14155557001"  # the same number as Supabase Auth stores it
PREVIOUS = "US.1111111111111111111"  # the WhatsApp account that wrote from NUMBER first
NEW = "US.2222222222222222222"  # the account that registered NUMBER after the carrier recycled it
RECEIVE = (
    "select * from public.receive_whatsapp_message(message_sid => %s, phone => %s, body => %s,"
    " whatsapp_user_id => %s)"
)
REASON = f"a message from {NUMBER} carried the user id (BSUID) of another WhatsApp account: the number has a new owner"
REASSIGNMENTS = (
    "select phone_number, previous_user_id, previous_whatsapp_user_id, new_user_id, new_whatsapp_user_id, reason"
    " from public.whatsapp_number_reassignments order by created_at, id"
)


def receive(
    sql: Conn, sid: str, bsuid: str | None, phone: str | None = NUMBER, body: str = "hi"
) -> dict[str, Any]:
    row = sql.execute(RECEIVE, (sid, None if phone is None else f"whatsapp:{phone}", body, bsuid)).fetchone()
    assert row is not None
    return row


def profiles(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(
        "select u.id, u.auth_id, u.phone_number, u.whatsapp_user_id,"
        " array(select m.message_sid from public.whatsapp_messages m where m.user_id = u.id order by m.message_sid)"
        " as messages"
        " from public.users u order by u.created_at, u.id"
    ).fetchall()


def reassignments(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(REASSIGNMENTS).fetchall()


def moved(previous_id: uuid.UUID, new_id: uuid.UUID | None, new_bsuid: str | None = NEW) -> dict[str, Any]:
    return {
        "phone_number": NUMBER,
        "previous_user_id": previous_id,
        "previous_whatsapp_user_id": PREVIOUS,
        "new_user_id": new_id,
        "new_whatsapp_user_id": new_bsuid,
        "reason": REASON,
    }


def profile_id(sql: Conn, auth_id: uuid.UUID) -> uuid.UUID:
    row = sql.execute("select id from public.users where auth_id = %s", (auth_id,)).fetchone()
    assert row is not None
    return row["id"]  # type: ignore[no-any-return]


# the rule ---------------------------------------------------------------------


def test_a_known_number_with_another_bsuid_moves_to_a_new_profile(sql: Conn) -> None:
    """The issue's case: the new account's first message makes a new profile; the previous one keeps its history and BSUID."""
    previous = receive(sql, "SMa1", PREVIOUS)
    receive(sql, "SMa2", PREVIOUS)
    new = receive(sql, "SMa3", NEW)

    assert new["user_created"] is True and new["user_id"] != previous["user_id"]
    assert profiles(sql) == [
        {"id": previous["user_id"], "auth_id": None, "phone_number": None, "whatsapp_user_id": PREVIOUS,
         "messages": ["SMa1", "SMa2"]},
        {"id": new["user_id"], "auth_id": None, "phone_number": NUMBER, "whatsapp_user_id": NEW,
         "messages": ["SMa3"]},
    ]  # fmt: skip
    assert reassignments(sql) == [moved(previous["user_id"], new["user_id"])]
    assert sql.execute("select count(*) as n from public.user_merges").fetchone() == {"n": 0}


def test_get_or_create_moves_the_number_as_receive_does(sql: Conn) -> None:
    """get_or_create_whatsapp_user applies the same rule: the new account's profile, created = true."""
    previous = sql.execute(
        "select * from public.get_or_create_whatsapp_user(%s, null, %s)", (NUMBER, PREVIOUS)
    )
    previous_row = previous.fetchone()
    new_row = sql.execute(
        "select * from public.get_or_create_whatsapp_user(%s, null, %s)", (NUMBER, NEW)
    ).fetchone()
    assert previous_row is not None and new_row is not None
    assert (new_row["created"], new_row["phone_number"], new_row["whatsapp_user_id"]) == (True, NUMBER, NEW)
    assert reassignments(sql) == [moved(previous_row["id"], new_row["id"])]


def test_a_late_message_of_the_previous_owner_lands_on_their_profile_and_leaves_the_number(sql: Conn) -> None:
    """The previous account's message after the move goes to its own profile; the number stays with the new owner."""
    previous = receive(sql, "SMb1", PREVIOUS)
    new = receive(sql, "SMb2", NEW)
    late = receive(sql, "SMb3", PREVIOUS)
    after = receive(sql, "SMb4", NEW)

    assert (late["user_id"], late["user_created"]) == (previous["user_id"], False)
    assert (after["user_id"], after["user_created"]) == (new["user_id"], False)
    assert [(p["phone_number"], p["whatsapp_user_id"], p["messages"]) for p in profiles(sql)] == [
        (None, PREVIOUS, ["SMb1", "SMb3"]),
        (NUMBER, NEW, ["SMb2", "SMb4"]),
    ]
    assert reassignments(sql) == [moved(previous["user_id"], new["user_id"])]


def test_redeliveries_of_either_owners_messages_change_nothing(sql: Conn) -> None:
    """Twilio delivering both owners' messages again after the move: each answered as its first delivery, nothing moves."""
    previous = receive(sql, "SMc1", PREVIOUS)
    new = receive(sql, "SMc2", NEW)
    before = profiles(sql)

    previous_again = receive(sql, "SMc1", PREVIOUS)
    new_again = receive(sql, "SMc2", NEW)

    assert previous_again == {**previous, "duplicate": True}
    assert new_again == {**new, "duplicate": True}
    assert (
        new_again["user_created"] is True
    )  # the welcome is repeated to the new owner, as for any first message
    assert profiles(sql) == before
    assert len(reassignments(sql)) == 1


def test_a_person_who_changes_number_gets_a_new_profile_and_the_old_keeps_its_history(sql: Conn) -> None:
    """A new number comes with a new BSUID (Meta generates one): a new profile; the old number's profile is left whole."""
    old = receive(sql, "SMd1", PREVIOUS)
    receive(sql, "SMd2", PREVIOUS)
    new = receive(sql, "SMd3", NEW, phone="+14155557002")

    assert new["user_created"] is True
    assert [(p["phone_number"], p["whatsapp_user_id"], p["messages"]) for p in profiles(sql)] == [
        (NUMBER, PREVIOUS, ["SMd1", "SMd2"]),
        ("+14155557002", NEW, ["SMd3"]),
    ]
    assert old["user_id"] != new["user_id"]
    assert reassignments(sql) == []


def test_the_new_accounts_username_profile_takes_the_number(sql: Conn) -> None:
    """The new account wrote first without its number (a username): the number moves onto that profile, no third one."""
    previous = receive(sql, "SMe1", PREVIOUS)
    username = receive(sql, "SMe2", NEW, phone=None)
    with_number = receive(sql, "SMe3", NEW)

    assert (with_number["user_id"], with_number["user_created"]) == (username["user_id"], False)
    assert [(p["phone_number"], p["whatsapp_user_id"], p["messages"]) for p in profiles(sql)] == [
        (None, PREVIOUS, ["SMe1"]),
        (NUMBER, NEW, ["SMe2", "SMe3"]),
    ]
    assert reassignments(sql) == [moved(previous["user_id"], username["user_id"])]


def test_the_new_accounts_profile_keeps_its_own_number_and_the_previous_profile_still_gives_this_one_up(
    sql: Conn,
) -> None:
    """A BSUID already on a profile of another number keeps that number (the BSUID decides the profile), and the
    previous account gives the number up all the same: it no longer writes from it."""
    previous = receive(sql, "SMf1", PREVIOUS)
    other = receive(sql, "SMf2", NEW, phone="+14155557003")
    message = receive(sql, "SMf3", NEW)

    assert message["user_id"] == other["user_id"]
    assert [(p["phone_number"], p["whatsapp_user_id"], p["messages"]) for p in profiles(sql)] == [
        (None, PREVIOUS, ["SMf1"]),
        ("+14155557003", NEW, ["SMf2", "SMf3"]),
    ]
    assert reassignments(sql) == [moved(previous["user_id"], other["user_id"])]


def test_a_number_recycled_twice_moves_each_time(sql: Conn) -> None:
    """Three accounts in turn on one number: two moves, each previous profile keeps its own messages."""
    first = receive(sql, "SMg1", PREVIOUS)
    second = receive(sql, "SMg2", NEW)
    third = receive(sql, "SMg3", "US.3333333333333333333")

    assert len({first["user_id"], second["user_id"], third["user_id"]}) == 3
    rows = reassignments(sql)
    assert [(r["previous_user_id"], r["new_user_id"]) for r in rows] == [
        (first["user_id"], second["user_id"]),
        (second["user_id"], third["user_id"]),
    ]
    assert [p["phone_number"] for p in profiles(sql)] == [None, None, NUMBER]


def test_a_profile_from_before_bsuids_takes_the_first_bsuid_it_is_sent(sql: Conn) -> None:
    """Without a BSUID on the number's profile nothing tells the owners apart: the profile records the one that arrives."""
    before = receive(sql, "SMh1", None)
    after = receive(sql, "SMh2", NEW)
    assert after["user_id"] == before["user_id"]
    assert reassignments(sql) == []


# concurrency ------------------------------------------------------------------


def race(db: Database, calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Each (MessageSid, BSUID) from NUMBER on its own connection, released together by a barrier."""
    connections = [db.connect("postgres") for _ in calls]
    barrier = threading.Barrier(len(calls))

    def run(args: tuple[Conn, tuple[str, str]]) -> dict[str, Any]:
        conn, (sid, bsuid) = args
        barrier.wait()
        return receive(conn, sid, bsuid)

    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(run, zip(connections, calls, strict=True)))
    finally:
        for conn in connections:
            conn.close()


def test_concurrent_first_messages_of_the_new_owner_make_one_profile(db: Database, sql: Conn) -> None:
    """20 first messages of the new account at once: one new profile holding all 20, one `user_created`, one move."""
    previous = receive(sql, "SMi0", PREVIOUS)
    rows = race(db, [(f"SMi{n}x", NEW) for n in range(20)])

    assert len({r["user_id"] for r in rows}) == 1 and rows[0]["user_id"] != previous["user_id"]
    assert sum(r["user_created"] for r in rows) == 1
    assert [(p["phone_number"], p["whatsapp_user_id"], len(p["messages"])) for p in profiles(sql)] == [
        (None, PREVIOUS, 1),
        (NUMBER, NEW, 20),
    ]
    assert reassignments(sql) == [moved(previous["user_id"], rows[0]["user_id"])]


def test_the_previous_owners_messages_racing_the_move_stay_on_their_profile(db: Database, sql: Conn) -> None:
    """10 messages of each account at once: whichever runs first, the previous account's land on its profile."""
    previous = receive(sql, "SMj0", PREVIOUS)
    rows = race(db, [(f"SMj{n}p", PREVIOUS) for n in range(10)] + [(f"SMj{n}n", NEW) for n in range(10)])

    assert {r["user_id"] for r in rows[:10]} == {previous["user_id"]}
    assert len({r["user_id"] for r in rows[10:]}) == 1
    assert [(p["phone_number"], p["whatsapp_user_id"], len(p["messages"])) for p in profiles(sql)] == [
        (None, PREVIOUS, 11),
        (NUMBER, NEW, 10),
    ]
    assert len(reassignments(sql)) == 1


def test_concurrent_redeliveries_of_the_new_owners_first_message_store_it_once(
    db: Database, sql: Conn
) -> None:
    """One MessageSid of the new account delivered 10 times at once: one message, one profile, one move."""
    receive(sql, "SMk0", PREVIOUS)
    rows = race(db, [("SMk1", NEW)] * 10)

    assert len({r["user_id"] for r in rows}) == 1 and {r["user_created"] for r in rows} == {True}
    assert sum(not r["duplicate"] for r in rows) == 1
    assert [(p["whatsapp_user_id"], p["messages"]) for p in profiles(sql)] == [
        (PREVIOUS, ["SMk0"]),
        (NEW, ["SMk1"]),
    ]
    assert len(reassignments(sql)) == 1


# the previous owner's account ---------------------------------------------------


@pytest.fixture
def linked_previous_owner(sql: Conn, supabase_auth: SupabaseAuth) -> dict[str, Any]:
    """Ada verified NUMBER in the app, wrote from it on WhatsApp, then lost it to a stranger, who wrote once."""
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.request_phone_change(ada, DIGITS)
    supabase_auth.confirm_phone(ada, DIGITS)
    own = receive(sql, "SMl1", PREVIOUS, body="my order?")
    assert own["user_id"] == profile_id(sql, ada)
    stranger = receive(sql, "SMl2", NEW, body="hello, new phone")
    return {"ada": ada, "profile": own["user_id"], "stranger": stranger["user_id"]}


def test_a_linked_previous_owner_keeps_account_and_history_and_reads_that_the_number_moved(
    sql: Conn, postgrest: Postgrest, linked_previous_owner: dict[str, Any]
) -> None:
    """Ada's profile keeps her account, BSUID and message; she reads that her number moved, never the stranger's ids."""
    ada, profile = linked_previous_owner["ada"], linked_previous_owner["profile"]
    assert [(p["id"], p["auth_id"], p["phone_number"], p["messages"]) for p in profiles(sql)] == [
        (profile, ada, None, ["SMl1"]),
        (linked_previous_owner["stranger"], None, NUMBER, ["SMl2"]),
    ]
    with postgrest.as_user(ada) as cur:
        seen = cur.execute(
            "select phone_number, previous_user_id, previous_whatsapp_user_id, reason"
            " from public.whatsapp_number_reassignments"
        ).fetchall()
        bodies = cur.execute("select body from public.whatsapp_messages").fetchall()
    assert seen == [
        {
            "phone_number": NUMBER,
            "previous_user_id": profile,
            "previous_whatsapp_user_id": PREVIOUS,
            "reason": REASON,
        }
    ]
    assert bodies == [{"body": "my order?"}]
    for column in ("new_user_id", "new_whatsapp_user_id", "*"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_user(ada) as cur:
            cur.execute(f"select {column} from public.whatsapp_number_reassignments")


def test_nobody_else_reads_the_move(
    postgrest: Postgrest, supabase_auth: SupabaseAuth, linked_previous_owner: Any
) -> None:
    """Another signed-in user sees no row; anon may not read the table at all."""
    bob = supabase_auth.sign_up("bob@example.com")
    with postgrest.as_user(bob) as cur:
        assert cur.execute("select id from public.whatsapp_number_reassignments").fetchall() == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_anon() as cur:
        cur.execute("select id from public.whatsapp_number_reassignments")


def test_a_verification_older_than_the_move_links_nothing(
    sql: Conn, postgrest: Postgrest, linked_previous_owner: dict[str, Any]
) -> None:
    """Ada's account still holds the number as confirmed, but from before the move: PT410, and nothing changes."""
    before = profiles(sql)
    with pytest.raises(psycopg.Error) as caught, postgrest.as_user(linked_previous_owner["ada"]) as cur:
        cur.execute("select * from public.link_whatsapp_account()")
    assert caught.value.sqlstate == "PT410"
    assert f"phone {NUMBER} moved to another WhatsApp account" in str(caught.value)
    assert profiles(sql) == before
    assert sql.execute(
        "select count(*) as n from public.user_merges where outcome = 'merged'"
    ).fetchone() == {"n": 0}


def test_a_re_registered_person_who_proves_the_number_again_joins_both_profiles(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, linked_previous_owner: dict[str, Any]
) -> None:
    """Ada deleted and re-registered WhatsApp herself: a fresh phone sign-in, then the link joins both histories."""
    ada = linked_previous_owner["ada"]
    supabase_auth.sign_in_with_phone_otp(ada)
    with postgrest.as_user(ada) as cur:
        linked = cur.execute("select * from public.link_whatsapp_account()").fetchone()
    assert linked is not None
    assert (linked["id"], linked["auth_id"], linked["phone_number"], linked["whatsapp_user_id"]) == (
        linked_previous_owner["stranger"],
        ada,
        NUMBER,
        NEW,
    )
    assert [p["messages"] for p in profiles(sql)] == [["SMl1", "SMl2"]]
    # The audit row follows the person's profile through the merge.
    assert [(r["previous_user_id"], r["new_user_id"]) for r in reassignments(sql)] == [
        (linked["id"], linked["id"])
    ]


def test_the_phone_otp_link_after_a_move_joins_the_new_owner_only(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """The new owner verifies the number in the app: their account gets their profile; the previous one stays apart."""
    previous = receive(sql, "SMm1", PREVIOUS, body="previous owner's secret")
    new = receive(sql, "SMm2", NEW, body="new owner's hello")

    bob = supabase_auth.sign_up("bob@example.com")
    supabase_auth.request_phone_change(bob, DIGITS)
    supabase_auth.confirm_phone(bob, DIGITS)

    assert profile_id(sql, bob) == new["user_id"]
    assert [(p["id"], p["auth_id"], p["messages"]) for p in profiles(sql)] == [
        (previous["user_id"], None, ["SMm1"]),
        (new["user_id"], bob, ["SMm2"]),
    ]
    with postgrest.as_user(bob) as cur:
        assert cur.execute("select body from public.whatsapp_messages").fetchall() == [
            {"body": "new owner's hello"}
        ]
        assert cur.execute("select id from public.link_whatsapp_account()").fetchone() == {
            "id": new["user_id"]
        }
        assert cur.execute("select id from public.whatsapp_number_reassignments").fetchall() == []


def test_an_account_created_with_the_number_confirmed_takes_the_new_owners_profile(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """auth.admin.createUser({ phone, phone_confirm: true }) after a move attaches the number's profile: the new owner's."""
    previous = receive(sql, "SMp1", PREVIOUS)
    new = receive(sql, "SMp2", NEW)
    carol = supabase_auth.admin_create_user(DIGITS)
    assert profile_id(sql, carol) == new["user_id"]
    assert [(p["id"], p["auth_id"]) for p in profiles(sql)] == [
        (previous["user_id"], None),
        (new["user_id"], carol),
    ]


def stale_link_racing_a_move(db: Database, ada: uuid.UUID, n: int, number: str) -> tuple[str, dict[str, Any]]:
    """Ada's link_whatsapp_account and a stranger's first message from her number, released together."""
    apps, relay = Postgrest(db), db.connect("postgres")
    barrier = threading.Barrier(2)

    def link() -> str:
        barrier.wait()
        try:
            with apps.as_user(ada) as cur:
                cur.execute("select id from public.link_whatsapp_account()")
            return "linked"
        except psycopg.Error as refused:
            return str(refused.sqlstate)

    def message() -> dict[str, Any]:
        barrier.wait()
        return receive(relay, f"SMq{n}b", f"US.2222{n:04d}", phone=number)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            linked, stranger = pool.submit(link), pool.submit(message)
            return linked.result(), stranger.result()
    finally:
        apps.close()
        relay.close()


def test_a_stale_link_racing_the_move_never_joins_the_new_owner(
    db: Database, sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """Ada's link (verified before) and the stranger's first message at once, 12 times: either the link finds
    Ada's own profile and the move follows, or the move wins and the link is refused; the stranger's message
    never lands on Ada's account."""
    for n in range(12):
        number, digits = f"+1415556{n:04d}", f"1415556{n:04d}"
        ada = supabase_auth.sign_up(f"ada{n}@example.com")
        supabase_auth.request_phone_change(ada, digits)
        supabase_auth.confirm_phone(ada, digits)
        receive(sql, f"SMq{n}a", f"US.1111{n:04d}", phone=number)

        outcome, row = stale_link_racing_a_move(db, ada, n, number)

        assert outcome in {"linked", "PT410"}
        owner = sql.execute("select auth_id from public.users where id = %s", (row["user_id"],)).fetchone()
        assert owner == {"auth_id": None}, (n, outcome)


# erasure ----------------------------------------------------------------------


def forget(postgrest: Postgrest, user_id: uuid.UUID) -> dict[str, int]:
    with postgrest.as_service() as cur:
        rows = cur.execute("select * from public.forget_user(%s)", (user_id,)).fetchall()
    return {row["table_name"]: row["rows_removed"] for row in rows}


def test_erasing_the_previous_owner_erases_the_move(sql: Conn, postgrest: Postgrest) -> None:
    """The audit row holds the previous owner's BSUID: it goes with them."""
    previous = receive(sql, "SMn1", PREVIOUS)
    receive(sql, "SMn2", NEW)
    assert forget(postgrest, previous["user_id"])["public.whatsapp_number_reassignments"] == 1
    assert reassignments(sql) == []


def test_erasing_the_new_owner_keeps_the_previous_owners_record_without_the_new_owners_ids(
    sql: Conn, postgrest: Postgrest
) -> None:
    """The record stays the previous owner's; a late message of theirs still does not take the freed number back."""
    previous = receive(sql, "SMo1", PREVIOUS)
    new = receive(sql, "SMo2", NEW)
    forget(postgrest, new["user_id"])
    assert reassignments(sql) == [moved(previous["user_id"], None, None)]

    late = receive(sql, "SMo3", PREVIOUS)
    assert late["user_id"] == previous["user_id"]
    assert [(p["phone_number"], p["messages"]) for p in profiles(sql)] == [(None, ["SMo1", "SMo3"])]
