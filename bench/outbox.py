"""`python -m bench.outbox`: the outbox's two rates, each beside a baseline taken in the same run.

1. Queueing: `public.send_whatsapp_message` calls per second (as the service role, one transaction
   each) at 1 and 8 connections, against a bare insert of the same row into a table of the same
   shape and unique key. Rounds alternate between the two, so drift hits both.
2. Sending: messages per second that 1 and 2 worker processes take from queued to `sent` through
   the official twilio library and the local Messages API stand-in, against the same library
   creating the same number of messages on the stand-in with no database at all (the floor: what
   the HTTP round trip alone allows).

Prints a table and writes bench/results/outbox.json. The figures are for this machine only; the
ratios are what BENCHMARKS.md states.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from twilio.rest import Client

from glue.devdb import start_local_platform
from glue.devdb.serving import BackgroundServer
from glue.devdb.twilio_api import ACCOUNT, TOKEN, TwilioStandIn
from glue.worker import RedirectedHttpClient, WorkerConfig, run_once

PEOPLE = 2000
ROUND_SECONDS = 3.0
ROUNDS = 3
MESSAGES = 600
RESULTS = Path(__file__).resolve().parent / "results" / "outbox.json"
# Fresh interpreters for the worker processes: the parent runs the stand-in's server thread.
SPAWN = multiprocessing.get_context("spawn")

BASELINE_TABLE = """
create table bench_outbox_baseline (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null,
  idempotency_key text not null,
  to_address text not null,
  body text,
  status text not null default 'queued',
  queued_at timestamptz not null default now(),
  unique (user_id, idempotency_key)
)
"""


def people(url: str) -> list[str]:
    """PEOPLE profiles, each with a message of their own a moment ago (the window is open)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(PEOPLE):
            conn.execute(
                "select * from public.receive_whatsapp_message(%s, %s, 'hi')",
                (f"SMbench{n:06d}", f"whatsapp:+1415777{n:04d}"),
            )
        return [str(r[0]) for r in conn.execute("select id from public.users order by id")]


def rate(
    url: str, connections: int, call: Callable[[psycopg.Connection[Any], str, str], None], ids: list[str]
) -> float:
    """Calls per second over ROUND_SECONDS with `connections` threads, each on its own connection."""
    counts = [0] * connections
    stop = threading.Event()

    def worker(slot: int) -> None:
        tag = uuid.uuid4().hex  # idempotency keys unique to this connection and round
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("set role service_role")
            n = 0
            while not stop.is_set():
                call(conn, ids[(slot * 7919 + n) % len(ids)], f"{tag}-{n}")
                n += 1
            counts[slot] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    time.sleep(ROUND_SECONDS)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / ROUND_SECONDS


def queueing(url: str, ids: list[str]) -> dict[str, Any]:
    def send(conn: psycopg.Connection[Any], user_id: str, key: str) -> None:
        conn.execute(
            "select id from public.send_whatsapp_message(%s, %s, 'Your order has shipped.')", (user_id, key)
        )

    def bare(conn: psycopg.Connection[Any], user_id: str, key: str) -> None:
        conn.execute(
            "insert into public.bench_outbox_baseline (user_id, idempotency_key, to_address, body)"
            " values (%s, %s, 'whatsapp:+14155550000', 'Your order has shipped.')",
            (user_id, key),
        )

    out: dict[str, Any] = {}
    for connections in (1, 8):
        ours, floor = [], []
        for _ in range(ROUNDS):
            floor.append(rate(url, connections, bare, ids))
            ours.append(rate(url, connections, send, ids))
        out[str(connections)] = {
            "send_whatsapp_message": statistics.median(ours),
            "bare_insert": statistics.median(floor),
            "ratio": statistics.median(ours) / statistics.median(floor),
        }
    return out


def _work(url: str, api: str, done: Any, start: Any) -> None:
    client = Client(ACCOUNT, TOKEN, http_client=RedirectedHttpClient(api))
    config = WorkerConfig(from_address="whatsapp:+14155238886", batch=20)
    start.wait()
    while True:
        tally = run_once(url, client, config)
        with done.get_lock():
            done.value += tally.sent
        if not tally.sent:
            return


def _floor(api: str, count: int, start: Any) -> None:
    client = Client(ACCOUNT, TOKEN, http_client=RedirectedHttpClient(api))
    start.wait()
    for n in range(count):
        client.messages.create(
            to=f"whatsapp:+1415777{n % PEOPLE:04d}", from_="whatsapp:+14155238886", body="x"
        )


def seconds(processes: int, target: Callable[..., None], args: tuple[Any, ...]) -> float:
    """Runs `processes` copies of target; the clock starts once every one is ready (imports and
    clients made), so interpreter start-up is not counted."""
    start = SPAWN.Barrier(processes + 1)
    procs = [SPAWN.Process(target=target, args=(*args, start)) for _ in range(processes)]
    for p in procs:
        p.start()
    start.wait()
    began = time.monotonic()
    for p in procs:
        p.join()
    return time.monotonic() - began


def sending(url: str, api: str, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workers in (1, 2):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("set role service_role")
            run = uuid.uuid4().hex[:6]
            for n in range(MESSAGES):
                conn.execute(
                    "select id from public.send_whatsapp_message(%s, %s, 'Your order has shipped.')",
                    (ids[n % len(ids)], f"send-{run}-{n}"),
                )
        done = SPAWN.Value("i", 0)
        took = seconds(workers, _work, (url, api, done))
        ours = done.value / took
        floor = (MESSAGES // workers * workers) / seconds(workers, _floor, (api, MESSAGES // workers))
        out[str(workers)] = {
            "worker_sent_per_s": ours,
            "twilio_client_floor_per_s": floor,
            "ratio": ours / floor,
        }
    return out


def main() -> int:
    server = start_local_platform(seed=False)
    stand_in = BackgroundServer(TwilioStandIn().app)
    stand_in.start()
    try:
        url = server.url("postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(BASELINE_TABLE)
            conn.execute("grant insert on public.bench_outbox_baseline to service_role")
        ids = people(url)
        api = stand_in.base
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "queueing": queueing(url, ids),
            "sending": sending(url, api, ids),
        }
    finally:
        stand_in.stop()
        server.destroy()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
