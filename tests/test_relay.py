"""The Twilio webhook relay, served by a real uvicorn on a loopback port, against the real database.

Requests are signed with the twilio library as Twilio signs them; rows are read back as `postgres`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from actors import Database
from relay_support import (
    EMPTY_TWIML,
    PHONE,
    SECONDARY,
    TOKEN,
    WELCOME,
    HookRecorder,
    RelayServer,
    count,
    deadline_poll,
    make_settings,
    post,
    running_relay,
    sign,
    twiml,
)
from twilio.request_validator import RequestValidator

from glue.app import create_app
from glue.gateway import PsycopgGateway
from glue.hooks import Sender
from glue.link_codes import link_reply
from glue.settings import WEBHOOK_PATH
from glue.simulate import inbound_params, message_sid
from glue.twilio_request import InboundMessage, check_signature, parse_form

# --- the signature, checked with Twilio's own example -------------------------------------------


def test_known_good_signature_from_twilio_docs_is_accepted() -> None:
    """Twilio's documented example (token 12345) signs to RSOYDt4T1cUTdK1PDd93/VVr8B8= and we accept it."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    validator = RequestValidator("12345")
    assert validator.compute_signature(url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    form = parse_form(httpx.QueryParams(params).__str__().encode(), "application/x-www-form-urlencoded")
    check_signature([validator], url, form, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_repeated_parameters_all_take_part_in_the_signature() -> None:
    """A form with a repeated key is checked with every value, matching the twilio library's reference value."""
    form = parse_form(b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234", None)
    check_signature(
        [RequestValidator("12345")],
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        form,
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
    )


# --- the happy path ------------------------------------------------------------------------------


def test_valid_message_stores_user_and_message_and_welcomes_the_new_user(
    relay: RelayServer, client: httpx.Client, db: Database, hook: HookRecorder
) -> None:
    """A signed first message creates the user and the message and answers the welcome then the hook's reply."""
    params = inbound_params(
        PHONE,
        "Hello <there> & hi",
        profile_name="Ada 🚀",
        media=[("https://api.twilio.com/m/1", "image/jpeg")],
    )
    response = post(client, relay.url, params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.text == twiml(WELCOME, "echo: Hello &lt;there&gt; &amp; hi")
    with db.connect("postgres") as conn:
        users = conn.execute("select id, phone_number from public.users").fetchall()
        messages = conn.execute(
            "select message_sid, user_id, body, media, profile_name, user_created from public.whatsapp_messages"
        ).fetchall()
    assert [u["phone_number"] for u in users] == [PHONE]
    assert messages == [
        {
            "message_sid": params["MessageSid"],
            "user_id": users[0]["id"],
            "body": "Hello <there> & hi",
            "media": [{"url": "https://api.twilio.com/m/1", "content_type": "image/jpeg"}],
            "profile_name": "Ada 🚀",
            "user_created": True,
        }
    ]
    [(sender, message)] = hook.calls
    assert (sender.user_id, sender.created, sender.phone) == (users[0]["id"], True, f"whatsapp:{PHONE}")
    assert message.message_sid == params["MessageSid"]


def test_a_known_user_gets_no_welcome(relay: RelayServer, client: httpx.Client, db: Database) -> None:
    """The second message from the same phone is stored for the same user and answered without the welcome."""
    assert post(client, relay.url, inbound_params(PHONE, "one")).text == twiml(WELCOME, "echo: one")
    response = post(client, relay.url, inbound_params(PHONE, "two"))
    assert (response.status_code, response.text) == (200, twiml("echo: two"))
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (1, 2)


def test_no_welcome_and_no_hook_answers_an_empty_response(db: Database, client: httpx.Client) -> None:
    """Without a welcome reply or hook configured, the answer is an empty <Response />, never an empty body."""
    with running_relay(db.url("postgres"), welcome_reply=None) as relay:
        response = post(client, relay.url, inbound_params(PHONE, "hi"))
    assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    assert count(db, "whatsapp_messages") == 1


def test_plain_sms_sender_is_answered_and_never_stored(
    relay: RelayServer, client: httpx.Client, db: Database, hook: HookRecorder
) -> None:
    """An SMS to the same number (From without whatsapp:) gets an empty TwiML 200 and touches no profile."""
    assert post(client, relay.url, inbound_params(PHONE, "whatsapp first")).status_code == 200
    sms = inbound_params(PHONE, "sms")
    sms["From"], sms["To"] = PHONE, "+14155238886"
    del sms["WaId"]
    response = post(client, relay.url, sms)
    assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    with db.connect("postgres") as conn:
        bodies = conn.execute("select body from public.whatsapp_messages").fetchall()
    assert bodies == [{"body": "whatsapp first"}]
    assert len(hook.calls) == 1


# --- signatures ----------------------------------------------------------------------------------


def _no_signature(url: str, params: dict[str, str]) -> dict[str, str]:
    return {}


def _wrong_token(url: str, params: dict[str, str]) -> dict[str, str]:
    return sign(url, params, token="not-the-token")


def _other_url(url: str, params: dict[str, str]) -> dict[str, str]:
    return sign(url.replace(WEBHOOK_PATH, "/other/webhook"), params)


def _altered_after_signing(url: str, params: dict[str, str]) -> dict[str, str]:
    headers = sign(url, params)
    params["Body"] = "transfer everything"
    return headers


def _garbage(url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": "not base64 at all"}


@pytest.mark.parametrize(
    "make_headers",
    [_no_signature, _wrong_token, _other_url, _altered_after_signing, _garbage],
    ids=[
        "no signature header",
        "signed with another token",
        "signed for another URL",
        "a parameter altered after signing",
        "garbage in the header",
    ],
)
def test_bad_signature_is_403_and_writes_nothing(
    relay: RelayServer,
    client: httpx.Client,
    db: Database,
    hook: HookRecorder,
    make_headers: Callable[[str, dict[str, str]], dict[str, str]],
) -> None:
    """A request Twilio did not sign as received gets 403 'forbidden', and no user or message is written."""
    params = inbound_params(PHONE, "hi")
    headers = make_headers(relay.url, params)
    response = client.post(relay.url, data=params, headers=headers)
    assert (response.status_code, response.text) == (403, "forbidden")
    assert TOKEN not in response.text
    assert (count(db, "users"), count(db, "whatsapp_messages"), len(hook.calls)) == (0, 0, 0)


def test_secondary_token_is_accepted_during_rotation(db: Database, client: httpx.Client) -> None:
    """With a secondary token configured, requests signed with either token are accepted; a third is not."""
    with running_relay(db.url("postgres"), twilio_auth_token_secondary=SECONDARY) as relay:
        assert post(client, relay.url, inbound_params(PHONE, "a"), token=TOKEN).status_code == 200
        assert post(client, relay.url, inbound_params(PHONE, "b"), token=SECONDARY).status_code == 200
        assert post(client, relay.url, inbound_params(PHONE, "c"), token="x" * 32).status_code == 403
    assert count(db, "whatsapp_messages") == 2


def test_public_base_url_is_what_the_signature_is_checked_against(db: Database, client: httpx.Client) -> None:
    """With PUBLIC_BASE_URL set, a signature for the public https URL passes and one for the internal URL fails."""
    public = "https://relay.example.com/hooks"
    with running_relay(db.url("postgres"), public_base_url=public + "/") as relay:
        params = inbound_params(PHONE, "via proxy")
        ok = client.post(relay.url, data=params, headers=sign(public + WEBHOOK_PATH, params))
        internal = inbound_params(PHONE, "direct")
        refused = client.post(relay.url, data=internal, headers=sign(relay.url, internal))
    assert (ok.status_code, refused.status_code) == (200, 403)


@pytest.mark.parametrize(
    "trusted", [True, False], ids=["forwarded headers trusted", "forwarded headers ignored"]
)
def test_forwarded_headers_are_used_only_when_trusted(
    db: Database, client: httpx.Client, trusted: bool
) -> None:
    """X-Forwarded-Proto/Host rebuild the public URL only when TRUST_FORWARDED_HEADERS is on."""
    with running_relay(db.url("postgres"), trust_forwarded_headers=trusted) as relay:
        params = inbound_params(PHONE, "hi")
        headers = sign("https://wa.example.com" + WEBHOOK_PATH, params)
        headers.update({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "wa.example.com"})
        response = client.post(relay.url, data=params, headers=headers)
    assert response.status_code == (200 if trusted else 403)


@pytest.mark.parametrize(
    ("setting", "field", "value"),
    [
        ("twilio_account_sids", "AccountSid", "AC" + "f" * 32),
        ("twilio_to_numbers", "To", "whatsapp:+15550001111"),
    ],
    ids=["AccountSid not ours", "To not our number"],
)
def test_allow_lists_refuse_other_accounts_and_numbers(
    db: Database, client: httpx.Client, setting: str, field: str, value: str
) -> None:
    """With allow-lists set, a signed message for another AccountSid or To is 403 and stores nothing."""
    allowed = {"twilio_account_sids": ["AC" + "0" * 32], "twilio_to_numbers": ["+14155238886"]}
    with running_relay(db.url("postgres"), **allowed) as relay:
        assert post(client, relay.url, inbound_params(PHONE, "ours")).status_code == 200
        params = inbound_params("+14155550999", "theirs")
        params[field] = value
        assert post(client, relay.url, params).status_code == 403
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (1, 1)


# --- redelivery and races ------------------------------------------------------------------------


def test_redelivery_stores_one_row_repeats_the_welcome_and_runs_the_hook_once(
    relay: RelayServer, client: httpx.Client, db: Database, hook: HookRecorder
) -> None:
    """The same MessageSid delivered three times: one message row, the welcome every time, the hook once."""
    params = inbound_params(PHONE, "first")
    answers = [post(client, relay.url, params) for _ in range(3)]
    assert [(a.status_code, a.text) for a in answers] == [
        (200, twiml(WELCOME, "echo: first")),
        (200, twiml(WELCOME)),
        (200, twiml(WELCOME)),
    ]
    assert (count(db, "users"), count(db, "whatsapp_messages"), len(hook.calls)) == (1, 1, 1)


def test_fifty_concurrent_first_messages_from_one_phone_make_one_user(
    db: Database, client: httpx.Client, hook: HookRecorder
) -> None:
    """Fifty different messages from a new phone, released together, make one user, fifty rows, one welcome."""
    n = 50
    barrier = threading.Barrier(n)
    params = [inbound_params(PHONE, f"m{i}") for i in range(n)]

    def deliver(p: dict[str, str]) -> httpx.Response:
        barrier.wait(timeout=30)
        return post(client, relay.url, p)

    with (
        running_relay(db.url("postgres"), hook, pool_size=20, db_timeout=10.0) as relay,
        concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool,
    ):
        answers = list(pool.map(deliver, params))
    assert [a.status_code for a in answers] == [200] * n
    assert sum(WELCOME in a.text for a in answers) == 1
    assert (count(db, "users"), count(db, "whatsapp_messages"), len(hook.calls)) == (1, n, n)
    assert sum(sender.created for sender, _ in hook.calls) == 1


def test_fifty_concurrent_redeliveries_run_the_hook_once(
    relay: RelayServer, client: httpx.Client, db: Database, hook: HookRecorder
) -> None:
    """Fifty simultaneous deliveries of one MessageSid store it once, all greet, and the hook runs once."""
    n = 50
    barrier = threading.Barrier(n)
    params = inbound_params(PHONE, "dup")

    def deliver(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return post(client, relay.url, params)

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(deliver, range(n)))
    assert [a.status_code for a in answers] == [200] * n
    assert all(WELCOME in a.text for a in answers)
    assert sum("echo: dup" in a.text for a in answers) == 1
    assert (count(db, "users"), count(db, "whatsapp_messages"), len(hook.calls)) == (1, 1, 1)


# --- bad requests --------------------------------------------------------------------------------


def _without(name: str) -> Callable[[dict[str, str]], None]:
    return lambda p: p.pop(name)


def _set(name: str, value: str) -> Callable[[dict[str, str]], None]:
    return lambda p: p.__setitem__(name, value)


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (_without("From"), "From is required"),
        (_without("MessageSid"), "MessageSid is required"),
        (_set("From", ""), "From is required"),
        (_set("MessageSid", "  "), "MessageSid is required"),
        (_set("NumMedia", "two"), "NumMedia is not a small whole number"),
        (_set("NumMedia", "1"), "MediaUrl0 is required"),
        (
            _set("From", "whatsapp:hello"),
            "From 'whatsapp:hello' is not a WhatsApp sender: Twilio writes whatsapp:+<number> or whatsapp:<BSUID>",
        ),
    ],
    ids=[
        "no From",
        "no MessageSid",
        "empty From",
        "blank MessageSid",
        "NumMedia not a number",
        "NumMedia without MediaUrl0",
        "From in a shape Twilio never writes",
    ],
)
def test_malformed_form_is_400_and_stores_nothing(
    relay: RelayServer,
    client: httpx.Client,
    db: Database,
    alter: Callable[[dict[str, str]], None],
    message: str,
) -> None:
    """A signed form that is not a complete inbound message gets 400 with a short message and stores nothing."""
    params = inbound_params(PHONE, "hi")
    alter(params)
    response = post(client, relay.url, params)
    assert (response.status_code, response.text) == (400, message)
    assert response.headers["content-type"].startswith("text/plain")
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (0, 0)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("From", "whatsapp:+0123456789", "phone"),
        ("From", "whatsapp:+1", "phone"),
        ("MessageSid", "SM-not-a-sid!", "message_sid"),
    ],
    ids=["From without a country code", "From too short", "MessageSid has bad characters"],
)
def test_a_value_the_database_refuses_is_400_naming_the_field(
    relay: RelayServer, client: httpx.Client, db: Database, field: str, value: str, named: str
) -> None:
    """SQLSTATE 22023 from the RPC becomes 400 with the database's message, which names the field."""
    params = inbound_params(value if field == "From" else PHONE, "hi")
    params[field] = value
    response = post(client, relay.url, params)
    assert response.status_code == 400
    assert named in response.text
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (0, 0)


def test_a_body_that_is_not_a_form_is_415(relay: RelayServer, client: httpx.Client, db: Database) -> None:
    """A JSON body is not an inbound message webhook: 415, nothing stored."""
    response = client.post(relay.url, json={"From": PHONE}, headers={"X-Twilio-Signature": "x"})
    assert (response.status_code, response.text) == (415, "expected application/x-www-form-urlencoded")
    assert count(db, "whatsapp_messages") == 0


def test_oversized_body_is_413(db: Database, client: httpx.Client) -> None:
    """A body over MAX_BODY_BYTES is refused with 413, by Content-Length or while streaming, and stores nothing."""
    with running_relay(db.url("postgres"), max_body_bytes=4096) as relay:
        params = inbound_params(PHONE, "x" * 5000)
        declared = post(client, relay.url, params)

        def chunks() -> Iterator[bytes]:
            yield httpx.QueryParams(params).__str__().encode()

        streamed = client.post(
            relay.url,
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **sign(relay.url, params)},
        )
        just_under = post(client, relay.url, inbound_params(PHONE, "x" * 3000))
    assert (declared.status_code, declared.text) == (413, "request body too large")
    assert (streamed.status_code, streamed.text) == (413, "request body too large")
    assert just_under.status_code == 200
    assert count(db, "whatsapp_messages") == 1


def test_get_on_the_webhook_is_405(relay: RelayServer, client: httpx.Client) -> None:
    """Only POST is routed to the webhook."""
    assert client.get(relay.url).status_code == 405


# --- hooks ---------------------------------------------------------------------------------------


def test_a_failing_hook_still_answers_200_with_the_welcome(db: Database, client: httpx.Client) -> None:
    """The message is stored before the hook runs, so a hook that raises costs only its own reply."""

    def broken(sender: Sender, message: InboundMessage) -> str | None:
        raise RuntimeError("bug in the application")

    with running_relay(db.url("postgres"), broken) as relay:
        response = post(client, relay.url, inbound_params(PHONE, "hi"))
    assert (response.status_code, response.text) == (200, twiml(WELCOME))
    assert count(db, "whatsapp_messages") == 1


def test_a_late_hook_is_abandoned_after_hook_timeout(db: Database, client: httpx.Client) -> None:
    """An async hook slower than HOOK_TIMEOUT is cut off and the answer goes without its reply."""
    import asyncio

    async def slow(sender: Sender, message: InboundMessage) -> str | None:
        await asyncio.sleep(30)
        return "too late"

    with running_relay(db.url("postgres"), slow, hook_timeout=0.2) as relay:
        started = time.monotonic()
        response = post(client, relay.url, inbound_params(PHONE, "hi"))
        elapsed = time.monotonic() - started
    assert (response.status_code, response.text) == (200, twiml(WELCOME))
    assert elapsed < 5


def test_reply_hook_is_loaded_from_settings(db: Database, client: httpx.Client) -> None:
    """REPLY_HOOK='glue.example_hooks:echo' is imported and answers the message."""
    with running_relay(db.url("postgres"), reply_hook="glue.example_hooks:echo", welcome_reply=None) as relay:
        response = post(client, relay.url, inbound_params(PHONE, "ping"))
    assert (response.status_code, response.text) == (200, twiml("You said: ping"))


# --- health, readiness, logs ---------------------------------------------------------------------


def test_healthz_and_readyz_answer_with_the_database_up(relay: RelayServer, client: httpx.Client) -> None:
    """/healthz says the process is alive and /readyz that the database answers and the RPC is there."""
    health = client.get(relay.base + "/healthz")
    ready = client.get(relay.base + "/readyz")
    assert (health.status_code, health.text) == (200, "ok")
    assert (ready.status_code, ready.text) == (200, "ready")


def test_readyz_is_503_when_the_migrations_are_missing(bare_db: Database, client: httpx.Client) -> None:
    """On a database without the migrations /readyz is 503 and names the missing RPC; /healthz stays 200."""
    with running_relay(bare_db.url("postgres")) as relay:
        ready = client.get(relay.base + "/readyz")
        health = client.get(relay.base + "/healthz")
    assert ready.status_code == 503
    assert "public.receive_whatsapp_message(text, text, text, text, jsonb, text) is missing" in ready.text
    assert health.status_code == 200


def test_each_request_logs_one_json_line_without_body_or_token(
    relay: RelayServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Every request logs exactly one structured line with the outcome; no body text, phone or token."""
    from glue.logs import JsonFormatter

    secret_body = "my secret plan"
    params = inbound_params(PHONE, secret_body)
    with caplog.at_level(logging.INFO, logger="glue.relay"):
        post(client, relay.url, params)
        client.post(relay.url, data=params)  # unsigned
        deadline_poll(lambda: len(caplog.records) >= 2, what="two log lines")
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "glue.relay"]
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert {
        k: first[k] for k in ("status", "message_sid", "user_created", "duplicate", "method", "path")
    } == {
        "status": 200,
        "message_sid": params["MessageSid"],
        "user_created": True,
        "duplicate": False,
        "method": "POST",
        "path": WEBHOOK_PATH,
    }
    assert isinstance(first["ms"], float) and "user_id" in first and first["hook"] == "replied"
    assert (second["status"], second["reason"]) == (403, "bad_signature")
    for line in lines:
        assert secret_body not in line and TOKEN not in line and PHONE not in line


# --- the pool path through Supabase's transaction pooler -----------------------------------------


def test_psycopg_pool_connections_never_prepare_statements(db: Database) -> None:
    """The pool's connections have prepare_threshold=None, as Supavisor's transaction mode needs."""
    import asyncio

    async def probe() -> tuple[Any, Any]:
        gateway = PsycopgGateway(db.url("postgres"), pool_size=2, timeout=5)
        await gateway.open()
        try:
            for _ in range(8):  # more than psycopg's default threshold of 5
                await gateway.receive(
                    InboundMessage(message_sid=message_sid(), sender=f"whatsapp:{PHONE}", body="x")
                )
            async with gateway.pool.connection() as conn:
                cur = await conn.execute("select count(*) from pg_prepared_statements")
                row = await cur.fetchone()
                return conn.prepare_threshold, row[0] if row else None
        finally:
            await gateway.close()

    assert asyncio.run(probe()) == (None, 0)


def test_supabase_rpc_path_against_a_real_stack(client: httpx.Client) -> None:
    """With SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY set, the rpc() gateway stores a message end to end."""
    import os

    from glue.gateway import SupabaseGateway

    url, key = os.environ.get("SUPABASE_URL"), os.environ.get("SUPABASE_SERVICE_ROLE_KEY")
    if not url or not key:
        pytest.skip("SUPABASE_URL/SUPABASE_SERVICE_ROLE_KEY not set: no Supabase stack to run rpc() against")
    phone = "+1415555" + str(int(time.time() * 1000))[-4:]
    with RelayServer(create_app(make_settings(), SupabaseGateway(url, key, timeout=10))) as relay:
        assert client.get(relay.base + "/readyz").text == "ready"
        params = inbound_params(phone, "via supabase-py")
        first = post(client, relay.url, params)
        again = post(client, relay.url, params)
        bad = post(client, relay.url, {**params, "From": "whatsapp:nope", "MessageSid": message_sid()})
    assert (first.status_code, first.text) == (200, twiml(WELCOME))
    assert (again.status_code, again.text) == (200, twiml(WELCOME))
    assert bad.status_code == 400


# --- the database going away and coming back -----------------------------------------------------


def test_database_stopped_is_503_and_started_again_is_200_without_restarting_the_relay(
    client: httpx.Client,
) -> None:
    """With its own server stopped the relay answers 503 + Retry-After; once started again, 200 for the retry."""
    from glue.devdb import start_local_platform

    server = start_local_platform(seed=False)
    try:
        with running_relay(server.url("postgres"), db_timeout=2.0) as relay:
            assert post(client, relay.url, inbound_params(PHONE, "before")).status_code == 200
            server.stop()
            params = inbound_params(PHONE, "during")
            down = post(client, relay.url, params)
            not_ready = client.get(relay.base + "/readyz")
            assert (down.status_code, down.headers.get("retry-after"), down.text) == (
                503,
                "7",
                "database unavailable",
            )
            assert not_ready.status_code == 503
            server.start()
            answers: list[httpx.Response] = []

            def retried() -> bool:
                answers.append(post(client, relay.url, params))
                return answers[-1].status_code == 200

            deadline_poll(retried, timeout=30, what="the relay to reach the restarted database")
            assert answers[-1].text == EMPTY_TWIML  # the user existed before: no welcome
            assert client.get(relay.base + "/readyz").status_code == 200
        with psycopg.connect(server.url("postgres")) as conn:
            rows = conn.execute("select body from public.whatsapp_messages order by received_at").fetchall()
        assert rows == [("before",), ("during",)]
    finally:
        server.destroy()


def test_a_database_slower_than_the_timeout_is_503_and_the_retry_succeeds(
    db: Database, client: httpx.Client
) -> None:
    """While the messages table is locked the RPC outlasts DB_TIMEOUT: 503; after the lock, the retry is 200."""
    with (
        running_relay(db.url("postgres"), db_timeout=0.5) as relay,
        db.connect("postgres", autocommit=False) as locker,
    ):
        locker.execute("lock table public.whatsapp_messages in access exclusive mode")
        params = inbound_params(PHONE, "slow")
        started = time.monotonic()
        slow = post(client, relay.url, params)
        elapsed = time.monotonic() - started
        locker.rollback()
        retry = post(client, relay.url, params)
    assert (slow.status_code, slow.headers.get("retry-after")) == (503, "7")
    assert elapsed < 3
    assert (retry.status_code, retry.text) == (200, twiml(WELCOME))
    assert count(db, "whatsapp_messages") == 1


def test_supabase_rpc_path_with_the_stack_down_is_503(client: httpx.Client) -> None:
    """The rpc() gateway maps an unreachable SUPABASE_URL to 503 + Retry-After, and /readyz to 503."""
    from glue.devdb.server import free_port
    from glue.gateway import SupabaseGateway

    gateway = SupabaseGateway(f"http://127.0.0.1:{free_port()}", "service-role-key", timeout=2)
    with RelayServer(create_app(make_settings(), gateway)) as relay:
        down = post(client, relay.url, inbound_params(PHONE, "hi"))
        ready = client.get(relay.base + "/readyz")
    assert (down.status_code, down.headers.get("retry-after"), down.text) == (
        503,
        "7",
        "database unavailable",
    )
    assert ready.status_code == 503


def test_a_link_code_is_answered_by_the_relay_and_never_reaches_the_hook(
    relay: RelayServer, client: httpx.Client, db: Database, hook: HookRecorder
) -> None:
    """A link code and its YES get the link replies; the hook sees only the ordinary message before them."""
    assert post(client, relay.url, inbound_params(PHONE, "hello")).status_code == 200
    with psycopg.connect(db.url("postgres"), autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (instance_id, id, aud, role, email, email_confirmed_at, created_at, updated_at)"
            " values ('00000000-0000-0000-0000-000000000000', 'a0000000-0000-0000-0000-00000000000a',"
            " 'authenticated', 'authenticated', 'ada@example.com', now(), now(), now())"
        )
        conn.execute(
            "insert into private.whatsapp_link_codes (auth_id, code_hash, expires_at) values"
            " ('a0000000-0000-0000-0000-00000000000a', extensions.digest('LINK-7KQ2MX', 'sha256'),"
            " now() + interval '10 minutes')"
        )
    held = post(client, relay.url, inbound_params(PHONE, "link-7kq2mx"))
    linked = post(client, relay.url, inbound_params(PHONE, "yes"))
    assert (held.status_code, held.text) == (200, twiml(link_reply("code_held", "a***@example.com")))
    assert (linked.status_code, linked.text) == (200, twiml(link_reply("linked", "a***@example.com")))
    assert [message.body for _, message in hook.calls] == ["hello"]
