"""Relay throughput and latency through a real uvicorn server, driven by wrk on loopback.

wrk (C, epoll, one thread per core given) replays precomputed webhooks, each with a unique
MessageSid and a correct X-Twilio-Signature from twilio's RequestValidator, so the relay's
full path runs: body, form, signature, one RPC, TwiML. wrk's own CPU time is measured per
run; and it drives the no-database baseline several times faster than the relay, which
shows it can offer more load than the relay takes.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from twilio.request_validator import RequestValidator

from bench.cpu import CpuMeter
from bench.platform import EXISTING_BASE
from glue.devdb import EmbeddedPostgres
from glue.devdb.server import free_port
from glue.settings import WEBHOOK_PATH

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "wrk" / "webhooks.lua"
TOKEN = "bench-auth-token-0123456789abcdef"
ACCOUNT = "AC" + "0" * 32
TO = "whatsapp:+14155238886"
WRK_THREADS = 1
CONNECTIONS = 64


@dataclass
class HttpRun:
    server: str  # "relay", "baseline" or "floor" (see bench/baseline_app.py)
    workers: int
    connections: int
    think_ms: float
    seconds: float
    requests: int
    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    wrapped: int
    stored: int  # messages the database stored during the run (relay only)
    driver_cpu_pct: float
    server_cpu_pct: float = 0.0  # uvicorn's processes, % of one core
    postgres_cpu_pct: float = 0.0  # every PostgreSQL process, % of one core
    machine_cpu_pct: float = 0.0  # the whole machine, % of one core (200 = both cores busy)
    worker_balance: float = 1.0  # least busy worker's CPU / busiest worker's (several workers only)
    log_tail: str = ""  # the server's last log lines, kept when a run had errors

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def webhook_params(sid: str, phone: str) -> dict[str, str]:
    """A form shaped like Twilio's inbound WhatsApp text message."""
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Bench",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": phone.lstrip("+"),
        "SmsStatus": "received",
        "Body": "Hello, is this the right number for support?",
        "To": TO,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": f"whatsapp:{phone}",
        "ApiVersion": "2010-04-01",
    }


def write_requests(prefix: Path, url: str, count: int, users: int, tag: str) -> None:
    """`count` signed webhooks from random existing senders, split across the wrk threads' files."""
    validator = RequestValidator(TOKEN)
    rng = random.Random(tag)
    files = [open(f"{prefix}.{t}", "w") for t in range(WRK_THREADS)]  # noqa: SIM115
    try:
        for n in range(count):
            sid = f"SM{tag}{n:0{32 - len(tag)}d}"
            phone = f"+44{EXISTING_BASE + rng.randint(1, users)}"
            params = webhook_params(sid, phone)
            signature = validator.compute_signature(url, params)
            files[n % WRK_THREADS].write(f"{signature}\t{urllib.parse.urlencode(params)}\n")
    finally:
        for f in files:
            f.close()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class Server:
    """`uvicorn --factory` in its own process: the relay (`glue.app:app_from_environment`), the
    baseline or the floor (bench/baseline_app.py)."""

    def __init__(self, kind: str, workers: int, db: EmbeddedPostgres, log_path: Path) -> None:
        self.kind = kind
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        factory = {
            "relay": "glue.app:app_from_environment",
            "baseline": "bench.baseline_app:create",
            "floor": "bench.baseline_app:create_floor",
        }[kind]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": db.url("postgres"),
            "TWILIO_AUTH_TOKEN": TOKEN,
            "PUBLIC_BASE_URL": self.url,
            "LOG_LEVEL": "info",
        }
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--no-access-log",
                "--log-level",
                "warning",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        wait_for_port(self.port, self.process)

    def tail(self) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-3:])[-1500:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def messages(db: EmbeddedPostgres) -> int:
    with psycopg.connect(db.url("postgres"), autocommit=True) as conn:
        row = conn.execute("select count(*) from public.whatsapp_messages").fetchone()
    assert row is not None
    return int(row[0])


def wrk(
    server: Server, prefix: Path, seconds: float, connections: int, think_ms: float = 0.0
) -> dict[str, float]:
    env = {
        **os.environ,
        "WEBHOOKS_FILE": str(prefix),
        "WEBHOOK_PATH": WEBHOOK_PATH,
        "THINK_MS": f"{think_ms:.3f}",
    }
    args = [
        "wrk",
        "-t",
        str(WRK_THREADS),
        "-c",
        str(connections),
        "-d",
        f"{int(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        server.url + WEBHOOK_PATH,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON "))
    result: dict[str, float] = json.loads(line.removeprefix("WRK_JSON "))
    result["cpu_pct"] = (
        100.0 * ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / wall
    )
    return result


def measure(
    server: Server,
    db: EmbeddedPostgres,
    workdir: Path,
    tag: str,
    users: int,
    seconds: float,
    connections: int = CONNECTIONS,
    think_ms: float = 0.0,
    expected_rate: float = 8000.0,
) -> HttpRun:
    prefix = workdir / f"webhooks-{tag}"
    write_requests(prefix, server.url + WEBHOOK_PATH, int(expected_rate * seconds * 1.3) + 1000, users, tag)
    stored_before = messages(db) if server.kind == "relay" else 0
    assert db.process is not None
    meter = CpuMeter(server.process.pid, db.process.pid)
    r = wrk(server, prefix, seconds, connections, think_ms)
    cpu = meter.stop()
    stored = messages(db) - stored_before if server.kind == "relay" else 0
    duration = r["duration_us"] / 1e6
    errors = int(
        r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    )
    return HttpRun(
        server=server.kind,
        workers=server.workers,
        connections=connections,
        think_ms=think_ms,
        seconds=duration,
        requests=int(r["requests"]),
        rate=r["requests"] / duration,
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        errors=errors,
        wrapped=int(r["wrapped"]),
        stored=stored,
        driver_cpu_pct=r["cpu_pct"],
        **cpu,
        log_tail=server.tail() if errors else "",
    )


def profile(server: Server, db: EmbeddedPostgres, workdir: Path, users: int, seconds: float) -> Path:
    """py-spy (raw collapsed stacks) of the single-worker relay while wrk saturates it."""
    prefix = workdir / "webhooks-profile"
    write_requests(prefix, server.url + WEBHOOK_PATH, int(4000 * (seconds + 4)), users, "PROF")
    out = workdir / "relay-profile.txt"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(server.process.pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wrk(server, prefix, seconds + 2, CONNECTIONS)
    _, err = spy.communicate(timeout=60)
    if spy.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    return out


BUCKETS = [
    ("signature check (twilio RequestValidator)", ("request_validator.py",)),
    ("database call (psycopg pool, send, wait)", ("psycopg", "gateway.py")),
    ("request log line (JSON formatting, logging)", ("JsonFormatter", "logging/__init__.py")),
    ("form parsing (parse_qsl, multidict)", ("parse_form", "urllib/parse.py", "datastructures.py")),
    ("TwiML (MessagingResponse)", ("twiml", "xml/etree", "twilio/twiml")),
    ("HTTP and ASGI (uvicorn, httptools, Starlette)", ("uvicorn/", "starlette/")),
]


def summarise_profile(path: Path) -> dict[str, object]:
    """Share of samples per concern (each sample counted once, in the first concern its stack
    shows, in the order above), and the top functions by own time."""
    total = 0
    exclusive = {name: 0 for name, _ in BUCKETS}
    exclusive["other (asyncio loop, app code)"] = 0
    own: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = re.sub(r":\d+\)$", ")", frames[-1]) if frames else ""
        own[leaf] = own.get(leaf, 0) + count
        for name, needles in BUCKETS:
            if any(any(n in f for n in needles) for f in frames):
                exclusive[name] += count
                break
        else:
            exclusive["other (asyncio loop, app code)"] += count
    top = sorted(own.items(), key=lambda kv: -kv[1])[:12]
    return {
        "samples": total,
        "share_pct": {k: 100.0 * v / total for k, v in exclusive.items()} if total else {},
        "top_own": [(k, 100.0 * v / total) for k, v in top] if total else [],
    }
