"""Reference: the naive flow (select by phone, insert if missing: two round trips) vs ours.

Driven by a Python multi-process driver (psycopg, prepared statements, 2 processes x 16
threads = 32 connections) rather than pgbench, because the naive flow's outcome depends on
the client's logic between its two round trips and because pgbench 15 aborts a client at
its first unique violation, so it cannot count them. All three variants run in this same
driver, so their throughputs compare with each other (not with the pgbench figures).

Load: every connection walks the same list of new numbers in the same order from a common
barrier: the first messages of a new sender arriving together (a burst, Twilio retries and
a fallback URL all do this). Each number therefore sees about 32 calls, one of which
should create it.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import errors

from bench.pgbench import percentile
from glue.devdb import EmbeddedPostgres

PROCESSES = 2
THREADS = 16

SELECT = {
    "naive": "select id from bench.naive_users where phone_number = %s",
    "naive + unique": "select id from bench.naive_users_unique where phone_number = %s",
}
INSERT = {
    "naive": "insert into bench.naive_users (phone_number, full_name) values (%s, %s) returning id",
    "naive + unique": "insert into bench.naive_users_unique (phone_number, full_name) values (%s, %s) returning id",
}
OURS = "select id, created from public.get_or_create_whatsapp_user(%s, %s)"


@dataclass
class NaiveResult:
    variant: str
    connections: int
    seconds: float
    calls: int
    rate: float
    p50_ms: float
    p99_ms: float
    numbers: int
    profiles: int
    duplicates: int
    errors: int
    created_flags: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def phones(variant_index: int, count: int) -> list[str]:
    return [f"+1888{variant_index}{i:09d}" for i in range(count)]


def _thread(
    url: str,
    variant: str,
    numbers: list[str],
    barrier: Any,
    deadline_box: list[float],
    out: list[tuple[int, int, int, list[float]]],
) -> None:
    calls = errs = created = 0
    lat: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select 1")
        barrier.wait()
        deadline = deadline_box[0]
        for phone in numbers:
            now = time.perf_counter()
            if time.monotonic() > deadline:
                break
            try:
                if variant == "ours":
                    row = conn.execute(OURS, (phone, "Bench"), prepare=True).fetchone()
                    created += bool(row and row[1])
                else:
                    row = conn.execute(SELECT[variant], (phone,), prepare=True).fetchone()
                    if row is None:
                        conn.execute(INSERT[variant], (phone, "Bench"), prepare=True).fetchone()
                        created += 1
            except errors.UniqueViolation:
                errs += 1
            calls += 1
            lat.append((time.perf_counter() - now) * 1000)
    out.append((calls, errs, created, lat))


def _process(url: str, variant: str, numbers: list[str], seconds: float, barrier: Any, queue: Any) -> None:
    out: list[tuple[int, int, int, list[float]]] = []
    deadline_box = [0.0]

    def start_together() -> None:
        barrier.wait()  # every process's threads, then the clock
        deadline_box[0] = time.monotonic() + seconds

    local = threading.Barrier(THREADS, action=start_together)
    threads = [
        threading.Thread(target=_thread, args=(url, variant, numbers, local, deadline_box, out))
        for _ in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(out)


def run(server: EmbeddedPostgres, variant: str, index: int, seconds: float) -> NaiveResult:
    numbers = phones(index, 200_000)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    queue = ctx.Queue()
    url = server.url("postgres")
    procs = [
        ctx.Process(target=_process, args=(url, variant, numbers, seconds, barrier, queue))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    flat = [r for batch in results for r in batch]
    calls = sum(r[0] for r in flat)
    lat = sorted(x for r in flat for x in r[3])
    table = {
        "naive": "bench.naive_users",
        "naive + unique": "bench.naive_users_unique",
        "ours": "public.users",
    }[variant]
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        row = conn.execute(
            f"select count(*), count(distinct phone_number) from {table} where phone_number like %s",
            (f"+1888{index}%",),
        ).fetchone()
    assert row is not None
    profiles, distinct = int(row[0]), int(row[1])
    return NaiveResult(
        variant=variant,
        connections=PROCESSES * THREADS,
        seconds=seconds,
        calls=calls,
        rate=calls / seconds if seconds else 0.0,
        p50_ms=percentile(lat, 0.5),
        p99_ms=percentile(lat, 0.99),
        numbers=distinct,
        profiles=profiles,
        duplicates=profiles - distinct,
        errors=sum(r[1] for r in flat),
        created_flags=sum(r[2] for r in flat),
    )
