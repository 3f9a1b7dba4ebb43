"""The auth.users triggers keep public.users in step with what Supabase Auth writes."""

from __future__ import annotations

from typing import Any

import psycopg
from actors import SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]


def profile_of(sql: Conn, auth_id: object) -> dict[str, Any] | None:
    return sql.execute(
        "select auth_id, email, full_name, phone_number from public.users where auth_id = %s", (auth_id,)
    ).fetchone()


def test_sign_up_creates_the_profile_with_email_and_metadata_name(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """An email sign-up, written as Supabase Auth writes it, gets its profile in the same transaction."""
    user_id = supabase_auth.sign_up("Grace@Example.com", metadata={"full_name": "Grace Hopper"})
    assert profile_of(sql, user_id) == {
        "auth_id": user_id,
        "email": "grace@example.com",
        "full_name": "Grace Hopper",
        "phone_number": None,
    }


def test_sign_up_without_a_name_leaves_full_name_empty(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """No full_name in the metadata means no name, not an error."""
    user_id = supabase_auth.sign_up("noname@example.com", metadata={"avatar": "x"})
    profile = profile_of(sql, user_id)
    assert profile is not None and profile["full_name"] is None


def test_confirmed_email_change_is_mirrored(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """When Supabase Auth confirms a new email, the profile's email follows."""
    user_id = supabase_auth.sign_up("old@example.com")
    supabase_auth.change_email(user_id, "New@Example.com")
    profile = profile_of(sql, user_id)
    assert profile is not None and profile["email"] == "new@example.com"


def test_pending_email_change_is_not_mirrored(sql: Conn, supabase_auth: SupabaseAuth, db: Any) -> None:
    """Only the confirmed address counts: email_change alone leaves the profile as it was."""
    user_id = supabase_auth.sign_up("keep@example.com")
    with db.connect("supabase_auth_admin") as auth:
        auth.execute("update users set email_change = 'pending@example.com' where id = %s", (user_id,))
    profile = profile_of(sql, user_id)
    assert profile is not None and profile["email"] == "keep@example.com"


def test_user_created_with_a_confirmed_phone_takes_over_the_whatsapp_profile(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """An auth user whose confirmed phone already chats on WhatsApp attaches to that profile, no duplicate."""
    whatsapp = sql.execute(
        "select id from public.get_or_create_whatsapp_user('whatsapp:+14155550188', 'Linus')"
    ).fetchone()
    assert whatsapp is not None
    user_id = supabase_auth.admin_create_user("14155550188", email="linus@example.com")
    rows = sql.execute("select id, auth_id, email, full_name, phone_number from public.users").fetchall()
    assert rows == [
        {
            "id": whatsapp["id"],
            "auth_id": user_id,
            "email": "linus@example.com",
            "full_name": "Linus",
            "phone_number": "+14155550188",
        }
    ]


def test_sso_users_sharing_an_email_still_sign_up(sql: Conn, supabase_auth: SupabaseAuth, db: Any) -> None:
    """Auth allows SSO users to share an address; the trigger must not fail their sign-up over it."""
    first = supabase_auth.sign_up("shared@example.com")
    with db.connect("supabase_auth_admin") as auth:
        auth.execute(
            "insert into users (instance_id, id, aud, role, email, is_sso_user, created_at, updated_at)"
            " values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated',"
            " 'authenticated', 'shared@example.com', true, now(), now())"
        )
    rows = sql.execute("select auth_id, email from public.users order by email nulls last").fetchall()
    assert [r["email"] for r in rows] == ["shared@example.com", None]
    assert rows[0]["auth_id"] == first


def test_updated_at_moves_on_update(sql: Conn) -> None:
    """updated_at is kept by a trigger, not by callers."""
    sql.execute("select * from public.get_or_create_whatsapp_user('+14155550100')")
    before = sql.execute("select created_at, updated_at from public.users").fetchone()
    sql.execute("update public.users set full_name = 'Changed'")
    after = sql.execute("select created_at, updated_at from public.users").fetchone()
    assert before is not None and after is not None
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]


def test_a_confirmed_user_attaching_to_a_whatsapp_profile_survives_an_email_held_by_an_sso_user(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """Auth's insert succeeds and the WhatsApp profile is attached, without the address an SSO user's profile holds."""
    sso = supabase_auth.sso_sign_in("shared@example.com")
    whatsapp = sql.execute(
        "select id from public.get_or_create_whatsapp_user('+14155550188', 'Linus')"
    ).fetchone()
    assert whatsapp is not None

    user_id = supabase_auth.admin_create_user("14155550188", email="shared@example.com")

    assert sql.execute(
        "select id, auth_id, email, phone_number from public.users where auth_id = %s", (user_id,)
    ).fetchone() == {
        "id": whatsapp["id"],
        "auth_id": user_id,
        "email": None,
        "phone_number": "+14155550188",
    }
    assert profile_of(sql, sso) == {
        "auth_id": sso,
        "email": "shared@example.com",
        "full_name": None,
        "phone_number": None,
    }


def test_a_confirmed_user_keeps_its_phone_when_an_sso_user_holds_its_email(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """Without a WhatsApp profile to attach, the new profile drops only the clashing address, not the confirmed phone."""
    supabase_auth.sso_sign_in("shared@example.com")

    user_id = supabase_auth.admin_create_user("14155550199", email="shared@example.com")

    assert profile_of(sql, user_id) == {
        "auth_id": user_id,
        "email": None,
        "full_name": None,
        "phone_number": "+14155550199",
    }


def test_an_unconfirmed_sign_up_shows_no_email_until_auth_confirms_it(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """The address appears on the profile in the UPDATE that confirms it, not at sign-up."""
    user_id = supabase_auth.sign_up("pending@example.com", confirm=False)
    assert profile_of(sql, user_id) == {
        "auth_id": user_id,
        "email": None,
        "full_name": None,
        "phone_number": None,
    }

    supabase_auth.confirm_email(user_id)

    profile = profile_of(sql, user_id)
    assert profile is not None and profile["email"] == "pending@example.com"


def test_an_unconfirmed_sign_up_does_not_hold_the_address_from_its_owner(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """Someone who signs up with another person's address and never confirms it keeps nobody's profile from showing it."""
    squatter = supabase_auth.sign_up("owner@example.com", confirm=False)
    owner = supabase_auth.sso_sign_in("owner@example.com")

    assert profile_of(sql, owner) == {
        "auth_id": owner,
        "email": "owner@example.com",
        "full_name": None,
        "phone_number": None,
    }
    assert profile_of(sql, squatter) == {
        "auth_id": squatter,
        "email": None,
        "full_name": None,
        "phone_number": None,
    }


def test_a_phone_user_adding_an_email_shows_it_once_confirmed(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """ConfirmEmailChange writes the address, then Confirm sets email_confirmed_at: the profile follows the second."""
    user_id = supabase_auth.admin_create_user("14155550166")
    supabase_auth.confirm_email_change(user_id, "Late@Example.com")

    profile = profile_of(sql, user_id)
    assert profile is not None and profile["email"] == "late@example.com"


def test_an_address_written_without_confirmation_is_not_shown(
    sql: Conn, supabase_auth: SupabaseAuth, db: Any
) -> None:
    """An admin write of email alone (SetEmail) to a user whose email was never confirmed leaves the profile without one."""
    user_id = supabase_auth.admin_create_user("14155550177")
    with db.connect("supabase_auth_admin") as auth:
        auth.execute(
            "update users set email = 'unproven@example.com', updated_at = now() where id = %s", (user_id,)
        )

    profile = profile_of(sql, user_id)
    assert profile is not None and profile["email"] is None
