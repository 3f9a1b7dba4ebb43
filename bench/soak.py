"""Soak: 100,000 signed webhooks through `glue serve` on its own database, with the relay's memory.

    .venv/bin/python -m bench.soak                      # 100,000 messages, 32 in flight
    .venv/bin/python -m bench.soak --messages 20000 --concurrency 64

Starts an embedded PostgreSQL with the migrations (glue.devdb), runs `glue serve` as its own process,
and sends every message once, plus a redelivery of every tenth (Twilio's retries), each with a unique
MessageSid and a signature from twilio's RequestValidator; a request that gets no HTTP answer at all
is sent once more, as Twilio retries it. It prints the relay's RSS every 10,000
messages and, at the end, one JSON line: answers by status, rows stored, duplicates, lost, RSS at
start (after 1,000 messages of warm-up) and end. It exits 1 if a row is lost or duplicated or an
HTTP answer is not 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
from twilio.request_validator import RequestValidator

from glue.devdb import start_local_platform
from glue.devdb.server import free_port
from glue.settings import WEBHOOK_PATH, Settings
from glue.simulate import inbound_params

TOKEN = "soak-auth-token-0123456789abcdef"
GLUE = str(Path(sys.executable).with_name("glue"))
WARM_UP = 1000
SAMPLE_EVERY = 10_000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_relay(database_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        DATABASE_URL=database_url, TWILIO_AUTH_TOKEN=TOKEN, WELCOME_REPLY="Welcome!", LOG_LEVEL="warning"
    )
    with open(log, "wb") as sink:
        process = subprocess.Popen([GLUE, "serve", "--port", str(port)], env=env, stdout=sink, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"glue serve did not become ready: {log.read_text()[-2000:]}")
        time.sleep(0.1)


async def drive(
    url: str, total: int, concurrency: int, pid: int
) -> tuple[Counter[int | str], dict[int, int], set[str]]:
    """Send `total` messages (and every tenth again) with `concurrency` in flight; sample RSS as it goes."""
    validator = RequestValidator(TOKEN)
    answers: Counter[int | str] = Counter()
    rss: dict[int, int] = {0: rss_kib(pid)}
    sids: set[str] = set()
    queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue(maxsize=concurrency * 4)
    done = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while (params := await queue.get()) is not None:
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            for _ in range(2):  # a request that got no answer at all is sent again, as Twilio does (#rc=1)
                try:
                    response = await client.post(url, data=params, headers=headers)
                except httpx.TransportError as error:
                    answers[type(error).__name__] += 1
                    continue
                answers[response.status_code] += 1
                break
            done += 1
            if done == WARM_UP or done % SAMPLE_EVERY == 0:
                rss[done] = rss_kib(pid)
                print(f"{done:>7} requests  relay RSS {rss[done]:>7} KiB  {dict(answers)}", flush=True)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=15.0, limits=limits) as client:
        workers = [asyncio.create_task(worker(client)) for _ in range(concurrency)]
        for n in range(total):
            params = inbound_params(f"+1415{n % 1000:07d}", f"soak message {n}")
            sids.add(params["MessageSid"])
            await queue.put(params)
            if n % 10 == 9:
                await queue.put(params)  # a redelivery of the same MessageSid
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    rss[done] = rss_kib(pid)
    return answers, rss, sids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    server = start_local_platform(seed=False)
    log = Path(tempfile.mkdtemp(prefix="glue-soak-")) / "relay.log"
    try:
        process, base = start_relay(server.url("postgres"), log)
        try:
            started = time.monotonic()
            answers, rss, sids = asyncio.run(
                drive(base + WEBHOOK_PATH, args.messages, args.concurrency, process.pid)
            )
            elapsed = time.monotonic() - started
        finally:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(server.url("postgres")) as conn:
            stored = Counter(r[0] for r in conn.execute("select message_sid from public.whatsapp_messages"))
    finally:
        server.destroy()
    requests = sum(answers.values())
    summary = {
        "messages": args.messages,
        "requests": requests,
        "seconds": round(elapsed, 1),
        "requests_per_second": round(requests / elapsed),
        "answers": {str(k): v for k, v in answers.items()},
        "stored": sum(stored.values()),
        "duplicates": sum(n - 1 for n in stored.values()),
        "lost": len(sids - stored.keys()),
        "rss_kib_after_start": rss[0],
        "rss_kib_after_warm_up": rss.get(WARM_UP),
        "rss_kib_end": rss[max(rss)],
    }
    print(json.dumps(summary))
    only_200 = all(status == 200 or isinstance(status, str) for status in answers)
    ok = only_200 and summary["duplicates"] == 0 and summary["lost"] == 0
    if ok:
        shutil.rmtree(log.parent)
    else:
        print(f"the relay's log: {log}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
