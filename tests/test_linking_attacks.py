"""Attacks on account linking: only a confirmation proving that this account controls the number now links it.

Each test writes to auth.users what Supabase Auth writes (tests/actors.py names the GoTrue function each
method follows). A confirmation that proves less is refused: the automatic link records why in
public.user_merges, and link_whatsapp_account answers with the reason, for as long as nothing proves more.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from actors import Postgrest, SupabaseAuth

Conn = psycopg.Connection[dict[str, Any]]

VICTIM = "+14155550123"
VICTIM_DIGITS = "14155550123"  # how Supabase Auth stores the same number
OWN_DIGITS = "14155550777"


def whatsapp_history(sql: Conn, sid: str = "SMvictim") -> uuid.UUID:
    """The victim has chatted on WhatsApp: a profile with the number and a message, linked to no account."""
    row = sql.execute(
        "select user_id from public.receive_whatsapp_message(%s, %s, 'my private message', 'Victim')",
        (sid, f"whatsapp:{VICTIM}"),
    ).fetchone()
    assert row is not None
    return row["user_id"]  # type: ignore[no-any-return]


def holder_of_history(sql: Conn, whatsapp_id: uuid.UUID) -> uuid.UUID | None:
    row = sql.execute("select auth_id from public.users where id = %s", (whatsapp_id,)).fetchone()
    assert row is not None, "the WhatsApp profile must survive"
    return row["auth_id"]  # type: ignore[no-any-return]


def refusals(sql: Conn) -> list[tuple[uuid.UUID, str, str]]:
    return [
        (row["auth_id"], row["phone_number"], row["reason"].split(":")[0])
        for row in sql.execute(
            "select auth_id, phone_number, reason from public.user_merges where outcome = 'refused'"
            " order by created_at, id"
        ).fetchall()
    ]


def link_error(postgrest: Postgrest, auth_id: uuid.UUID) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught, postgrest.as_user(auth_id) as cur:
        cur.execute("select * from public.link_whatsapp_account()")
    return caught.value


def link(postgrest: Postgrest, auth_id: uuid.UUID) -> uuid.UUID:
    with postgrest.as_user(auth_id) as cur:
        row = cur.execute("select id from public.link_whatsapp_account()").fetchone()
    assert row is not None
    return row["id"]  # type: ignore[no-any-return]


def own_number_confirmed(supabase_auth: SupabaseAuth, email: str) -> uuid.UUID:
    """An email account that verified a number of its own: updateUser({ phone }), then the code."""
    user_id = supabase_auth.sign_up(email)
    supabase_auth.request_phone_change(user_id, OWN_DIGITS)
    supabase_auth.verify_phone_change(OWN_DIGITS)
    return user_id


# an admin phone write --------------------------------------------------------


def test_an_admin_phone_write_does_not_count_as_a_confirmation(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """updateUserById(id, { phone }) writes the phone alone: the earlier confirmation of another number proves
    nothing about this one, so no link, a refusal on record, and the RPC refuses too."""
    whatsapp_id = whatsapp_history(sql)
    agent_changed = own_number_confirmed(supabase_auth, "customer@example.com")

    supabase_auth.admin_update_user(agent_changed, phone=VICTIM_DIGITS)

    assert holder_of_history(sql, whatsapp_id) is None
    assert refusals(sql) == [(agent_changed, VICTIM, "PT412")]
    refused = link_error(postgrest, agent_changed)
    assert (refused.sqlstate, refused.diag.message_primary) == (
        "PT412",
        f"phone {VICTIM} on this account was not confirmed with a code sent to it",
    )

    # The person holding the number proves it with a code: now it links.
    supabase_auth.request_phone_code(VICTIM_DIGITS)
    supabase_auth.verify_phone_code(VICTIM_DIGITS)
    assert holder_of_history(sql, whatsapp_id) == agent_changed


def test_an_admin_write_with_phone_confirm_is_the_backend_vouching(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """updateUserById(id, { phone, phone_confirm: true }) confirms first, then writes the phone: the backend
    asserts the number is this account's, and it links."""
    whatsapp_id = whatsapp_history(sql)
    customer = own_number_confirmed(supabase_auth, "customer@example.com")

    supabase_auth.admin_update_user(customer, phone=VICTIM_DIGITS, phone_confirm=True)

    assert holder_of_history(sql, whatsapp_id) == customer
    assert refusals(sql) == []


def test_an_admin_created_user_with_phone_confirm_links(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """createUser({ phone, phone_confirm: true }) inserts, then confirms in a later UPDATE: the backend vouches."""
    whatsapp_id = whatsapp_history(sql)

    user_id = supabase_auth.create_user(VICTIM_DIGITS, phone_confirm=True)

    assert holder_of_history(sql, whatsapp_id) == user_id


# a verification captured by another pending change (supabase/auth#2430) ------------


def test_a_verification_applied_to_another_accounts_pending_change_links_nothing(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """Mallory leaves updateUser({ phone: VICTIM }) pending; the victim's own code lands on Mallory's row: her
    account holds the number confirmed, but the number's history stays unlinked, now and after the window."""
    whatsapp_id = whatsapp_history(sql)
    mallory = supabase_auth.sign_up("mallory@example.com")
    supabase_auth.request_phone_change(mallory, VICTIM_DIGITS)
    victim = supabase_auth.sign_up("victim@example.com")
    supabase_auth.request_phone_change(victim, VICTIM_DIGITS)

    supabase_auth.verify_phone_change(VICTIM_DIGITS, found=mallory)  # the lookup met Mallory's row first

    assert supabase_auth.user(mallory)["phone"] == VICTIM_DIGITS  # type: ignore[index]
    assert holder_of_history(sql, whatsapp_id) is None
    assert refusals(sql) == [(mallory, VICTIM, "PT412")]
    # An hour later the victim's pending change no longer counts as a conflict; Mallory's confirmation
    # still proves nothing.
    sql.execute(
        "update auth.users set phone_change_sent_at = now() - interval '2 hours' where id = %s", (victim,)
    )
    refused = link_error(postgrest, mallory)
    assert (refused.sqlstate, refused.diag.message_primary) == (
        "PT412",
        f"the confirmation of phone {VICTIM} is disputed: another account had a change to the same number pending",
    )
    assert holder_of_history(sql, whatsapp_id) is None


def test_the_owner_verifying_while_another_change_is_pending_links_after_signing_in_with_a_code(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """When the lookup meets the victim's own row, Mallory's pending change still makes the confirmation
    ambiguous: refused until the victim signs in with a code sent to the number, which only they receive."""
    whatsapp_id = whatsapp_history(sql)
    mallory = supabase_auth.sign_up("mallory@example.com")
    supabase_auth.request_phone_change(mallory, VICTIM_DIGITS)
    victim = supabase_auth.sign_up("victim@example.com")
    supabase_auth.request_phone_change(victim, VICTIM_DIGITS)

    supabase_auth.verify_phone_change(VICTIM_DIGITS, found=victim)

    assert holder_of_history(sql, whatsapp_id) is None
    assert refusals(sql) == [(victim, VICTIM, "PT412")]
    assert link_error(postgrest, victim).sqlstate == "PT412"

    supabase_auth.request_phone_code(
        VICTIM_DIGITS
    )  # signInWithOtp finds the victim by phone, which is unique
    supabase_auth.verify_phone_code(VICTIM_DIGITS)
    assert holder_of_history(sql, whatsapp_id) == victim
    assert link(postgrest, victim) == whatsapp_id


def test_a_pending_change_older_than_any_code_does_not_block_the_owner(
    sql: Conn, supabase_auth: SupabaseAuth
) -> None:
    """A change left pending for more than an hour cannot be the one a fresh code confirms: the owner links."""
    whatsapp_id = whatsapp_history(sql)
    stale = supabase_auth.sign_up("abandoned@example.com")
    supabase_auth.request_phone_change(stale, VICTIM_DIGITS)
    sql.execute(
        "update auth.users set phone_change_sent_at = now() - interval '2 hours' where id = %s", (stale,)
    )
    victim = supabase_auth.sign_up("victim@example.com")
    supabase_auth.request_phone_change(victim, VICTIM_DIGITS)

    supabase_auth.verify_phone_change(VICTIM_DIGITS, found=victim)

    assert holder_of_history(sql, whatsapp_id) == victim
    assert refusals(sql) == []


def test_a_pending_change_to_an_equivalent_form_is_a_conflict(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """Mallory's pending change to the 8-digit form of a Brazilian mobile conflicts with the 9-digit form."""
    sql.execute("select public.receive_whatsapp_message('SMbr', 'whatsapp:+551187654321', 'oi')")
    mallory = supabase_auth.sign_up("mallory@example.com")
    supabase_auth.request_phone_change(mallory, "551187654321")
    victim = supabase_auth.sign_up("victim@example.com")
    supabase_auth.request_phone_change(victim, "5511987654321")

    supabase_auth.verify_phone_change("5511987654321", found=victim)

    assert refusals(sql) == [(victim, "+5511987654321", "PT412")]


# pre-hijacking through an unverified phone sign-up ------------------------------------


def test_a_phone_sign_up_made_before_the_owner_asked_for_a_code_is_not_linked(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """Mallory signs up with the victim's number and a password she knows; later the victim signs in with a
    code, confirming Mallory's account: the history is not linked, automatically or by the RPC."""
    whatsapp_id = whatsapp_history(sql)
    mallory = supabase_auth.request_phone_code(
        VICTIM_DIGITS, password_hash="$2a$10$mallory.knows.this.password.."
    )

    assert (
        supabase_auth.request_phone_code(VICTIM_DIGITS) == mallory
    )  # the victim's sign-in finds her account
    supabase_auth.verify_phone_code(VICTIM_DIGITS)

    assert holder_of_history(sql, whatsapp_id) is None
    assert refusals(sql) == [(mallory, VICTIM, "PT403")]
    refused = link_error(postgrest, mallory)
    assert (refused.sqlstate, refused.diag.message_primary) == (
        "PT403",
        f"phone {VICTIM} was on this account before a code proved it: whoever signed it up may know its password",
    )
    # Signing in with a code again proves the number, not who else holds the password.
    supabase_auth.request_phone_code(VICTIM_DIGITS)
    supabase_auth.verify_phone_code(VICTIM_DIGITS)
    assert link_error(postgrest, mallory).sqlstate == "PT403"


def test_the_backend_can_vouch_for_a_held_account(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """After its own checks, the backend confirms the phone with the admin API: the account links."""
    whatsapp_id = whatsapp_history(sql)
    account = supabase_auth.request_phone_code(
        VICTIM_DIGITS, password_hash="$2a$10$someone.chose.this.password..."
    )
    supabase_auth.request_phone_code(VICTIM_DIGITS)
    supabase_auth.verify_phone_code(VICTIM_DIGITS)
    assert holder_of_history(sql, whatsapp_id) is None

    supabase_auth.admin_update_user(account, phone_confirm=True)

    assert holder_of_history(sql, whatsapp_id) == account


def test_a_phone_sign_up_confirmed_with_its_own_code_links(sql: Conn, supabase_auth: SupabaseAuth) -> None:
    """signUp({ phone, password }) confirmed with the code that sign-up sent: whoever chose the password holds
    the phone, and the history links."""
    whatsapp_id = whatsapp_history(sql)
    user_id = supabase_auth.request_phone_code(
        VICTIM_DIGITS, password_hash="$2a$10$the.owner.chose.this.password."
    )
    supabase_auth.verify_phone_code(VICTIM_DIGITS)

    assert holder_of_history(sql, whatsapp_id) == user_id
    assert refusals(sql) == []
