"""The server's own time per call, layer by layer, without a driver or a network in the way.

Each layer runs in a `do` block on one connection, many times over, timed inside the server. Twice:
all calls in one transaction, then each call committed on its own, as every RPC request is. The
difference is what a call pays once per transaction: plpgsql builds every expression it evaluates
again in each new transaction. The figures are steadier than pgbench's (no client, no scheduler
between two processes), so they show layers a few microseconds apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg

from bench.platform import EXISTING_BASE
from glue.devdb import EmbeddedPostgres

# Each layer's statement, given `sender` ('whatsapp:+44...', a loaded user), `number` (its E.164 form),
# `fresh` (a number nobody has) and `sid` (a new MessageSid). The RPC floors are the bench's own
# (bench.pgbench.RPC_FLOORS_SQL).
LAYERS: dict[str, str] = {
    "empty loop": "result := sender;",
    "private.phone_match_key": "result := private.phone_match_key(number);",
    "private.normalize_phone": "result := private.normalize_phone(sender, 'phone');",
    "lookup by key (plain statement)": "select u.id into result from public.users as u"
    " where private.phone_match_key(u.phone_number) = private.phone_match_key(number);",
    "rpc floor: existing sender": "select r.id into result from bench.rpc_floor_existing_sender(number) as r;",
    "private.whatsapp_user, existing": "result := (private.whatsapp_user(sender, 'Bench')).id;",
    "get_or_create existing": "select r.id into result from public.get_or_create_whatsapp_user(sender, 'Bench') as r;",
    "rpc floor: new sender": "select r.id into result from bench.rpc_floor_new_sender(fresh) as r;",
    "get_or_create new": "select r.id into result from public.get_or_create_whatsapp_user(fresh, 'Bench') as r;",
    "rpc floor: message, known sender": "select r.id into result"
    " from bench.rpc_floor_message_known_sender(sid, number) as r;",
    "receive existing sender": "select r.message_id into result"
    " from public.receive_whatsapp_message(sid, sender, 'hello', 'Bench', '[]') as r;",
}


@dataclass
class Layer:
    layer: str
    calls: int
    one_transaction_us: float  # per call, all calls in one transaction
    own_transaction_us: float  # per call, each call committed on its own

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _per_call_us(
    conn: psycopg.Connection[tuple[object, ...]],
    statement: str,
    calls: int,
    users: int,
    commit: bool,
    offset: int,
) -> float:
    """Runs `statement` `calls` times in a `do` loop and returns the µs per call it timed, which the
    loop reports as a notice."""
    notices: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")

    conn.add_notice_handler(keep)
    try:
        conn.execute(
            f"""
            do $$
            declare
              sender text; number text; fresh text; sid text; result text;
              started timestamptz := clock_timestamp();
            begin
              for i in 1..{calls} loop
                number := '+44' || ({EXISTING_BASE}::bigint + 1 + (i * 7919) % {users});
                sender := 'whatsapp:' || number;
                fresh := '+1555' || lpad(({offset} + i)::text, 10, '0');
                sid := 'SMinserver' || lpad(({offset} + i)::text, 24, '0');
                {statement}
                {"commit;" if commit else ""}
              end loop;
              raise notice '%', extract(epoch from clock_timestamp() - started) * 1e6 / {calls};
            end $$
            """
        )
    finally:
        conn.remove_notice_handler(keep)
    return float(notices[-1])


def run(server: EmbeddedPostgres, users: int, calls: int) -> list[Layer]:
    """Each layer's µs per call, in one transaction and one transaction per call; new rows are left
    behind (the caller clears them)."""
    layers = []
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for index, (name, statement) in enumerate(LAYERS.items()):
            offset = index * 2 * calls
            one = _per_call_us(conn, statement, calls, users, commit=False, offset=offset)
            own = _per_call_us(conn, statement, calls, users, commit=True, offset=offset + calls)
            layers.append(Layer(name, calls, one, own))
    return layers
