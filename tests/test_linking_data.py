"""What happens to the rows that reference a profile: moved by a merge, kept or removed on deletion, erased on request."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from actors import Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]

PHONE = "+14155550123"
DIGITS = "14155550123"


def receive(sql: Conn, sid: str, phone: str = PHONE) -> uuid.UUID:
    row = sql.execute(
        "select user_id from public.receive_whatsapp_message(%s, %s, 'hello', 'Ada WA')", (sid, phone)
    ).fetchone()
    assert row is not None
    return row["user_id"]  # type: ignore[no-any-return]


def profile_id(sql: Conn, auth_id: uuid.UUID) -> uuid.UUID:
    row = sql.execute("select id from public.users where auth_id = %s", (auth_id,)).fetchone()
    assert row is not None
    return row["id"]  # type: ignore[no-any-return]


def count(sql: Conn, query: str, *params: Any) -> int:
    row = sql.execute(query, params).fetchone()
    assert row is not None
    return row["n"]  # type: ignore[no-any-return]


def add_app_tables(sql: Conn) -> None:
    """Tables an app adds after the identity layer: orders (many per user) and settings (one per user)."""
    sql.execute(
        "create table public.test_orders ("
        " id bigint generated always as identity primary key,"
        " user_id uuid not null references public.users (id) on delete cascade,"
        " item text not null)"
    )
    sql.execute(
        "create table public.test_settings ("
        " user_id uuid primary key references public.users (id) on delete cascade,"
        " theme text not null)"
    )


# catalog discovery -----------------------------------------------------------


def test_a_table_the_app_adds_later_is_moved_by_the_merge(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """Rows of a table created after the migrations follow the app profile into the survivor, and the audit says so."""
    add_app_tables(sql)
    whatsapp_id = receive(sql, "SMcat")
    ada = supabase_auth.sign_up("ada@example.com")
    app_id = profile_id(sql, ada)
    sql.execute(
        "insert into public.test_orders (user_id, item) values (%s, 'tea'), (%s, 'scones'), (%s, 'jam')",
        (app_id, app_id, whatsapp_id),
    )
    sql.execute("insert into public.test_settings (user_id, theme) values (%s, 'dark')", (app_id,))

    supabase_auth.confirm_phone(ada, DIGITS)

    assert sql.execute("select user_id, item from public.test_orders order by id").fetchall() == [
        {"user_id": whatsapp_id, "item": "tea"},
        {"user_id": whatsapp_id, "item": "scones"},
        {"user_id": whatsapp_id, "item": "jam"},
    ]
    assert sql.execute("select user_id, theme from public.test_settings").fetchall() == [
        {"user_id": whatsapp_id, "theme": "dark"}
    ]
    assert sql.execute("select moved, outcome from public.user_merges").fetchall() == [
        {"moved": {"public.test_orders": 2, "public.test_settings": 1}, "outcome": "merged"}
    ]
    assert count(sql, "select count(*) as n from public.users") == 1


def test_a_unique_conflict_aborts_the_whole_merge(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """Both profiles having the one allowed settings row stops the merge: nothing moves, Auth's update still succeeds."""
    add_app_tables(sql)
    whatsapp_id = receive(sql, "SMclash")
    ada = supabase_auth.sign_up("ada@example.com")
    app_id = profile_id(sql, ada)
    sql.execute(
        "insert into public.test_orders (user_id, item) values (%s, 'tea'), (%s, 'scones')", (app_id, app_id)
    )
    sql.execute(
        "insert into public.test_settings (user_id, theme) values (%s, 'dark'), (%s, 'light')",
        (app_id, whatsapp_id),
    )
    message = (
        f"cannot merge profile {app_id} into {whatsapp_id}: moving its rows in public.test_settings"
        " would break unique constraint test_settings_pkey"
    )

    supabase_auth.confirm_phone(ada, DIGITS)

    auth_user = supabase_auth.user(ada)
    assert auth_user is not None and auth_user["phone"] == DIGITS
    assert count(sql, "select count(*) as n from public.users") == 2
    assert count(sql, "select count(*) as n from public.test_orders where user_id = %s", app_id) == 2
    assert sql.execute(
        "select survivor_id, absorbed_id, moved, outcome, reason from public.user_merges"
    ).fetchall() == [
        {
            "survivor_id": whatsapp_id,
            "absorbed_id": app_id,
            "moved": {},
            "outcome": "refused",
            "reason": f"23505: {message}",
        }
    ]

    with pytest.raises(psycopg.Error) as caught, postgrest.as_user(ada) as cur:
        cur.execute("select public.link_whatsapp_account()")
    assert caught.value.sqlstate == "23505"
    assert caught.value.diag.message_primary == message
    assert caught.value.diag.message_hint == (
        "Both profiles have a row in public.test_settings that must stay unique: keep one, then link again."
        " Nothing was changed."
    )
    assert count(sql, "select count(*) as n from public.users") == 2
    assert count(sql, "select count(*) as n from public.test_orders where user_id = %s", app_id) == 2

    sql.execute("delete from public.test_settings where user_id = %s", (app_id,))
    with postgrest.as_user(ada) as cur:
        linked = cur.execute("select id from public.link_whatsapp_account()").fetchone()
    assert linked == {"id": whatsapp_id}
    assert sql.execute(
        "select moved, outcome, triggered_by from public.user_merges where outcome = 'merged'"
    ).fetchall() == [{"moved": {"public.test_orders": 2}, "outcome": "merged", "triggered_by": "rpc"}]


# deletion by Supabase Auth -----------------------------------------------------


def test_deleting_a_linked_user_keeps_the_whatsapp_profile(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """Supabase Auth deleting a linked user leaves the WhatsApp profile, its messages and the audit, without auth_id and email."""
    whatsapp_id = receive(sql, "SMkeep1")
    receive(sql, "SMkeep2")
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.confirm_phone(ada, DIGITS)

    supabase_auth.delete_user(ada)

    assert supabase_auth.user(ada) is None
    assert sql.execute("select id, auth_id, email, full_name, phone_number from public.users").fetchall() == [
        {"id": whatsapp_id, "auth_id": None, "email": None, "full_name": "Ada WA", "phone_number": PHONE}
    ]
    assert (
        count(sql, "select count(*) as n from public.whatsapp_messages where user_id = %s", whatsapp_id) == 2
    )
    assert count(sql, "select count(*) as n from public.user_merges where auth_id = %s", ada) == 1
    assert receive(sql, "SMkeep3") == whatsapp_id


def test_deleting_an_app_only_user_removes_the_profile(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """Supabase Auth deleting a user without a phone removes the profile and what references it, without error."""
    add_app_tables(sql)
    ada = supabase_auth.sign_up("ada@example.com")
    sql.execute("insert into public.test_orders (user_id, item) values (%s, 'tea')", (profile_id(sql, ada),))

    supabase_auth.delete_user(ada)

    assert supabase_auth.user(ada) is None
    assert count(sql, "select count(*) as n from public.users") == 0
    assert count(sql, "select count(*) as n from public.test_orders") == 0


# forget_user -------------------------------------------------------------------


def test_forget_user_erases_a_linked_person_and_counts_per_table(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """Erasure removes the profile, its messages, app rows, audit rows and auth user, and reports each count."""
    add_app_tables(sql)
    whatsapp_id = receive(sql, "SMbye1")
    receive(sql, "SMbye2")
    receive(sql, "SMbye3")
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.confirm_phone(ada, DIGITS)
    sql.execute(
        "insert into public.test_orders (user_id, item) values (%s, 'tea'), (%s, 'jam')", (whatsapp_id,) * 2
    )
    bob = supabase_auth.sign_up("bob@example.com")
    receive(sql, "SMbob", "+14155550999")

    with postgrest.as_service() as cur:
        removed = cur.execute("select * from public.forget_user(%s)", (whatsapp_id,)).fetchall()

    assert removed == [
        {"table_name": "auth.users", "rows_removed": 1},
        {"table_name": "public.outbound_messages", "rows_removed": 0},
        {"table_name": "public.test_orders", "rows_removed": 2},
        {"table_name": "public.test_settings", "rows_removed": 0},
        {"table_name": "public.user_merges", "rows_removed": 1},
        {"table_name": "public.users", "rows_removed": 1},
        {"table_name": "public.whatsapp_messages", "rows_removed": 3},
        {"table_name": "public.whatsapp_number_reassignments", "rows_removed": 0},
    ]
    assert supabase_auth.user(ada) is None
    assert count(sql, "select count(*) as n from auth.identities where user_id = %s", ada) == 0
    assert (
        count(sql, "select count(*) as n from public.users where id = %s or auth_id = %s", whatsapp_id, ada)
        == 0
    )
    # Everyone else is untouched: Bob and the sender of +14155550999.
    assert supabase_auth.user(bob) is not None
    assert count(sql, "select count(*) as n from public.users") == 2
    assert count(sql, "select count(*) as n from public.whatsapp_messages") == 1


def test_forget_user_erases_a_whatsapp_only_profile(sql: Conn, postgrest: Postgrest) -> None:
    """A profile without an auth user is erased with its messages; auth.users is not in the report."""
    whatsapp_id = receive(sql, "SMonly1")
    receive(sql, "SMonly2")
    with postgrest.as_service() as cur:
        removed = cur.execute("select * from public.forget_user(%s)", (whatsapp_id,)).fetchall()
    assert removed == [
        {"table_name": "public.outbound_messages", "rows_removed": 0},
        {"table_name": "public.user_merges", "rows_removed": 0},
        {"table_name": "public.users", "rows_removed": 1},
        {"table_name": "public.whatsapp_messages", "rows_removed": 2},
        {"table_name": "public.whatsapp_number_reassignments", "rows_removed": 0},
    ]
    assert count(sql, "select count(*) as n from public.users") == 0


def test_forget_user_is_service_role_only_and_names_bad_input(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """anon and authenticated are denied; a null or unknown id fails with its own SQLSTATE; nothing is erased."""
    whatsapp_id = receive(sql, "SMstay")
    ada = supabase_auth.sign_up("ada@example.com")
    for actor in (postgrest.as_anon, lambda: postgrest.as_user(ada)):
        with pytest.raises(psycopg.Error) as caught, actor() as cur:
            cur.execute("select * from public.forget_user(%s)", (whatsapp_id,))
        assert caught.value.sqlstate == "42501"

    unknown = uuid.uuid4()
    for user_id, sqlstate, message in [
        (None, "22023", "user_id is required"),
        (unknown, "PT404", f"user_id {unknown} has no profile"),
    ]:
        with pytest.raises(psycopg.Error) as caught, postgrest.as_service() as cur:
            cur.execute("select * from public.forget_user(%s::uuid)", (user_id,))
        assert (caught.value.sqlstate, caught.value.diag.message_primary) == (sqlstate, message)
    assert count(sql, "select count(*) as n from public.users") == 2


def receive_from(sql: Conn, sid: str, phone: str | None, bsuid: str | None) -> uuid.UUID:
    row = sql.execute(
        "select user_id from public.receive_whatsapp_message(message_sid => %s, phone => %s, body => 'hi',"
        " whatsapp_user_id => %s)",
        (sid, phone, bsuid),
    ).fetchone()
    assert row is not None
    return row["user_id"]  # type: ignore[no-any-return]


def audit_rows(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(
        "select survivor_id, absorbed_id, auth_id, phone_number, outcome from public.user_merges order by created_at, id"
    ).fetchall()


def forget(postgrest: Postgrest, user_id: uuid.UUID) -> dict[str, int]:
    with postgrest.as_service() as cur:
        rows = cur.execute("select * from public.forget_user(%s)", (user_id,)).fetchall()
    return {row["table_name"]: row["rows_removed"] for row in rows}


def test_forget_user_erases_the_audit_rows_of_every_profile_merged_into_the_person(
    sql: Conn, postgrest: Postgrest
) -> None:
    """A username profile merged into a phone profile, merged in turn into the profile of a new number: all one person."""
    username_bsuid = "US.13491208655302741918"
    old_number = receive_from(sql, "SMold", "+14155550123", None)
    receive_from(sql, "SMname", None, username_bsuid)
    assert receive_from(sql, "SMboth", "+14155550123", username_bsuid) == old_number
    new_number = receive_from(sql, "SMnew", "+14155550777", None)
    assert receive_from(sql, "SMmoved", "+14155550777", username_bsuid) == new_number
    # Someone else's merge of a username profile into their phone profile.
    other = receive_from(sql, "SMother", "+14155550999", None)
    receive_from(sql, "SMother2", None, "US.55501208655302741918")
    receive_from(sql, "SMother3", "+14155550999", "US.55501208655302741918")
    assert len(audit_rows(sql)) == 3

    removed = forget(postgrest, new_number)

    assert removed["public.user_merges"] == 2
    assert [(row["survivor_id"], row["phone_number"]) for row in audit_rows(sql)] == [(other, "+14155550999")]


def test_forget_user_keeps_the_audit_rows_of_a_recycled_numbers_previous_owner(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """Pat linked +1 415 555 0123 and moved to another number; erasing its next owner leaves Pat's history whole."""
    pats_whatsapp = receive(sql, "SMpat", PHONE)
    pat = supabase_auth.sign_up("pat@example.com")
    supabase_auth.request_phone_change(pat, DIGITS)
    supabase_auth.confirm_phone(pat, DIGITS)
    supabase_auth.request_phone_change(pat, "14155550777")
    supabase_auth.confirm_phone(pat, "14155550777")  # the old number is free again
    pats_history = audit_rows(sql)
    assert [(row["outcome"], row["phone_number"]) for row in pats_history] == [
        ("merged", PHONE),
        ("phone_attached", "+14155550777"),
    ]
    next_owner = receive(sql, "SMnext", PHONE)
    assert next_owner != pats_whatsapp

    assert forget(postgrest, next_owner)["public.user_merges"] == 0
    assert audit_rows(sql) == pats_history


def test_forget_user_erases_the_persons_audit_rows_naming_either_form_of_their_number(
    sql: Conn, postgrest: Postgrest
) -> None:
    """Rows about the person go in whichever form of the number they name; a row of another account that names it stays."""
    whatsapp_id = receive_from(sql, "SMbr", "+551187654321", None)
    stranger = uuid.uuid4()
    sql.execute(
        "insert into public.user_merges (survivor_id, auth_id, phone_number, outcome, reason, triggered_by)"
        " values (%s, %s, '+5511987654321', 'refused', 'PT409: phone is linked to another account', 'auth_trigger'),"
        " (null, %s, '+5511987654321', 'refused', 'PT409: phone is linked to another account', 'auth_trigger')",
        (whatsapp_id, uuid.uuid4(), stranger),
    )

    assert forget(postgrest, whatsapp_id)["public.user_merges"] == 1
    assert [(row["auth_id"], row["phone_number"]) for row in audit_rows(sql)] == [
        (stranger, "+5511987654321")
    ]


def test_forget_user_keeps_the_history_of_someone_refused_a_link_to_the_person(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """Ada's refused link names Bob's profile and goes with Bob; her own earlier link stays: a refusal joins nobody."""
    bob = supabase_auth.sign_up("bob@example.com")
    supabase_auth.confirm_phone(bob, "5511987654321")
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.confirm_phone(ada, "14155550888")
    supabase_auth.confirm_phone(ada, "551187654321")  # Bob's number in its other form: refused
    assert [row["outcome"] for row in audit_rows(sql)] == ["phone_attached", "phone_attached", "refused"]

    assert forget(postgrest, profile_id(sql, bob))["public.user_merges"] == 2

    assert audit_rows(sql) == [
        {
            "survivor_id": profile_id(sql, ada),
            "absorbed_id": None,
            "auth_id": ada,
            "phone_number": "+14155550888",
            "outcome": "phone_attached",
        }
    ]


def test_forget_user_reaches_the_audit_rows_through_indexes(sql: Conn, postgrest: Postgrest) -> None:
    """With 5,000 other people's audit rows, erasure reads user_merges by index only: its cost does not grow with them.

    Eight erasures on one connection, so plpgsql's switch to generic plans (after the fifth call) is covered too.
    """
    people = []
    for n in range(8):
        phone, bsuid = f"+1415555{n:04d}", f"US.1349120865530274{n:04d}"
        people.append(receive_from(sql, f"SMidx{n}a", phone, None))
        receive_from(sql, f"SMidx{n}b", None, bsuid)
        receive_from(sql, f"SMidx{n}c", phone, bsuid)
    sql.execute(
        "insert into public.user_merges (survivor_id, auth_id, phone_number, outcome, triggered_by)"
        " select gen_random_uuid(), gen_random_uuid(), '+1415' || (5000000 + i), 'phone_attached', 'rpc'"
        " from generate_series(1, 5000) as i"
    )
    sql.execute("analyze public.user_merges")

    for person in people:
        with postgrest.as_service() as cur:
            removed = cur.execute("select * from public.forget_user(%s)", (person,)).fetchall()
            scans = cur.execute(
                "select seq_scan, idx_scan from pg_stat_xact_user_tables"
                " where relid = 'public.user_merges'::regclass"
            ).fetchone()
        assert {"table_name": "public.user_merges", "rows_removed": 1} in removed
        assert scans is not None
        assert (scans["seq_scan"], scans["idx_scan"] > 0) == (0, True)
    assert count(sql, "select count(*) as n from public.user_merges") == 5000
