"""glue's view of the RPC (its arguments and its Receipt) matches the types Supabase's CLI generated."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.parse import urlencode

from glue.gateway import PsycopgGateway, Receipt, rpc_arguments
from glue.simulate import inbound_params
from glue.twilio_request import parse_form, read_message

DATABASE_TS = Path(__file__).resolve().parents[1] / "supabase" / "types" / "database.ts"


def generated_rpc(name: str) -> tuple[set[str], set[str]]:
    """The argument names and result columns `supabase gen types --lang typescript` wrote for an RPC."""
    text = DATABASE_TS.read_text()
    match = re.search(
        rf'"{name}":\s*\{{\s*Args:\s*\{{(?P<args>[^}}]*)\}};\s*Returns:\s*\{{(?P<returns>[^}}]*)\}}', text
    )
    assert match is not None, f"{name} is not in {DATABASE_TS.name}"
    names = re.compile(r'"(\w+)"\??:')
    return set(names.findall(match["args"])), set(names.findall(match["returns"]))


def test_the_relay_passes_exactly_the_generated_arguments() -> None:
    """Every argument glue sends is one the RPC declares, and glue sends them all."""
    args, _ = generated_rpc("receive_whatsapp_message")
    form = parse_form(urlencode(inbound_params("+14155550123", "hi")).encode(), None)
    assert set(rpc_arguments(read_message(form))) == args


def test_the_receipt_reads_exactly_the_generated_result_columns() -> None:
    """glue's Receipt has one field per column the RPC returns, and its SQL selects them all."""
    _, returns = generated_rpc("receive_whatsapp_message")
    assert {field.name for field in dataclasses.fields(Receipt)} == returns
    selected = re.match(r"select (?P<cols>.*?) from", PsycopgGateway.SQL)
    assert selected is not None
    assert {c.strip() for c in selected["cols"].split(",")} == returns
