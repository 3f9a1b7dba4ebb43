"""Reliability of the relay and the database together: load with a database restart, redelivery storms,
two replicas, fuzzed and hostile input, connection exhaustion and memory.

Everything runs against a real uvicorn and a real PostgreSQL; requests are signed with the twilio library.
The figures each test prints (`pytest -s tests/test_reliability.py`) are the ones in docs/reliability.md's table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import psycopg
from actors import Database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_support import (
    PHONE,
    TOKEN,
    WELCOME,
    HookRecorder,
    RelayServer,
    count,
    deadline_poll,
    post,
    running_relay,
    sign,
)
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from glue.devdb import start_local_platform
from glue.devdb.server import free_port
from glue.settings import WEBHOOK_PATH, Settings
from glue.simulate import inbound_params, message_sid
from glue.twilio_request import NOT_XML

TWILIO_TIMEOUT = 15.0  # Twilio waits this long for an answer


def phone(n: int) -> str:
    """The n-th of 10,000 distinct valid test phones."""
    return f"+1415555{n:04d}"


@dataclass(frozen=True)
class Delivery:
    """One webhook request and how it was answered (status None: no HTTP answer at all)."""

    sid: str
    sent: float
    done: float
    status: int | None
    text: str


async def deliver(client: httpx.AsyncClient, url: str, params: dict[str, str]) -> Delivery:
    """POST one signed webhook, as Twilio would, and record the outcome."""
    sent = time.monotonic()
    try:
        response = await client.post(url, data=params, headers=sign(url, params))
    except httpx.TransportError as error:
        return Delivery(params["MessageSid"], sent, time.monotonic(), None, repr(error))
    return Delivery(params["MessageSid"], sent, time.monotonic(), response.status_code, response.text)


def async_client(concurrency: int = 200) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(timeout=TWILIO_TIMEOUT, limits=limits)


async def deliver_all(url: str, batch: list[dict[str, str]], concurrency: int) -> list[Delivery]:
    """Deliver every form in `batch` with at most `concurrency` requests in flight, in the given order."""
    gate = asyncio.Semaphore(concurrency)
    async with async_client(concurrency) as client:

        async def one(params: dict[str, str]) -> Delivery:
            async with gate:
                return await deliver(client, url, params)

        return await asyncio.gather(*(one(p) for p in batch))


def stored_sids(url: str) -> Counter[str]:
    """How many rows each MessageSid has in public.whatsapp_messages."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("select message_sid from public.whatsapp_messages").fetchall()
    return Counter(row[0] for row in rows)


# --- 1. steady load while the database restarts ---------------------------------------------------

RATE = 40  # webhooks per second
DURATION = 20.0  # seconds of load
DOWN_AT, UP_AT = 6.0, 10.0  # the database is stopped, then started again, at these offsets


def test_steady_load_survives_a_database_restart_without_losing_or_inventing_a_message() -> None:
    """At 40 webhooks/s for 20 s with the database down for 4 s: every 200 is stored once, 200s resume within 2 s."""
    server = start_local_platform(seed=False)
    try:
        with running_relay(server.url("postgres")) as relay:
            deliveries, back_at = _load_with_restart(relay.url, server)
            stored = stored_sids(server.url("postgres"))
            answered = Counter(d.status for d in deliveries)
            ok = {d.sid for d in deliveries if d.status == 200}
            first_ok_after = min(d.done for d in deliveries if d.status == 200 and d.done >= back_at)
            late_failures = [d for d in deliveries if d.sent >= back_at + 2.0 and d.status != 200]
            # Twilio retries what was not answered 200; after that nothing may be missing.
            retried = asyncio.run(
                deliver_all(relay.url, [_load_params(d.sid) for d in deliveries if d.status != 200], 20)
            )
            final = stored_sids(server.url("postgres"))
    finally:
        server.destroy()
    sent = {d.sid for d in deliveries}
    print(
        f"\nload: {len(deliveries)} webhooks at {RATE}/s for {DURATION:.0f}s, database down"
        f" {UP_AT - DOWN_AT:.0f}s; answers {dict(sorted(answered.items(), key=str))};"
        f" stored {sum(stored.values())} ({len(stored.keys() - ok)} stored without a 200);"
        f" first 200 {first_ok_after - back_at:.2f}s after the database was back;"
        f" after Twilio's retry {sum(final.values())} stored, {sum(n - 1 for n in final.values())} duplicates,"
        f" {len(sent - final.keys())} lost"
    )
    assert len(deliveries) == RATE * DURATION
    assert set(answered) <= {200, 503}, [d for d in deliveries if d.status not in {200, 503}]
    assert ok <= stored.keys(), "a 200 was given for a message that is not stored"
    assert set(stored.values()) == {1}
    assert first_ok_after - back_at < 2.0
    assert late_failures == []
    assert answered[503] > 0, "the restart caused no failure: the fault was not injected"
    assert [d.status for d in retried] == [200] * len(retried)
    assert final == Counter(sent)


def _load_params(sid: str) -> dict[str, str]:
    return inbound_params(phone(int(sid[-4:], 16) % 500), f"load {sid}", sid=sid)


def _load_with_restart(url: str, server: Any) -> tuple[list[Delivery], float]:
    """Send RATE webhooks a second for DURATION seconds; stop the database at DOWN_AT and start it at UP_AT.

    The load runs in a thread; the database is stopped and started from this (the main) thread, because
    the postmaster is tied to the thread that started it (PR_SET_PDEATHSIG) and must outlive the run.
    """
    result: list[list[Delivery]] = []
    started = time.monotonic()

    async def load() -> None:
        async with async_client(400) as client:
            tasks = []
            for i in range(int(RATE * DURATION)):
                await asyncio.sleep(max(0.0, started + i / RATE - time.monotonic()))
                tasks.append(asyncio.create_task(deliver(client, url, _load_params(message_sid()))))
            result.append(list(await asyncio.gather(*tasks)))

    loader = threading.Thread(target=asyncio.run, args=(load(),))
    loader.start()
    try:
        time.sleep(max(0.0, started + DOWN_AT - time.monotonic()))  # the fault's schedule, not a wait
        server.stop()
        time.sleep(max(0.0, started + UP_AT - time.monotonic()))
        server.start()
        back_at = time.monotonic()
    finally:
        loader.join(timeout=DURATION + 2 * TWILIO_TIMEOUT)
    assert not loader.is_alive() and len(result) == 1
    return result[0], back_at


# --- 2. a redelivery storm ------------------------------------------------------------------------

STORM_MESSAGES, STORM_PHONES, STORM_COPIES = 1000, 250, 3


def test_a_redelivery_storm_stores_each_message_once_and_runs_the_hook_once(db: Database) -> None:
    """1,000 messages from 250 phones, each delivered 3 times concurrently in shuffled order: 1,000 rows, 250 users, 1,000 hook calls."""
    rng = random.Random(8)
    messages = [
        inbound_params(phone(i % STORM_PHONES), f"storm {i}", profile_name=f"Sender {i % STORM_PHONES}")
        for i in range(STORM_MESSAGES)
    ]
    batch = [m for m in messages for _ in range(STORM_COPIES)]
    rng.shuffle(batch)
    hook = HookRecorder()
    started = time.monotonic()
    with running_relay(db.url("postgres"), hook) as relay:
        deliveries = asyncio.run(deliver_all(relay.url, batch, concurrency=64))
    elapsed = time.monotonic() - started
    stored = stored_sids(db.url("postgres"))
    with db.connect("postgres") as conn:
        phones = {r["phone_number"] for r in conn.execute("select phone_number from public.users").fetchall()}
    echoes = Counter(d.sid for d in deliveries if "<Message>echo: " in d.text)
    print(
        f"\nstorm: {len(batch)} deliveries of {STORM_MESSAGES} messages in {elapsed:.1f}s;"
        f" answers {dict(Counter(d.status for d in deliveries))}; stored {sum(stored.values())};"
        f" users {len(phones)}; hook calls {len(hook.calls)}"
    )
    assert [d.status for d in deliveries] == [200] * len(batch)
    assert stored == Counter(m["MessageSid"] for m in messages)
    assert phones == {phone(i) for i in range(STORM_PHONES)}
    assert Counter(message.message_sid for _, message in hook.calls) == stored
    assert sum(sender.created for sender, _ in hook.calls) == STORM_PHONES
    assert echoes == stored  # exactly one of each message's three answers carries the hook's reply


# --- 3. two replicas behind a load balancer -------------------------------------------------------

GLUE = str(Path(sys.executable).with_name("glue"))
PUBLIC = "https://relay.example.com"  # the load balancer's URL, which Twilio signs


@contextlib.contextmanager
def glue_serve(database_url: str, log: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`glue serve` as its own process on a free port, logging to `log`; stopped with Ctrl-C on exit."""
    port = free_port()
    # The caller's relay settings (and any .env: cwd is the log's folder) do not leak into the child.
    variables = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    variables.update(
        DATABASE_URL=database_url,
        TWILIO_AUTH_TOKEN=TOKEN,
        WELCOME_REPLY=WELCOME,
        PUBLIC_BASE_URL=PUBLIC,
        **env,
    )
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [GLUE, "serve", "--port", str(port)], cwd=log.parent, env=variables, stdout=sink, stderr=sink
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=5) as client:

            def healthy() -> bool:
                try:
                    return client.get(base + "/readyz").status_code == 200
                except httpx.TransportError:
                    return process.poll() is not None

            deadline_poll(healthy, timeout=30, what="glue serve to be ready")
        assert process.poll() is None, log.read_text()
        yield process, base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request_log(path: Path) -> list[dict[str, Any]]:
    """The relay's JSON request lines for the webhook path."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("path") == WEBHOOK_PATH]


async def deliver_to_replicas(bases: list[str], batch: list[tuple[int, dict[str, str]]]) -> list[Delivery]:
    """Deliver each (replica, form) pair, signed for the public URL as Twilio signs it."""
    gate = asyncio.Semaphore(48)
    async with async_client(48) as client:

        async def one(replica: int, params: dict[str, str]) -> Delivery:
            async with gate:
                sent = time.monotonic()
                response = await client.post(
                    bases[replica] + WEBHOOK_PATH, data=params, headers=sign(PUBLIC + WEBHOOK_PATH, params)
                )
                return Delivery(
                    params["MessageSid"], sent, time.monotonic(), response.status_code, response.text
                )

        return await asyncio.gather(*(one(r, p) for r, p in batch))


def test_two_replicas_receiving_the_same_deliveries_store_each_message_once(
    db: Database, tmp_path: Path
) -> None:
    """Two `glue serve` processes on one database, each given every message (one twice): no duplicate, no error."""
    rng = random.Random(3)
    messages = [inbound_params(phone(i % 100), f"replica {i}") for i in range(400)]
    batch = (
        [(0, m) for m in messages] + [(1, m) for m in messages] + [(rng.randrange(2), m) for m in messages]
    )
    rng.shuffle(batch)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with (
        glue_serve(db.url("postgres"), logs[0], DB_POOL_SIZE="4") as (first, a),
        glue_serve(db.url("postgres"), logs[1], DB_POOL_SIZE="4") as (second, b),
    ):
        deliveries = asyncio.run(deliver_to_replicas([a, b], batch))
    assert (first.returncode, second.returncode) == (0, 0)
    lines = request_log(logs[0]) + request_log(logs[1])
    stored = stored_sids(db.url("postgres"))
    answers = {(d.sid, d.text) for d in deliveries}
    print(
        f"\nreplicas: {len(batch)} deliveries of {len(messages)} messages over 2 processes;"
        f" answers {dict(Counter(d.status for d in deliveries))}; stored {sum(stored.values())};"
        f" first deliveries logged {sum(not line['duplicate'] for line in lines)}"
    )
    assert [d.status for d in deliveries] == [200] * len(batch)
    assert stored == Counter(m["MessageSid"] for m in messages)
    assert count(db, "users") == 100
    assert len(answers) == len(messages)  # every copy of a message got the same answer, whichever replica
    assert (len(lines), Counter(line["status"] for line in lines)) == (len(batch), Counter({200: len(batch)}))
    assert sum(not line["duplicate"] for line in lines) == len(messages)
    assert all(line["level"] == "info" for line in lines)


# --- 4. fuzzed requests ---------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
FUZZ_LIMIT = 4096  # MAX_BODY_BYTES for the fuzzed relay, so bodies over it are cheap to make
FIELDS = [
    "MessageSid",
    "From",
    "To",
    "Body",
    "ProfileName",
    "AccountSid",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "WaId",
    "ExternalUserId",
]
fuzz_values = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="\x00'\";-\\/*%&=+#\n\t ", max_size=20),
    st.sampled_from(
        ["", " ", "whatsapp:+14155550123", "US.13491208655302741918", "SM" + "0" * 32, "1", "-1", "9" * 25]
    ),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "🚀", "\x00", "%"]), st.integers(300, 1500)),
)
fuzz_edits = st.lists(
    st.tuples(
        st.sampled_from(["drop", "set", "repeat", "add"]),
        st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)),
        fuzz_values,
    ),
    max_size=4,
)
content_types = st.sampled_from(
    [
        FORM,
        FORM + "; charset=utf-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        None,
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
    ]
)
signings = st.sampled_from(["valid", "valid", "valid", "none", "garbage", "other token", "huge"])


def apply_edits(pairs: list[tuple[str, str]], edits: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    for action, key, value in edits:
        if action == "drop":
            pairs = [(k, v) for k, v in pairs if k != key]
        elif action == "set":
            pairs = [(k, value if k == key else v) for k, v in pairs]
        elif action == "repeat":
            pairs = [*pairs, *((k, value) for k, v in pairs if k == key)]
        else:
            pairs = [*pairs, (key, value)]
    return pairs


def fuzz_headers(url: str, body: bytes, content_type: str | None, signing: str) -> dict[str, str]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    try:
        form = ImmutableMultiDict(parse_qsl(body.decode(), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        form = ImmutableMultiDict([])
    token = {"valid": TOKEN, "other token": "f" * 32}.get(signing)
    if token is not None:
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url, form)
    elif signing == "garbage":
        headers["X-Twilio-Signature"] = "bm90IGEgc2lnbmF0dXJl"
    elif signing == "huge":
        headers["X-Twilio-Signature"] = "A" * 6000
    return headers


def expected_statuses(body: bytes, content_type: str | None, signing: str) -> set[int]:
    """What the relay must answer, derived from the request alone (the order in glue/app.py)."""
    if len(body) > FUZZ_LIMIT:
        return {413}
    if (content_type or FORM).split(";")[0].strip().lower() != FORM:
        return {415}
    try:
        body.decode()
    except UnicodeDecodeError:
        return {400}
    return {200, 400} if signing == "valid" else {403}


def test_fuzzed_requests_get_only_the_documented_statuses_and_store_only_signed_messages(
    db: Database,
) -> None:
    """Hypothesis-made forms, bytes, content types and signatures get 200/400/403/413/415 as the request dictates, never 500."""
    outcomes: Counter[int] = Counter()
    accepted: dict[str, str] = {}
    with (
        running_relay(db.url("postgres"), max_body_bytes=FUZZ_LIMIT) as relay,
        httpx.Client(timeout=30) as client,
    ):

        @settings(
            max_examples=250,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            phone_number=st.integers(0, 50),
            edits=fuzz_edits,
            raw=st.none() | st.binary(max_size=200),
            content_type=content_types,
            signing=signings,
        )
        def one_request(
            phone_number: int,
            edits: list[tuple[str, str, str]],
            raw: bytes | None,
            content_type: str | None,
            signing: str,
        ) -> None:
            pairs = apply_edits(list(inbound_params(phone(phone_number), "fuzz").items()), edits)
            body = urlencode(pairs).encode() if raw is None else raw
            headers = fuzz_headers(relay.url, body, content_type, signing)
            response = client.post(relay.url, content=body, headers=headers)
            outcomes[response.status_code] += 1
            assert response.status_code in expected_statuses(body, content_type, signing), response.text
            if response.status_code == 200:
                ET.fromstring(response.text)
                form = ImmutableMultiDict(parse_qsl(body.decode(), keep_blank_values=True))
                if form["From"].strip().startswith("whatsapp:"):  # anything else is an SMS: never stored
                    accepted.setdefault(form["MessageSid"].strip(), form.get("Body", ""))

        one_request()
    with db.connect("postgres") as conn:
        rows = conn.execute("select message_sid, body from public.whatsapp_messages").fetchall()
    print(
        f"\nfuzz: {sum(outcomes.values())} requests; answers {dict(sorted(outcomes.items()))}; stored {len(rows)}"
    )
    assert {r["message_sid"]: r["body"] for r in rows} == accepted
    assert outcomes[200] > 0 and outcomes[400] > 0 and outcomes[403] > 0


def test_nul_characters_in_a_signed_form_are_400_and_not_stored(db: Database) -> None:
    """A validly signed message with a NUL in Body, ProfileName or From is refused with 400 naming the field."""
    with running_relay(db.url("postgres")) as relay, httpx.Client(timeout=30) as client:
        answers = []
        for field, value in [
            ("Body", "a\x00b"),
            ("ProfileName", "Ada\x00"),
            ("From", "whatsapp:+1415555\x000100"),
        ]:
            params = {**inbound_params(PHONE, "hi"), field: value}
            response = client.post(relay.url, data=params, headers=sign(relay.url, params))
            answers.append((response.status_code, response.text))
    assert answers == [
        (400, "Body contains a NUL character"),
        (400, "ProfileName contains a NUL character"),
        (400, "From contains a NUL character"),
    ]
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (0, 0)


# --- 5. hostile values ----------------------------------------------------------------------------

HOSTILE = [
    "'; drop table public.users; --",
    "Robert'); delete from public.whatsapp_messages; --",
    '" or "1"="1',
    "1; select pg_sleep(10)",
    "/* comment */ select 1 -- trailing",
    "$$; select 1; $$",
    "back\\slash \\' \\\\ \\x00 \\n",
    "%00 %27 %22 + & =",
    "<Message>injected</Message></Response><Response>",
    "]]><!-- <![CDATA[ x ]]> -->",
    "&amp; &lt;script&gt;alert(1)&lt;/script&gt; &#0;",
    "\u202eevil\u202c \u200b\ufeff",
    "e\u0301 \U0001f469\u200d\U0001f469\u200d\U0001f467 \u05e9\u05dc\u05d5\u05dd",
    "\x1b[31mred\x1b[0m \x07bell \x0bvt",
    "\U0001f680" * 4000,
]
HOSTILE_SENDERS = [
    "whatsapp:+14155550123'; drop table public.users; --",
    "whatsapp:+1 415 555 0123 -- x",
    "whatsapp:' or '1'='1",
    "whatsapp:+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663",
    "whatsapp:+" + "9" * 5000,
    "whatsapp:US.'; drop table public.users; --",
]


def test_hostile_bodies_and_names_are_stored_verbatim_and_echoed_in_well_formed_twiml(db: Database) -> None:
    """Quotes, SQL and comment markers, backslashes, XML, control and long unicode come back verbatim from the database and in valid TwiML."""
    hook = HookRecorder()
    sent: dict[str, str] = {}
    with running_relay(db.url("postgres"), hook) as relay, httpx.Client(timeout=30) as client:
        for i, value in enumerate(HOSTILE):
            name = value[:1000]
            params = inbound_params(phone(i), value, profile_name=name)
            response = client.post(relay.url, data=params, headers=sign(relay.url, params))
            assert response.status_code == 200, (value, response.text)
            root = ET.fromstring(response.text)
            readable = NOT_XML.sub("", value)
            assert (root.tag, [(m.tag, m.text) for m in root]) == (
                "Response",
                [("Message", WELCOME), ("Message", f"echo: {readable}")],
            )
            sent[params["MessageSid"]] = value
        refused = []
        for i, sender in enumerate(HOSTILE_SENDERS):
            params = {**inbound_params(phone(100 + i), "hostile sender"), "From": sender}
            refused.append(client.post(relay.url, data=params, headers=sign(relay.url, params)).status_code)
    with db.connect("postgres") as conn:
        rows = conn.execute(
            "select m.message_sid, m.body, m.profile_name, u.full_name"
            " from public.whatsapp_messages as m join public.users as u on u.id = m.user_id"
        ).fetchall()
    assert {r["message_sid"]: r["body"] for r in rows} == sent
    assert all(r["profile_name"] == r["full_name"] == sent[r["message_sid"]][:1000].strip() for r in rows)
    assert refused == [400] * len(HOSTILE_SENDERS)
    assert (count(db, "users"), count(db, "whatsapp_messages"), len(hook.calls)) == (len(HOSTILE),) * 3


# --- 7. connection exhaustion and memory ----------------------------------------------------------

CROWD = 40  # concurrent webhooks, against a pool of 2 connections


def lock_waiters(db: Database) -> int:
    """Sessions of this database waiting on a lock (the relay's pool connections, behind the locker)."""
    with db.connect("postgres") as conn:
        row = conn.execute(
            "select count(*) as n from pg_stat_activity"
            " where datname = current_database() and wait_event_type = 'Lock'"
        ).fetchone()
    assert row is not None
    return int(row["n"])


def crowd_behind_a_lock(
    db: Database, relay: RelayServer, client: httpx.Client, release_early: bool
) -> tuple[list[httpx.Response], httpx.Response, float]:
    """CROWD webhooks at once while the messages table is locked; /healthz asked while they wait."""
    batch = [inbound_params(phone(i), f"crowd {i}") for i in range(CROWD)]
    with (
        db.connect("postgres", autocommit=False) as locker,
        concurrent.futures.ThreadPoolExecutor(max_workers=CROWD) as pool,
    ):
        locker.execute("lock table public.whatsapp_messages in access exclusive mode")
        started = time.monotonic()
        futures = [pool.submit(post, client, relay.url, params) for params in batch]
        deadline_poll(lambda: lock_waiters(db) == 2, what="both pool connections to wait on the lock")
        health = client.get(relay.base + "/healthz", timeout=2)
        if release_early:
            assert not any(f.done() for f in futures)
            locker.rollback()
        answers = [f.result(timeout=TWILIO_TIMEOUT) for f in futures]
        elapsed = time.monotonic() - started
    return answers, health, elapsed


def test_more_webhooks_than_pool_connections_queue_and_all_complete(db: Database) -> None:
    """40 webhooks on a pool of 2 behind a locked table queue without blocking /healthz, and all get 200 once it is free."""
    with (
        running_relay(db.url("postgres"), pool_size=2, db_timeout=10.0) as relay,
        httpx.Client(timeout=30) as client,
    ):
        answers, health, elapsed = crowd_behind_a_lock(db, relay, client, release_early=True)
    print(
        f"\nexhaustion: {CROWD} webhooks on 2 connections: {dict(Counter(a.status_code for a in answers))} in {elapsed:.1f}s"
    )
    assert (health.status_code, health.text) == (200, "ok")
    assert [a.status_code for a in answers] == [200] * CROWD
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (CROWD, CROWD)


def test_webhooks_waiting_longer_than_db_timeout_get_503_and_their_retry_200(db: Database) -> None:
    """With the table locked past DB_TIMEOUT, 40 queued webhooks all get 503 within the timeout; retried later, all 200."""
    with (
        running_relay(db.url("postgres"), pool_size=2, db_timeout=1.0) as relay,
        httpx.Client(timeout=30) as client,
    ):
        answers, health, elapsed = crowd_behind_a_lock(db, relay, client, release_early=False)
        retried = [
            post(client, relay.url, params)
            for params in (dict(parse_qsl(a.request.content.decode())) for a in answers)
        ]
    print(
        f"\ntimeout: {CROWD} webhooks on 2 connections, table locked: {dict(Counter(a.status_code for a in answers))} in {elapsed:.1f}s"
    )
    assert (health.status_code, health.text) == (200, "ok")
    assert [(a.status_code, a.headers["retry-after"]) for a in answers] == [(503, "7")] * CROWD
    assert elapsed < 1.0 + 2.0
    assert [r.status_code for r in retried] == [200] * CROWD
    assert (count(db, "users"), count(db, "whatsapp_messages")) == (CROWD, CROWD)


def rss_kib(pid: int) -> int:
    """The resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_relay_memory_stays_flat_over_thousands_of_messages(db: Database, tmp_path: Path) -> None:
    """`glue serve`'s RSS grows by under 4 MiB from 1,000 to 3,000 messages (bench/soak.py runs 100,000)."""
    with glue_serve(db.url("postgres"), tmp_path / "relay.log") as (process, base):
        base + WEBHOOK_PATH
        rounds = [[inbound_params(phone(i % 500), f"soak {n}-{i}") for i in range(1000)] for n in range(3)]
        samples = []
        for batch in rounds:
            answers = asyncio.run(deliver_to_replicas([base], [(0, m) for m in batch]))
            assert [a.status for a in answers] == [200] * len(batch)
            samples.append(rss_kib(process.pid))
    print(f"\nmemory: relay RSS after each 1,000 messages (KiB): {samples}")
    assert count(db, "whatsapp_messages") == 3000
    assert samples[-1] - samples[0] < 4096
