"""Every app-side flow against the real Supabase Auth server, driven by Supabase's own Python
auth client as a mobile app drives it; RPCs go through PostgREST's steps with the token it issued."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from actors import App
from conftest import otp_for
from relay_support import RelayServer, post
from supabase_auth import SyncGoTrueAdminAPI
from supabase_auth.errors import AuthApiError

from glue.devdb.auth import AuthServer
from glue.simulate import inbound_params

pytestmark = pytest.mark.real_auth

Conn = psycopg.Connection[dict[str, Any]]
PASSWORD = "correct horse battery"


def an_email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


def profile_of(sql: Conn, auth_id: uuid.UUID | str) -> dict[str, Any] | None:
    return sql.execute(
        "select id, auth_id, email, full_name, phone_number from public.users where auth_id = %s", (auth_id,)
    ).fetchone()


def whatsapp_profile(sql: Conn, phone: str) -> dict[str, Any]:
    row = sql.execute(
        "select * from public.get_or_create_whatsapp_user(%s, 'WhatsApp name')", (phone,)
    ).fetchone()
    assert row is not None
    return row


def test_email_sign_up_gives_one_profile_and_the_token_reaches_our_rpcs(sql: Conn, app: App) -> None:
    """Sign up, confirm by mail, sign in: one profile with the address, and auth.uid() is the caller."""
    email = an_email()
    user_id = app.sign_up(email, PASSWORD, full_name="Ada Lovelace")
    app.client.sign_out()
    app.sign_in(email, PASSWORD)
    assert app.user_id == user_id
    profile = profile_of(sql, user_id)
    assert profile is not None
    assert (profile["email"], profile["full_name"], profile["phone_number"]) == (email, "Ada Lovelace", None)
    assert app.query("select auth.uid() as uid, current_user as who") == [
        {"uid": user_id, "who": "authenticated"}
    ]
    assert app.query("select id from public.users") == [{"id": profile["id"]}]


def test_a_token_signed_with_another_secret_is_refused(app: App, auth_server: AuthServer) -> None:
    """PostgREST's step checks the signature: a token from another project never sets claims."""
    import jwt

    app.sign_up(an_email(), PASSWORD)
    forged = jwt.encode(
        jwt.decode(app.access_token, options={"verify_signature": False}),
        "another-projects-secret-of-at-least-32-characters",
        "HS256",
    )
    with pytest.raises(jwt.InvalidSignatureError):
        app._api.with_token(forged, auth_server.secret).__enter__()


def test_the_mission_story_whatsapp_first_then_the_app(
    sql: Conn, app: App, relay: RelayServer, client: httpx.Client
) -> None:
    """Messages through the relay, then sign-up and a verified phone: one profile holds the history."""
    phone = "14155557001"
    for body in ("hello", "is my order on its way?"):
        assert (
            post(
                client, relay.url, inbound_params(f"whatsapp:+{phone}", body, profile_name="Ada")
            ).status_code
            == 200
        )
    whatsapp_id = sql.execute(
        "select id from public.users where phone_number = %s", (f"+{phone}",)
    ).fetchone()
    assert whatsapp_id is not None

    user_id = app.sign_up(an_email(), PASSWORD)
    assert app.query("select count(*) as n from public.whatsapp_messages") == [{"n": 0}]
    app.add_phone(phone, otp_for(phone))

    linked = app.query("select id, phone_number from public.link_whatsapp_account()")
    assert linked == [{"id": whatsapp_id["id"], "phone_number": f"+{phone}"}]
    assert app.query("select body from public.whatsapp_messages order by received_at") == [
        {"body": "hello"},
        {"body": "is my order on its way?"},
    ]
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 1}
    merges = sql.execute("select auth_id, outcome, triggered_by from public.user_merges").fetchall()
    assert merges == [{"auth_id": user_id, "outcome": "merged", "triggered_by": "auth_trigger"}]


def test_a_pending_phone_change_links_nothing(sql: Conn, app: App) -> None:
    """updateUser({ phone }) without the code leaves the WhatsApp profile alone and the RPC refuses."""
    phone = "14155557002"
    whatsapp = whatsapp_profile(sql, f"+{phone}")
    user_id = app.sign_up(an_email(), PASSWORD)
    app.client.update_user({"phone": phone})
    with pytest.raises(psycopg.Error) as refused:
        app.query("select * from public.link_whatsapp_account()")
    assert refused.value.sqlstate == "PT412"
    assert profile_of(sql, user_id)["phone_number"] is None  # type: ignore[index]
    assert sql.execute("select auth_id from public.users where id = %s", (whatsapp["id"],)).fetchone() == {
        "auth_id": None
    }


def test_a_wrong_code_is_refused_by_auth_and_links_nothing(sql: Conn, app: App) -> None:
    """A wrong phone_change code: Auth refuses it, nothing reaches the profile."""
    phone = "14155557003"
    whatsapp_profile(sql, f"+{phone}")
    user_id = app.sign_up(an_email(), PASSWORD)
    app.client.update_user({"phone": phone})
    with pytest.raises(AuthApiError):
        app.client.verify_otp({"phone": phone, "token": "999999", "type": "phone_change"})
    assert profile_of(sql, user_id)["phone_number"] is None  # type: ignore[index]
    assert sql.execute("select count(*) as n from public.user_merges").fetchone() == {"n": 0}


def test_phone_otp_sign_in_takes_over_the_whatsapp_profile(sql: Conn, app: App) -> None:
    """signInWithOtp then verifyOtp: the new account gets the WhatsApp profile, not a second one."""
    phone = "14155557004"
    whatsapp = whatsapp_profile(sql, f"+{phone}")
    app.sign_in_with_phone(phone, otp_for(phone))
    assert app.query("select id, phone_number from public.users") == [
        {"id": whatsapp["id"], "phone_number": f"+{phone}"}
    ]
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 1}


def test_anonymous_sign_in_is_off_as_config_toml_says(sql: Conn, app: App) -> None:
    """enable_anonymous_sign_ins = false: Auth refuses, and no profile appears."""
    with pytest.raises(AuthApiError) as refused:
        app.client.sign_in_anonymously()
    assert refused.value.status == 422
    assert sql.execute("select count(*) as n from public.users").fetchone() == {"n": 0}


def test_admin_create_with_a_confirmed_phone_takes_over_the_whatsapp_profile(
    sql: Conn, auth_admin: SyncGoTrueAdminAPI
) -> None:
    """admin.createUser({ phone, phone_confirm: true }): the backend vouches, the profile is attached."""
    phone = "14155557005"
    whatsapp = whatsapp_profile(sql, f"+{phone}")
    user = auth_admin.create_user({"phone": phone, "phone_confirm": True}).user
    assert profile_of(sql, user.id) == {
        "id": whatsapp["id"],
        "auth_id": uuid.UUID(user.id),
        "email": None,
        "full_name": "WhatsApp name",
        "phone_number": f"+{phone}",
    }


def test_admin_create_without_phone_confirm_attaches_nothing(
    sql: Conn, auth_admin: SyncGoTrueAdminAPI
) -> None:
    """admin.createUser({ phone }) unconfirmed: a profile of its own, the WhatsApp profile untouched."""
    phone = "14155557006"
    whatsapp = whatsapp_profile(sql, f"+{phone}")
    user = auth_admin.create_user({"phone": phone, "email": an_email(), "email_confirm": True}).user
    profile = profile_of(sql, user.id)
    assert profile is not None and profile["id"] != whatsapp["id"]
    assert sql.execute("select auth_id from public.users where id = %s", (whatsapp["id"],)).fetchone() == {
        "auth_id": None
    }


def test_admin_delete_keeps_the_whatsapp_profile(sql: Conn, app: App, auth_admin: SyncGoTrueAdminAPI) -> None:
    """admin.deleteUser of a linked account: the WhatsApp profile and its history stay, unlinked."""
    phone = "14155557007"
    whatsapp = whatsapp_profile(sql, f"+{phone}")
    sql.execute(
        "select * from public.receive_whatsapp_message('SM' || md5('kept'), %s, 'kept', null)",
        (f"whatsapp:+{phone}",),
    )
    user_id = app.sign_up(an_email(), PASSWORD)
    app.add_phone(phone, otp_for(phone))
    auth_admin.delete_user(str(user_id))
    assert sql.execute("select id, auth_id, email from public.users").fetchall() == [
        {"id": whatsapp["id"], "auth_id": None, "email": None}
    ]
    assert sql.execute("select count(*) as n from public.whatsapp_messages").fetchone() == {"n": 1}


def test_another_person_cannot_read_the_linked_history(sql: Conn, app: App, second_app: App) -> None:
    """RLS with real tokens: the second person sees only their own profile, none of the first's messages."""
    phone = "14155557008"
    sql.execute(
        "select * from public.receive_whatsapp_message('SM' || md5('mine'), %s, 'mine', null)",
        (f"whatsapp:+{phone}",),
    )
    app.sign_up(an_email(), PASSWORD)
    app.add_phone(phone, otp_for(phone))
    second_app.sign_up(an_email(), PASSWORD)
    assert app.query("select body from public.whatsapp_messages") == [{"body": "mine"}]
    assert second_app.query("select body from public.whatsapp_messages") == []
    assert len(second_app.query("select id from public.users")) == 1
