"""Reliability of the relay and the database together: load with a database restart, redelivery storms,
two replicas, fuzzed and hostile input, connection exhaustion and memory.

Everything runs against a real uvicorn and a real PostgreSQL; requests are signed with the twilio library.
The figures each test prints (`pytest -s tests/test_reliability.py`) are the ones in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from test_relay import (
    TOKEN,
    WELCOME,
    HookRecorder,
    count,
    deadline_poll,
    running_relay,
    sign,
)

from glue.devdb import start_local_platform
from glue.devdb.server import free_port
from glue.settings import WEBHOOK_PATH, Settings
from glue.simulate import inbound_params, message_sid
from glue.testing import Database

TWILIO_TIMEOUT = 15.0  # Twilio waits this long for an answer
TWILIO_STATUSES = {200, 400, 403, 413, 415}


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
