"""Account linking: a WhatsApp profile and an app account become one once Supabase Auth has verified the phone."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from actors import Database, Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]

PHONE = "+14155550123"
DIGITS = "14155550123"  # how Supabase Auth stores the same number


def receive(sql: Conn, sid: str, phone: str = PHONE, name: str | None = "Ada WA") -> dict[str, Any]:
    row = sql.execute(
        "select * from public.receive_whatsapp_message(%s, %s, 'hello', %s)", (sid, f"whatsapp:{phone}", name)
    ).fetchone()
    assert row is not None
    return row


def profiles(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(
        "select id, auth_id, email, full_name, phone_number from public.users order by created_at, id"
    ).fetchall()


def merges(sql: Conn) -> list[dict[str, Any]]:
    return sql.execute(
        "select survivor_id, absorbed_id, auth_id, phone_number, moved, outcome, reason, triggered_by"
        " from public.user_merges order by created_at, id"
    ).fetchall()


def profile_id(sql: Conn, auth_id: uuid.UUID) -> uuid.UUID:
    row = sql.execute("select id from public.users where auth_id = %s", (auth_id,)).fetchone()
    assert row is not None
    return row["id"]  # type: ignore[no-any-return]


def link(postgrest: Postgrest, auth_id: uuid.UUID, **claims: Any) -> dict[str, Any]:
    with postgrest.as_user(auth_id, **claims) as cur:
        row = cur.execute("select * from public.link_whatsapp_account()").fetchone()
    assert row is not None
    return row


def link_error(postgrest: Postgrest, auth_id: uuid.UUID, **claims: Any) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught, postgrest.as_user(auth_id, **claims) as cur:
        cur.execute("select * from public.link_whatsapp_account()")
    return caught.value


def confirm_phone_before_linking_existed(admin: Conn, auth_id: uuid.UUID, digits: str = DIGITS) -> None:
    """Supabase Auth's phone confirmation with triggers off, a phone verified before linking was deployed, and
    the proof the phone-proofs migration records for every phone confirmed before it."""
    with admin.transaction():
        admin.execute("set local session_replication_role = replica")
        admin.execute(
            "update auth.users set phone = %s, phone_confirmed_at = now(), phone_change = '',"
            " phone_change_token = '', phone_change_sent_at = null, updated_at = now() where id = %s",
            (digits, auth_id),
        )
        admin.execute(
            "insert into private.phone_proofs (auth_id, phone, proven_by) values (%s, %s, 'migration')",
            (auth_id, digits),
        )


# the story -------------------------------------------------------------------


def test_the_whole_story_ends_with_one_profile_holding_both_identities(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """WhatsApp first, app sign-up, link refused until verified, phone confirmed: one profile, every message, one audit row."""
    whatsapp_id = receive(sql, "SMstory1")["user_id"]
    receive(sql, "SMstory2")
    receive(sql, "SMstory3")

    ada = supabase_auth.sign_up("Ada@Example.com", metadata={"full_name": "Ada Lovelace"})
    app_id = profile_id(sql, ada)
    assert len(profiles(sql)) == 2

    refused = link_error(postgrest, ada)
    assert refused.sqlstate == "PT412"
    assert refused.diag.message_primary == (
        "phone must be verified before linking: this account has no confirmed phone"
    )

    supabase_auth.request_phone_change(ada, DIGITS)  # updateUser({ phone }): the code is on its way
    assert link_error(postgrest, ada).sqlstate == "PT412"
    assert len(profiles(sql)) == 2 and merges(sql) == []

    supabase_auth.confirm_phone(ada, DIGITS)  # verifyOtp({ type: 'phone_change' })
    linked = link(postgrest, ada)

    expected = {
        "id": whatsapp_id,
        "auth_id": ada,
        "email": "ada@example.com",
        "full_name": "Ada WA",
        "phone_number": PHONE,
    }
    assert {k: linked[k] for k in expected} == expected
    assert profiles(sql) == [expected]
    assert sql.execute(
        "select count(*) as n, count(*) filter (where user_id = %s) as on_survivor from public.whatsapp_messages",
        (whatsapp_id,),
    ).fetchone() == {"n": 3, "on_survivor": 3}
    assert merges(sql) == [
        {
            "survivor_id": whatsapp_id,
            "absorbed_id": app_id,
            "auth_id": ada,
            "phone_number": PHONE,
            "moved": {},
            "outcome": "merged",
            "reason": None,
            "triggered_by": "auth_trigger",
        }
    ]
    with postgrest.as_user(ada) as cur:
        assert cur.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 3}


def test_the_rpc_merges_a_phone_verified_before_linking_existed(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, admin: Conn
) -> None:
    """The RPC does the merge itself when no trigger did, and a second call is a no-op returning the same profile."""
    whatsapp_id = receive(sql, "SMrpc1")["user_id"]
    ada = supabase_auth.sign_up("ada@example.com", metadata={"full_name": "Ada Lovelace"})
    app_id = profile_id(sql, ada)
    confirm_phone_before_linking_existed(admin, ada)
    assert len(profiles(sql)) == 2

    first = link(postgrest, ada)
    again = link(postgrest, ada)

    assert first == again
    assert (first["id"], first["auth_id"], first["phone_number"]) == (whatsapp_id, ada, PHONE)
    assert len(profiles(sql)) == 1
    assert merges(sql) == [
        {
            "survivor_id": whatsapp_id,
            "absorbed_id": app_id,
            "auth_id": ada,
            "phone_number": PHONE,
            "moved": {},
            "outcome": "merged",
            "reason": None,
            "triggered_by": "rpc",
        }
    ]


def test_the_whatsapp_profile_takes_the_app_name_when_it_has_none(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """A WhatsApp profile without a name keeps the app's; the survivor keeps its own id and phone."""
    whatsapp_id = receive(sql, "SMnoname", name=None)["user_id"]
    ada = supabase_auth.sign_up("ada@example.com", metadata={"full_name": "Ada Lovelace"})
    supabase_auth.confirm_phone(ada, DIGITS)
    assert profiles(sql) == [
        {
            "id": whatsapp_id,
            "auth_id": ada,
            "email": "ada@example.com",
            "full_name": "Ada Lovelace",
            "phone_number": PHONE,
        }
    ]


# the automatic path ----------------------------------------------------------


def test_confirming_the_phone_merges_without_the_rpc(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """An app that never calls the RPC still ends with one profile once Supabase Auth confirms the phone."""
    whatsapp_id = receive(sql, "SMauto1")["user_id"]
    receive(sql, "SMauto2")
    ada = supabase_auth.sign_up("ada@example.com")
    app_id = profile_id(sql, ada)

    supabase_auth.confirm_phone(ada, DIGITS)

    auth_user = supabase_auth.user(ada)
    assert (
        auth_user is not None and auth_user["phone"] == DIGITS and auth_user["phone_confirmed_at"] is not None
    )
    assert [(p["id"], p["auth_id"], p["phone_number"]) for p in profiles(sql)] == [(whatsapp_id, ada, PHONE)]
    assert sql.execute(
        "select count(*) as n from public.whatsapp_messages where user_id = %s", (whatsapp_id,)
    ).fetchone() == {"n": 2}
    assert [(m["survivor_id"], m["absorbed_id"], m["outcome"], m["triggered_by"]) for m in merges(sql)] == [
        (whatsapp_id, app_id, "merged", "auth_trigger")
    ]


def test_phone_sign_up_of_a_whatsapp_number_merges_into_its_profile(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """Signing in to the app with a phone OTP for a number that chats on WhatsApp ends with its one profile."""
    whatsapp_id = receive(sql, "SMotp")["user_id"]
    ada = supabase_auth.sign_up_with_phone(DIGITS)
    assert [(p["id"], p["auth_id"], p["phone_number"]) for p in profiles(sql)] == [(whatsapp_id, ada, PHONE)]
    assert [(m["survivor_id"], m["outcome"]) for m in merges(sql)] == [(whatsapp_id, "merged")]


def test_a_verified_phone_nobody_chats_from_is_written_onto_the_app_profile(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """No profile holds the number: it goes onto the app profile, and later WhatsApp messages land there."""
    ada = supabase_auth.sign_up("ada@example.com")
    app_id = profile_id(sql, ada)

    supabase_auth.confirm_phone(ada, DIGITS)

    assert [(p["id"], p["phone_number"]) for p in profiles(sql)] == [(app_id, PHONE)]
    assert merges(sql) == [
        {
            "survivor_id": app_id,
            "absorbed_id": None,
            "auth_id": ada,
            "phone_number": PHONE,
            "moved": {},
            "outcome": "phone_attached",
            "reason": None,
            "triggered_by": "auth_trigger",
        }
    ]
    first = receive(sql, "SMafter")
    assert (first["user_id"], first["user_created"]) == (app_id, False)


def test_the_rpc_writes_the_phone_onto_the_app_profile(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, admin: Conn
) -> None:
    """Through the RPC too, a verified number no profile holds is attached to the caller's profile."""
    ada = supabase_auth.sign_up("ada@example.com")
    app_id = profile_id(sql, ada)
    confirm_phone_before_linking_existed(admin, ada)
    linked = link(postgrest, ada)
    assert (linked["id"], linked["phone_number"]) == (app_id, PHONE)
    assert [(m["outcome"], m["triggered_by"]) for m in merges(sql)] == [("phone_attached", "rpc")]


# hijack attempts -------------------------------------------------------------


@pytest.fixture
def alice_owns_the_number(sql: Conn, supabase_auth: SupabaseAuth) -> uuid.UUID:
    """Alice's profile holds the number (support attached it); in Supabase Auth it is nobody's."""
    alice = supabase_auth.sign_up("alice@example.com")
    receive(sql, "SMalice")
    sql.execute("delete from public.users where auth_id = %s", (alice,))
    sql.execute(
        "update public.users set auth_id = %s, email = 'alice@example.com' where phone_number = %s",
        (alice, PHONE),
    )
    return alice


def test_confirming_a_number_linked_to_another_account_is_recorded_not_merged(
    sql: Conn, supabase_auth: SupabaseAuth, alice_owns_the_number: uuid.UUID
) -> None:
    """Supabase Auth's confirmation succeeds, the profiles stay as they were, and the refusal is audited."""
    alice = alice_owns_the_number
    alice_profile = profile_id(sql, alice)
    mallory = supabase_auth.sign_up("mallory@example.com")
    mallory_profile = profile_id(sql, mallory)
    before = profiles(sql)

    supabase_auth.confirm_phone(mallory, DIGITS)

    auth_user = supabase_auth.user(mallory)
    assert auth_user is not None and auth_user["phone"] == DIGITS
    assert profiles(sql) == before
    assert merges(sql) == [
        {
            "survivor_id": alice_profile,
            "absorbed_id": mallory_profile,
            "auth_id": mallory,
            "phone_number": PHONE,
            "moved": {},
            "outcome": "refused",
            "reason": f"PT409: phone {PHONE} is linked to another account",
            "triggered_by": "auth_trigger",
        }
    ]


def test_the_rpc_refuses_a_number_linked_to_another_account(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth, alice_owns_the_number: uuid.UUID
) -> None:
    """Linking a number whose profile belongs to another account fails with PT409 and changes nothing."""
    mallory = supabase_auth.sign_up("mallory@example.com")
    supabase_auth.confirm_phone(mallory, DIGITS)
    before = (profiles(sql), merges(sql))

    refused = link_error(postgrest, mallory)

    assert refused.sqlstate == "PT409"
    assert refused.diag.message_primary == f"phone {PHONE} is linked to another account"
    assert refused.diag.message_hint == (
        "Sign in with the account that owns this number, or ask support to unlink it."
    )
    assert (profiles(sql), merges(sql)) == before


def test_a_client_cannot_pass_a_phone(sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth) -> None:
    """The RPC takes no phone, the JWT's phone claim is ignored, and a client cannot write phone_number itself."""
    whatsapp_id = receive(sql, "SMvictim")["user_id"]
    mallory = supabase_auth.sign_up("mallory@example.com")
    mallory_profile = profile_id(sql, mallory)
    before = profiles(sql)

    for call in (
        "select public.link_whatsapp_account(phone => '+14155550123')",
        "select public.link_whatsapp_account('+14155550123')",
    ):
        with pytest.raises(psycopg.Error) as caught, postgrest.as_user(mallory) as cur:
            cur.execute(call)
        assert caught.value.sqlstate == "42883"

    assert link_error(postgrest, mallory, phone=DIGITS).sqlstate == "PT412"

    with pytest.raises(psycopg.Error) as caught, postgrest.as_user(mallory) as cur:
        cur.execute("update public.users set phone_number = %s where id = %s", (PHONE, mallory_profile))
    assert caught.value.sqlstate == "42501"

    assert profiles(sql) == before
    assert merges(sql) == []
    assert whatsapp_id != mallory_profile


def test_anon_and_the_service_role_cannot_link(sql: Conn, postgrest: Postgrest) -> None:
    """Only a signed-in user may link: anon and service_role get permission denied."""
    receive(sql, "SManon")
    for actor in (postgrest.as_anon, postgrest.as_service):
        with pytest.raises(psycopg.Error) as caught, actor() as cur:
            cur.execute("select public.link_whatsapp_account()")
        assert caught.value.sqlstate == "42501"
        assert caught.value.diag.message_primary == "permission denied for function link_whatsapp_account"
    assert len(profiles(sql)) == 1


def test_another_user_cannot_link_or_read_someone_elses_merge(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """Bob, signed in without a verified phone, is refused and sees neither Ada's profile nor her audit row."""
    receive(sql, "SMada")
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.confirm_phone(ada, DIGITS)
    bob = supabase_auth.sign_up("bob@example.com")
    bob_profile = profile_id(sql, bob)
    before = profiles(sql)

    assert link_error(postgrest, bob).sqlstate == "PT412"

    with postgrest.as_user(bob) as cur:
        assert cur.execute("select id from public.users").fetchall() == [{"id": bob_profile}]
        assert cur.execute("select count(*) as n from public.user_merges").fetchone() == {"n": 0}
    with postgrest.as_user(ada) as cur:
        assert cur.execute("select auth_id, outcome from public.user_merges").fetchall() == [
            {"auth_id": ada, "outcome": "merged"}
        ]
    with postgrest.as_anon() as cur, pytest.raises(psycopg.Error) as caught:
        cur.execute("select * from public.user_merges")
    assert caught.value.sqlstate == "42501"
    assert profiles(sql) == before


def test_clients_cannot_write_the_audit_trail(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """An authenticated user cannot insert, change or delete audit rows; the service role reads them all."""
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.confirm_phone(ada, DIGITS)
    for statement in (
        "insert into public.user_merges (outcome, triggered_by) values ('merged', 'rpc')",
        "update public.user_merges set outcome = 'refused' where auth_id = %(ada)s",
        "delete from public.user_merges where auth_id = %(ada)s",
    ):
        with pytest.raises(psycopg.Error) as caught, postgrest.as_user(ada) as cur:
            cur.execute(statement, {"ada": ada})
        assert caught.value.sqlstate == "42501"
    with postgrest.as_service() as cur:
        assert cur.execute("select outcome from public.user_merges").fetchall() == [
            {"outcome": "phone_attached"}
        ]


# Supabase Auth's own write pattern --------------------------------------------


def test_sign_up_and_other_auth_writes_do_not_merge_by_accident(
    sql: Conn, supabase_auth: SupabaseAuth, db: Database
) -> None:
    """Sign-up (role '' then 'authenticated'), a pending phone change and rewrites of an unchanged phone merge nothing."""
    receive(sql, "SMquiet")
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.request_phone_change(ada, DIGITS)
    assert len(profiles(sql)) == 2 and merges(sql) == []

    bob = supabase_auth.sign_up_with_phone("14155550999")  # attaches +14155550999 to Bob's own profile
    assert len(merges(sql)) == 1
    with db.connect("supabase_auth_admin") as auth:
        # A sign-in rewrites the whole row: same phone, same confirmation time.
        auth.execute(
            "update users set phone = phone, phone_confirmed_at = phone_confirmed_at,"
            " last_sign_in_at = now(), updated_at = now() where id = %s",
            (bob,),
        )
        # A phone confirmed again with the same number.
        auth.execute("update users set phone_confirmed_at = now() where id = %s", (bob,))
    assert len(profiles(sql)) == 3
    assert len(merges(sql)) == 1


def test_phone_confirmation_is_one_update_that_merges_once(
    sql: Conn, supabase_auth: SupabaseAuth, db: Database
) -> None:
    """The single UPDATE of verifyOtp (phone, phone_confirmed_at, phone_change cleared) merges exactly once."""
    whatsapp_id = receive(sql, "SMonce")["user_id"]
    ada = supabase_auth.sign_up("ada@example.com")
    supabase_auth.request_phone_change(ada, DIGITS)
    with db.connect("supabase_auth_admin") as auth:
        updated = auth.execute(
            "update users set phone = %s, phone_confirmed_at = now(), phone_change = '',"
            " phone_change_token = '', phone_change_sent_at = null, updated_at = now() where id = %s",
            (DIGITS, ada),
        )
        assert updated.rowcount == 1
    assert [(p["id"], p["auth_id"]) for p in profiles(sql)] == [(whatsapp_id, ada)]
    assert [m["outcome"] for m in merges(sql)] == ["merged"]
