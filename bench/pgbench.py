"""RPC workloads driven by pgbench (C, prepared statements, one transaction = one call).

pgbench is the load generator because it costs a few microseconds of CPU per call: its
own CPU time is measured for every run (getrusage of the child) and reported, so the
reader can check that the database, not the driver, is what saturates the two cores.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.cpu import CpuMeter
from bench.platform import EXISTING_BASE
from glue.devdb import EmbeddedPostgres, find_bindir

# Random new phones (+1 and 14 digits) and random 34-character MessageSids: collisions
# over a run are vanishingly rare (1 in ~10^14 per pair).
NEW_PHONE = r"\set n random(10000000000000, 99999999999999)"
SID = (
    "\\set s1 random(1000000000000000, 9999999999999999)\n\\set s2 random(1000000000000000, 9999999999999999)"
)


def existing_phone(users: int) -> str:
    return f"\\set i random(1, {users})"


# The values the scripts' variables make: a loaded sender's digits, a new sender's number, a MessageSid.
LOADED = f"({EXISTING_BASE}::bigint + :i)"
EXISTING = f"'+44' || {LOADED}"
NEW = "'+1' || :n"
SID_VALUE = "'SM' || :s1 || :s2"


def by_key(phone: str) -> str:
    """The lookup every RPC makes, on the unique index's expression."""
    return f"private.phone_match_key(u.phone_number) = private.phone_match_key({phone})"


def new_profile(phone: str) -> str:
    """A new sender's profile, unless the number has one: the least a first contact writes."""
    return (
        f"insert into public.users (phone_number, full_name) select {phone}, 'Bench'"
        f" where not exists (select from public.users as u where {by_key(phone)}) on conflict do nothing"
    )


def known_sender_message(sid: str, phone: str) -> str:
    """A message stored against the profile of its (known) number: the least a known sender's message writes."""
    return (
        "insert into public.whatsapp_messages (message_sid, user_id, body, profile_name)"
        f" select {sid}, u.id, 'hello', 'Bench' from public.users as u where {by_key(phone)}"
        " on conflict do nothing returning *"
    )


def new_sender_message(sid: str, phone: str) -> str:
    """A first message: the new profile and the message in one statement."""
    return (
        f"with profile as ({new_profile(phone)} returning id)"
        " insert into public.whatsapp_messages (message_sid, user_id, body, profile_name, user_created)"
        f" select {sid}, id, 'hello', 'Bench', true from profile on conflict do nothing returning *"
    )


def _rpc_floor(name: str, params: str, returns: str, query: str) -> str:
    return (
        f"create or replace function bench.{name}({params}) returns setof {returns}"
        " language plpgsql security definer set search_path = ''"
        f" as $$ begin return query {query}; end; $$;"
    )


# The floors again, each as the smallest function Supabase takes as an RPC: plpgsql, security
# definer, search_path pinned (the advisors' rule), one `return query` of the floor's statement.
# What is left between these and the plain floors is the cost of being an RPC at all.
RPC_FLOORS_SQL = "\n".join(
    (
        _rpc_floor(
            "rpc_floor_existing_sender",
            "phone text",
            "public.users",
            f"select * from public.users as u where {by_key('phone')}",
        ),
        _rpc_floor(
            "rpc_floor_new_sender", "phone text", "public.users", f"{new_profile('phone')} returning *"
        ),
        _rpc_floor(
            "rpc_floor_message_known_sender",
            "sid text, phone text",
            "public.whatsapp_messages",
            known_sender_message("sid", "phone"),
        ),
        _rpc_floor(
            "rpc_floor_message_new_sender",
            "sid text, phone text",
            "public.whatsapp_messages",
            new_sender_message("sid", "phone"),
        ),
    )
)

SCRIPTS: dict[str, str] = {
    # Baselines.
    "select 1": "select 1;",
    "bare insert": f"{NEW_PHONE}\ninsert into bench.bare_users (phone_number, full_name) values ({NEW}, 'Bench')"
    " on conflict do nothing;",
    # Not a baseline: the same insert into a table that holds only what the run itself added.
    "bare insert, empty table": f"{NEW_PHONE}\ninsert into bench.empty_users (phone_number, full_name)"
    f" values ({NEW}, 'Bench') on conflict do nothing;",
    # Floors: the rows each of our calls must read and write, as one plain SQL statement on the
    # same tables (no function, no validation, no merge logic). What no implementation can beat.
    "floor: existing sender": f"{{existing}}\nselect * from public.users as u where {by_key(EXISTING)};",
    "floor: new sender": f"{NEW_PHONE}\n{new_profile(NEW)} returning *;",
    "floor: message, known sender": f"{SID}\n{{existing}}\n{known_sender_message(SID_VALUE, EXISTING)};",
    "floor: message, new sender": f"{SID}\n{NEW_PHONE}\n{new_sender_message(SID_VALUE, NEW)};",
    "rpc floor: existing sender": f"{{existing}}\nselect * from bench.rpc_floor_existing_sender({EXISTING});",
    "rpc floor: new sender": f"{NEW_PHONE}\nselect * from bench.rpc_floor_new_sender({NEW});",
    "rpc floor: message, known sender": f"{SID}\n{{existing}}\n"
    f"select * from bench.rpc_floor_message_known_sender({SID_VALUE}, {EXISTING});",
    "rpc floor: message, new sender": f"{SID}\n{NEW_PHONE}\n"
    f"select * from bench.rpc_floor_message_new_sender({SID_VALUE}, {NEW});",
    # Ours.
    "get_or_create existing": f"{{existing}}\nselect * from public.get_or_create_whatsapp_user({EXISTING}, 'Bench');",
    "get_or_create new": f"{NEW_PHONE}\nselect * from public.get_or_create_whatsapp_user({NEW}, 'Bench');",
    "receive existing sender": f"{SID}\n{{existing}}\nselect * from public.receive_whatsapp_message({SID_VALUE},"
    f" 'whatsapp:+44' || {LOADED}, 'hello', 'Bench', '[]');",
    # What Twilio sends since April 2026: the sender's BSUID (ExternalUserId) next to the number.
    "receive existing sender, with BSUID": f"{SID}\n{{existing}}\nselect * from public.receive_whatsapp_message("
    f"{SID_VALUE}, 'whatsapp:+44' || {LOADED}, 'hello', 'Bench', '[]', 'US.' || {LOADED});",
    "receive new sender": f"{SID}\n{NEW_PHONE}\nselect * from public.receive_whatsapp_message({SID_VALUE},"
    " 'whatsapp:+1' || :n, 'hello', 'Bench', '[]');",
}

# The workloads measured as the users table grows (section 2).
SCALE_WORKLOADS = (
    "select 1",
    "bare insert",
    "bare insert, empty table",
    "get_or_create existing",
    "get_or_create new",
    "receive existing sender",
)

# The existing-user call taken apart, for the profile: each layer's cost is the difference.
PROFILE_SCRIPTS: dict[str, str] = {
    "private.normalize_phone only": f"{{existing}}\nselect private.normalize_phone({EXISTING}, 'phone');",
    "private.whatsapp_user (plpgsql) only": f"{{existing}}\nselect * from private.whatsapp_user({EXISTING}, 'Bench');",
}


@dataclass
class Run:
    workload: str
    clients: int
    users: int
    seconds: float
    calls: int
    failed: int
    rate: float
    p50_ms: float
    p99_ms: float
    driver_cpu_pct: float  # pgbench's CPU time / wall time, in % of one core
    postgres_cpu_pct: float = 0.0  # every PostgreSQL process, % of one core
    machine_cpu_pct: float = 0.0  # the whole machine, % of one core (200 = both cores busy)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def pgbench_bin() -> str:
    return str(find_bindir() / "pgbench")


def run(server: EmbeddedPostgres, workload: str, clients: int, seconds: float, users: int) -> Run:
    script = (SCRIPTS.get(workload) or PROFILE_SCRIPTS[workload]).replace("{existing}", existing_phone(users))
    with tempfile.TemporaryDirectory(prefix="glue-bench-") as tmp:
        path = Path(tmp) / "script.sql"
        path.write_text(script + "\n")
        os.chmod(tmp, 0o755)
        args = [
            pgbench_bin(),
            "-n",  # no vacuum of pgbench's own tables
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(clients),  # one thread per connection: pgbench timestamps lazily per thread
            "-T",
            str(int(seconds)),
            "-f",
            str(path),
            "-l",
            "--log-prefix",
            str(Path(tmp) / "log"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "postgres",
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert server.process is not None
        meter = CpuMeter(server.process.pid, server.process.pid)
        started = time.monotonic()
        out = subprocess.run(
            args, capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "postgres"}
        )
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_use = meter.stop()
        if out.returncode not in (0, 2) or "processed" not in out.stdout:
            raise RuntimeError(f"pgbench {workload} failed ({out.returncode}): {out.stderr[-2000:]}")
        latencies: list[float] = []
        for log in Path(tmp).glob("log*"):
            for line in log.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    latencies.append(int(parts[2]) / 1000.0)
    latencies.sort()
    processed = int(re.search(r"actually processed: (\d+)", out.stdout).group(1))  # type: ignore[union-attr]
    failed_match = re.search(r"number of failed transactions: (\d+)", out.stdout)
    tps = float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(
        workload=workload,
        clients=clients,
        users=users,
        seconds=seconds,
        calls=processed,
        failed=int(failed_match.group(1)) if failed_match else 0,
        rate=tps,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        driver_cpu_pct=100.0 * cpu / wall,
        postgres_cpu_pct=cpu_use["postgres_cpu_pct"],
        machine_cpu_pct=cpu_use["machine_cpu_pct"],
    )
