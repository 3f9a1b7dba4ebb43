"""The takeovers of a number's WhatsApp history, tried against the real Supabase Auth server:
each write Auth makes succeeds, and no account that does not control the number reads the history."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest
from actors import App
from conftest import otp_for
from supabase_auth import SyncGoTrueAdminAPI

pytestmark = pytest.mark.real_auth

Conn = psycopg.Connection[dict[str, Any]]
PASSWORD = "correct horse battery"
VICTIM = "14155557001"
SMS_MAX_FREQUENCY = 5.1  # config.toml's [auth.sms] max_frequency between two codes to one number


def an_email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def victims_history(sql: Conn) -> uuid.UUID:
    """The victim has written to the business on WhatsApp: one profile, one private message."""
    row = sql.execute(
        "select user_id from public.receive_whatsapp_message(%s, %s, 'my address is ...', 'Victim')",
        ("SM" + uuid.uuid4().hex, f"whatsapp:+{VICTIM}"),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row["user_id"]))


def refusal_of(app: App) -> str:
    with pytest.raises(psycopg.Error) as refused:
        app.query("select * from public.link_whatsapp_account()")
    return str(refused.value.sqlstate)


def test_a_pending_change_does_not_capture_the_victims_verification(
    sql: Conn, app: App, second_app: App, victims_history: uuid.UUID
) -> None:
    """supabase/auth#2430: the attacker leaves updateUser({ phone: VICTIM }) pending; Auth may apply the
    victim's own verification to the attacker's account, so a confirmation made while another account
    has the number pending links nothing, and the attacker never reads the history."""
    attacker, victim = app, second_app
    attacker.sign_up(an_email(), PASSWORD)
    attacker.client.update_user({"phone": VICTIM})
    victim.sign_up(an_email(), PASSWORD)
    time.sleep(SMS_MAX_FREQUENCY)
    victim.client.update_user({"phone": VICTIM})
    victim.client.verify_otp({"phone": VICTIM, "token": otp_for(VICTIM), "type": "phone_change"})

    attacker.client.refresh_session()
    victim.client.refresh_session()
    holder = sql.execute("select id from auth.users where phone = %s", (VICTIM,)).fetchone()
    assert holder is not None and holder["id"] in (attacker.user_id, victim.user_id)
    # Auth picks whichever pending row its scan meets first; either way the confirmation is disputed.
    confirmed = attacker if holder["id"] == attacker.user_id else victim
    assert attacker.query("select body from public.whatsapp_messages") == []
    assert refusal_of(confirmed) == "PT412"
    assert sql.execute("select auth_id from public.users where id = %s", (victims_history,)).fetchone() == {
        "auth_id": None
    }
    reasons = sql.execute(
        "select reason from public.user_merges where auth_id = %s and outcome = 'refused'",
        (confirmed.user_id,),
    ).fetchall()
    assert reasons and all("pending" in r["reason"] for r in reasons), reasons


def test_a_phone_sign_up_made_by_someone_else_is_held(
    sql: Conn, app: App, second_app: App, victims_history: uuid.UUID
) -> None:
    """Pre-hijacking: signUp({ phone: VICTIM, password }) by the attacker, then the victim's own code
    sign-in confirms that account; the attacker's password session reads nothing, the RPC is refused."""
    attacker, victim = app, second_app
    attacker.client.sign_up({"phone": VICTIM, "password": PASSWORD})
    time.sleep(SMS_MAX_FREQUENCY)
    victim.sign_in_with_phone(VICTIM, otp_for(VICTIM))
    attacker.client.sign_in_with_password({"phone": VICTIM, "password": PASSWORD})

    assert attacker.user_id == victim.user_id  # Auth made them one account
    assert attacker.query("select body from public.whatsapp_messages") == []
    assert refusal_of(attacker) == "PT403"
    assert (
        refusal_of(victim) == "PT403"
    )  # the attacker shares this account: linking it would hand them the history
    assert sql.execute("select auth_id from public.users where id = %s", (victims_history,)).fetchone() == {
        "auth_id": None
    }


def test_an_admin_phone_write_is_not_a_verification(
    sql: Conn, app: App, auth_admin: SyncGoTrueAdminAPI, victims_history: uuid.UUID
) -> None:
    """updateUserById(id, { phone }) on an account that confirmed its own number: the new number's
    history stays where it is, and the RPC says the number was not verified (PT412)."""
    own = "14155557002"
    user_id = app.sign_up(an_email(), PASSWORD)
    app.add_phone(own, otp_for(own))
    auth_admin.update_user_by_id(str(user_id), {"phone": VICTIM})
    app.client.refresh_session()

    assert sql.execute(
        "select phone, phone_confirmed_at is not null as c from auth.users where id = %s", (user_id,)
    ).fetchone() == {"phone": VICTIM, "c": True}
    assert app.query("select body from public.whatsapp_messages") == []
    assert refusal_of(app) == "PT412"


def test_an_admin_write_with_phone_confirm_is_the_backend_vouching(
    sql: Conn, app: App, auth_admin: SyncGoTrueAdminAPI, victims_history: uuid.UUID
) -> None:
    """updateUserById(id, { phone, phone_confirm: true }): the service key asserts the number, and the
    history is linked (docs/security.md)."""
    user_id = app.sign_up(an_email(), PASSWORD)
    auth_admin.update_user_by_id(str(user_id), {"phone": VICTIM, "phone_confirm": True})
    app.client.refresh_session()
    assert app.query("select body from public.whatsapp_messages") == [{"body": "my address is ..."}]
    assert sql.execute("select auth_id from public.users where id = %s", (victims_history,)).fetchone() == {
        "auth_id": user_id
    }
