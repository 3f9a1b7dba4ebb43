"""The outbox in SQL: send_whatsapp_message's rules (window, templates, consent, idempotency), who may read what."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from actors import Database, Postgrest, SupabaseAuth
from outbox_support import (
    PHONE,
    TEMPLATE,
    age_inbound_messages,
    race,
    receive,
    send_sql,
    wait_until,
    waiting_on_a_lock,
)

Conn = psycopg.Connection[dict[str, Any]]


def sqlstate_of(postgrest: Postgrest, user_id: Any, key: str, **kwargs: Any) -> tuple[str | None, str]:
    with pytest.raises(psycopg.Error) as caught, postgrest.as_service() as cur:
        send_sql(cur, user_id, key, **kwargs)
    return caught.value.sqlstate, str(caught.value)


def count(sql: Conn, query: str, *params: Any) -> int:
    row = sql.execute(query, params).fetchone()
    assert row is not None
    return int(row["n"])


# the window ------------------------------------------------------------------


def test_text_within_the_window_is_queued_with_the_resolved_address(sql: Conn, postgrest: Postgrest) -> None:
    """A person who wrote an hour ago can be sent free-form text; the row holds their WhatsApp address."""
    ada = receive(sql, "SMin1")["user_id"]
    age_inbound_messages(sql, ada, 1)
    with postgrest.as_service() as cur:
        row = send_sql(cur, ada, "order-1", body="Your order shipped")
    assert (row["user_id"], row["to_address"], row["status"], row["body"], row["attempts"]) == (
        ada,
        f"whatsapp:{PHONE}",
        "queued",
        "Your order shipped",
        0,
    )


def test_text_outside_the_window_needs_a_template(sql: Conn, postgrest: Postgrest) -> None:
    """25 hours after the person's last message free-form text is refused with PT428, saying a template is needed."""
    ada = receive(sql, "SMold")["user_id"]
    age_inbound_messages(sql, ada, 25)
    state, text = sqlstate_of(postgrest, ada, "late", body="Hi again")
    assert state == "PT428"
    assert "a template (content_sid) is needed" in text and text.startswith("body:")
    assert count(sql, "select count(*) as n from public.outbound_messages") == 0


def test_a_template_goes_at_any_time(sql: Conn, postgrest: Postgrest) -> None:
    """Outside the window a Content template with variables is queued."""
    ada = receive(sql, "SMold2")["user_id"]
    age_inbound_messages(sql, ada, 72)
    with postgrest.as_service() as cur:
        row = send_sql(cur, ada, "reminder", content_sid=TEMPLATE, variables='{"1": "Ada"}')
    assert (row["status"], row["content_sid"], row["content_variables"], row["body"]) == (
        "queued",
        TEMPLATE,
        {"1": "Ada"},
        None,
    )


def test_only_the_persons_messages_open_the_window(sql: Conn, postgrest: Postgrest) -> None:
    """Our own template sent a minute ago does not reopen the window for text."""
    ada = receive(sql, "SMold3")["user_id"]
    age_inbound_messages(sql, ada, 30)
    with postgrest.as_service() as cur:
        send_sql(cur, ada, "t1", content_sid=TEMPLATE)
    state, _ = sqlstate_of(postgrest, ada, "t2", body="and now text?")
    assert state == "PT428"


def test_the_readers_tell_an_app_what_it_may_send(sql: Conn, postgrest: Postgrest) -> None:
    """whatsapp_window_open and whatsapp_messaging_state agree with what send_whatsapp_message accepts."""
    ada = receive(sql, "SMr1")["user_id"]
    bob = receive(sql, "SMr2", phone="+14155550999")["user_id"]
    age_inbound_messages(sql, bob, 30)
    with postgrest.as_service() as cur:
        opened = {
            u: cur.execute("select public.whatsapp_window_open(%s) as open", (u,)).fetchone()["open"]
            for u in (ada, bob)
        }
        state = cur.execute(
            "select to_address, opted_out, window_open, can_send_text, can_send_template"
            " from public.whatsapp_messaging_state(%s)",
            (bob,),
        ).fetchone()
    assert opened == {ada: True, bob: False}
    assert state == {
        "to_address": "whatsapp:+14155550999",
        "opted_out": False,
        "window_open": False,
        "can_send_text": False,
        "can_send_template": True,
    }


# refusals ----------------------------------------------------------------------


def test_an_unknown_profile_is_refused_with_pt404(postgrest: Postgrest) -> None:
    """A profile id that does not exist gives PT404 naming user_id."""
    missing = uuid.uuid4()
    state, text = sqlstate_of(postgrest, missing, "k", content_sid=TEMPLATE)
    assert (state, f"user_id {missing} has no profile" in text) == ("PT404", True)


def test_a_profile_without_a_number_is_refused_with_pt422(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """An app-only profile has no WhatsApp address: PT422."""
    auth_id = supabase_auth.sign_up("ada@example.com")
    profile = sql.execute("select id from public.users where auth_id = %s", (auth_id,)).fetchone()
    assert profile is not None
    state, text = sqlstate_of(postgrest, profile["id"], "k", content_sid=TEMPLATE)
    assert (state, "has no WhatsApp number" in text) == ("PT422", True)


def test_an_opted_out_person_is_refused_with_pt403_even_a_template(sql: Conn, postgrest: Postgrest) -> None:
    """After an opt-out nothing is queued, template or text."""
    ada = receive(sql, "SMo1")["user_id"]
    sql.execute("select private.set_whatsapp_consent(%s, 'opt_out', 'STOP')", (ada,))
    assert sqlstate_of(postgrest, ada, "a", body="hi")[0] == "PT403"
    assert sqlstate_of(postgrest, ada, "b", content_sid=TEMPLATE)[0] == "PT403"
    assert count(sql, "select count(*) as n from public.outbound_messages") == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"body": "hi", "content_sid": TEMPLATE}, "exactly one of body and content_sid"),
        ({}, "exactly one of body and content_sid"),
        ({"body": "   "}, "body is empty"),
        ({"content_sid": "HXnope"}, "content_sid 'HXnope'"),
        ({"body": "hi", "variables": '{"1": "x"}'}, "content_variables"),
        ({"content_sid": TEMPLATE, "variables": "[1]"}, "content_variables"),
    ],
    ids=[
        "text and a template at once",
        "neither text nor a template",
        "blank text",
        "a content sid of the wrong shape",
        "variables without a template",
        "variables that are not an object",
    ],
)
def test_bad_input_is_refused_with_22023_naming_the_field(
    sql: Conn, postgrest: Postgrest, kwargs: dict[str, Any], field: str
) -> None:
    """Malformed arguments give 22023 with the field in the message, and nothing is queued."""
    ada = receive(sql, "SMbad")["user_id"]
    state, text = sqlstate_of(postgrest, ada, "k", **kwargs)
    assert (state, field in text) == ("22023", True)
    assert count(sql, "select count(*) as n from public.outbound_messages") == 0


def test_a_blank_idempotency_key_is_refused(sql: Conn, postgrest: Postgrest) -> None:
    """The key is required: 22023 naming idempotency_key."""
    ada = receive(sql, "SMkey")["user_id"]
    state, text = sqlstate_of(postgrest, ada, " ", body="hi")
    assert (state, "idempotency_key" in text) == ("22023", True)


# idempotency ---------------------------------------------------------------------


def test_a_repeated_key_returns_the_first_row(sql: Conn, postgrest: Postgrest) -> None:
    """The same key and message twice gives one row, even after the window closed."""
    ada = receive(sql, "SMi1")["user_id"]
    with postgrest.as_service() as cur:
        first = send_sql(cur, ada, "order-7", body="Shipped")
    age_inbound_messages(sql, ada, 48)
    with postgrest.as_service() as cur:
        again = send_sql(cur, ada, "order-7", body="Shipped")
    assert again["id"] == first["id"]
    assert count(sql, "select count(*) as n from public.outbound_messages") == 1


def test_a_key_reused_for_another_message_is_refused_with_pt409(sql: Conn, postgrest: Postgrest) -> None:
    """A key repeated with a different body is a conflict, not a silent replay."""
    ada = receive(sql, "SMi2")["user_id"]
    with postgrest.as_service() as cur:
        send_sql(cur, ada, "order-8", body="Shipped")
    state, text = sqlstate_of(postgrest, ada, "order-8", body="Cancelled")
    assert (state, "idempotency_key 'order-8'" in text) == ("PT409", True)


def test_the_same_key_for_two_people_is_two_messages(sql: Conn, postgrest: Postgrest) -> None:
    """Keys are unique per profile."""
    ada = receive(sql, "SMp1")["user_id"]
    bob = receive(sql, "SMp2", phone="+14155550999")["user_id"]
    with postgrest.as_service() as cur:
        a = send_sql(cur, ada, "welcome", body="Hi")
        b = send_sql(cur, bob, "welcome", body="Hi")
    assert a["id"] != b["id"]


def test_the_same_key_from_two_connections_at_once_is_one_row(sql: Conn, db: Database) -> None:
    """Two backends queuing one key, released by a barrier (10 rounds), get one row and the same id."""
    ada = receive(sql, "SMc1")["user_id"]
    apis = [Postgrest(db) for _ in range(2)]
    try:
        for round_ in range(10):

            def job(api: Postgrest, key: str = f"race-{round_}") -> Any:
                with api.as_service() as cur:
                    return send_sql(cur, ada, key, body="once")["id"]

            ids = race([lambda api=api: job(api) for api in apis])
            assert ids[0] == ids[1]
    finally:
        for api in apis:
            api.close()
    assert count(sql, "select count(*) as n from public.outbound_messages") == 10


def test_a_send_waiting_on_an_uncommitted_twin_returns_the_twins_row(
    sql: Conn, admin: Conn, db: Database
) -> None:
    """While one transaction holds the key uncommitted, the second waits, then returns the committed row."""
    ada = receive(sql, "SMc2")["user_id"]
    first, second = Postgrest(db), Postgrest(db)
    results: list[Any] = []
    try:
        with first.as_service() as cur:
            mine = send_sql(cur, ada, "held", body="once")
            pid = second._conn.info.backend_pid
            thread = threading.Thread(
                target=lambda: results.append(_send_as_service(second, ada, "held")), daemon=True
            )
            thread.start()
            wait_until(lambda: waiting_on_a_lock(admin, pid))
        thread.join(10)
        assert results and results[0] == mine["id"]
    finally:
        first.close()
        second.close()


def _send_as_service(api: Postgrest, user_id: Any, key: str) -> Any:
    with api.as_service() as cur:
        return send_sql(cur, user_id, key, body="once")["id"]


def test_a_rolled_back_transaction_queues_nothing(sql: Conn, postgrest: Postgrest) -> None:
    """The message commits with the app's writes or not at all."""
    ada = receive(sql, "SMtx")["user_id"]
    with pytest.raises(RuntimeError), postgrest.as_service() as cur:
        send_sql(cur, ada, "tx", body="hi")
        raise RuntimeError("the app's own write failed")
    assert count(sql, "select count(*) as n from public.outbound_messages") == 0


# who may do what ---------------------------------------------------------------


def test_a_signed_in_person_may_not_send(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """send_whatsapp_message is the backend's: an authenticated caller gets 42501."""
    auth_id = supabase_auth.sign_up("ada@example.com")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_user(auth_id) as cur:
        send_sql(cur, uuid.uuid4(), "k", body="hi")


def test_a_person_reads_their_own_outbound_messages_only(
    sql: Conn, postgrest: Postgrest, supabase_auth: SupabaseAuth
) -> None:
    """RLS: Ada's account sees her message, not Bob's; anon sees nothing."""
    ada_auth = supabase_auth.sign_up("ada@example.com")
    supabase_auth.confirm_phone(ada_auth, PHONE[1:])
    ada = sql.execute("select id from public.users where auth_id = %s", (ada_auth,)).fetchone()["id"]
    receive(sql, "SMrls1")
    bob = receive(sql, "SMrls2", phone="+14155550999")["user_id"]
    with postgrest.as_service() as cur:
        mine = send_sql(cur, ada, "a", body="for Ada")
        send_sql(cur, bob, "b", body="for Bob")
    with postgrest.as_user(ada_auth) as cur:
        seen = cur.execute("select id from public.outbound_messages").fetchall()
    assert seen == [{"id": mine["id"]}]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), postgrest.as_anon() as cur:
        cur.execute("select id from public.outbound_messages").fetchall()


# merges and erasure ----------------------------------------------------------------


def test_a_merge_keeps_both_profiles_messages_when_their_keys_collide(
    sql: Conn, postgrest: Postgrest
) -> None:
    """A BSUID-only profile merged into its number's profile brings its 'welcome' along under a suffixed key."""
    bsuid = "US.13491208655302741918"
    by_phone = receive(sql, "SMm1")["user_id"]
    by_bsuid = receive(sql, "SMm2", phone="", bsuid=bsuid)["user_id"]
    sql.execute("update public.users set phone_number = %s where id = %s", ("+14155550777", by_bsuid))
    with postgrest.as_service() as cur:
        send_sql(cur, by_phone, "welcome", body="Hi")
        send_sql(cur, by_bsuid, "welcome", body="Hi")
    sql.execute("update public.users set phone_number = null where id = %s", (by_bsuid,))
    survivor = receive(sql, "SMm3", bsuid=bsuid)["user_id"]
    keys = sql.execute(
        "select user_id, idempotency_key from public.outbound_messages order by idempotency_key"
    ).fetchall()
    assert survivor == by_phone
    assert keys == [
        {"user_id": by_phone, "idempotency_key": "welcome"},
        {"user_id": by_phone, "idempotency_key": f"welcome (merged from {by_bsuid})"},
    ]


def test_an_opt_out_survives_erasure_and_covers_the_numbers_next_profile(
    sql: Conn, postgrest: Postgrest
) -> None:
    """After forget_user the number writes again as a new profile: still opted out, and no number kept in clear."""
    ada = receive(sql, "SMe1")["user_id"]
    sql.execute("select private.set_whatsapp_consent(%s, 'opt_out', 'STOP')", (ada,))
    with postgrest.as_service() as cur:
        cur.execute("select * from public.forget_user(%s)", (ada,)).fetchall()
    again = receive(sql, "SMe2")["user_id"]
    stored = sql.execute("select address_hash::text as h, keyword from public.whatsapp_opt_outs").fetchall()
    assert again != ada
    assert sqlstate_of(postgrest, again, "k", body="hi")[0] == "PT403"
    assert [r["keyword"] for r in stored] == ["STOP"]
    assert all(PHONE[1:] not in r["h"] for r in stored)


def test_an_opt_out_covers_every_equivalent_form_of_the_number(sql: Conn, postgrest: Postgrest) -> None:
    """A Brazilian mobile opted out without the ninth digit is opted out with it too."""
    old_form = receive(sql, "SMbr1", phone="+551187654321")["user_id"]
    sql.execute("select private.set_whatsapp_consent(%s, 'opt_out', 'PARAR')", (old_form,))
    with postgrest.as_service() as cur:
        cur.execute("select * from public.forget_user(%s)", (old_form,)).fetchall()
    new_form = receive(sql, "SMbr2", phone="+5511987654321")["user_id"]
    assert sqlstate_of(postgrest, new_form, "k", body="oi")[0] == "PT403"
