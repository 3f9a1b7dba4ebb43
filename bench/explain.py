"""The plans of the statements inside each RPC, from auto_explain with nested statements.

auto_explain is loaded into one superuser session with log_level = notice, so each plan
(EXPLAIN ANALYZE of every statement the functions run, nested ones included) arrives at
the client as a notice instead of in the server log.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from bench.platform import EXISTING_BASE
from glue.devdb import EmbeddedPostgres

CALLS: dict[str, tuple[str, Callable[[int, int], tuple[str, ...]]]] = {
    "get_or_create existing": (
        "select * from public.get_or_create_whatsapp_user(%s, 'Bench')",
        lambda users, k: (f"+44{EXISTING_BASE + users // 2 + k}",),
    ),
    "get_or_create new": (
        "select * from public.get_or_create_whatsapp_user(%s, 'Bench')",
        lambda users, k: (f"+1555{9000000000 + k}",),
    ),
    "receive existing sender": (
        "select * from public.receive_whatsapp_message(%s, %s, 'hello', 'Bench', '[]')",
        lambda users, k: (f"SMexplain{k:025d}", f"whatsapp:+44{EXISTING_BASE + users // 3 + k}"),
    ),
}


def plans(server: EmbeddedPostgres, users: int) -> dict[str, list[str]]:
    """For each call: the plans of its second execution in the session (plans cached as in the relay)."""
    found: dict[str, list[str]] = {}
    with psycopg.connect(server.url("supabase_admin"), autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        for statement in (
            "load 'auto_explain'",
            "set auto_explain.log_min_duration = 0",
            "set auto_explain.log_analyze = on",
            "set auto_explain.log_buffers = on",
            "set auto_explain.log_nested_statements = on",
            "set auto_explain.log_level = notice",
            "set client_min_messages = notice",
        ):
            conn.execute(statement)
        for name, (sql, params) in CALLS.items():
            for k in range(6):  # past plpgsql's five custom plans: what a long-lived connection runs
                notices.clear()
                conn.execute(sql, params(users, k), prepare=False).fetchall()
            found[name] = [n.strip() for n in notices]
        conn.execute("delete from public.users where phone_number like '+15559%'")
        conn.execute("delete from public.whatsapp_messages where message_sid like 'SMexplain%'")
    return found
