"""The imitation of Supabase Auth (tests/actors.py's `SupabaseAuth`) writes what the real server
writes: each flow it offers runs both ways, and auth.users, auth.identities and the resulting
profile must match once ids, timestamps and hashes are set aside. The fast tests rest on this."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from actors import PASSWORD_HASH, App, SupabaseAuth
from conftest import otp_for
from psycopg.rows import dict_row
from supabase_auth import SyncGoTrueAdminAPI

from glue.devdb.auth import AuthServer
from glue.devdb.platform import create_database, install_platform
from glue.devdb.provider import Cluster

pytestmark = pytest.mark.real_auth

Conn = psycopg.Connection[dict[str, Any]]
PASSWORD = "correct horse battery"
HASHES = {
    "encrypted_password",
    "confirmation_token",
    "recovery_token",
    "email_change_token_new",
    "email_change_token_current",
    "phone_change_token",
    "reauthentication_token",
}


@dataclass
class Side:
    """One way of performing a flow: the real server or the imitation, with its own person."""

    email: str
    new_email: str
    phone: str  # digits, as Auth stores them
    first_phone: str  # a number the account holds before `phone`, where a flow needs one

    def placeholders(self, user_id: uuid.UUID) -> dict[str, str]:
        return {
            str(user_id): "<user>",
            self.email: "<email>",
            self.new_email: "<new email>",
            self.phone: "<phone>",
            f"+{self.phone}": "<+phone>",
            self.first_phone: "<first phone>",
            f"+{self.first_phone}": "<+first phone>",
        }


def shape(value: Any, key: str, names: dict[str, str]) -> Any:
    """A value with what must differ between two runs replaced by what it stands for."""
    if isinstance(value, dict):
        return {k: shape(v, k, names) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v, key, names) for v in value]
    if isinstance(value, datetime.datetime):
        return "<time>"
    if key in HASHES and value:
        return "<hash>"
    if isinstance(value, uuid.UUID):
        return names.get(str(value), value)
    if isinstance(value, str):
        # Longest first, so '+1415...' is not half-replaced by its digits.
        for actual in sorted(names, key=len, reverse=True):
            value = value.replace(actual, names[actual])
        return value
    return value


def outcome(sql: Conn, user_id: uuid.UUID, side: Side) -> dict[str, Any]:
    names = side.placeholders(user_id)
    user = sql.execute("select * from auth.users where id = %s", (user_id,)).fetchone()
    identities = sql.execute(
        "select provider_id, identity_data, provider, email, last_sign_in_at is not null as signed_in"
        " from auth.identities where user_id = %s order by provider",
        (user_id,),
    ).fetchall()
    profile = sql.execute(
        "select auth_id, email, full_name, phone_number, whatsapp_user_id,"
        " (select count(*) from public.whatsapp_messages as m where m.user_id = u.id) as messages"
        " from public.users as u where auth_id = %s or phone_number = %s",
        (user_id, f"+{side.phone}"),
    ).fetchall()
    merges = sql.execute(
        "select outcome, triggered_by, reason from public.user_merges where auth_id = %s order by created_at",
        (user_id,),
    ).fetchall()
    return shape(
        {
            "user": user and {k: v for k, v in user.items() if k != "id"},
            "identities": identities,
            "profiles": profile,
            "merges": merges,
        },
        "",
        names,
    )


def receive(sql: Conn, phone: str) -> None:
    sql.execute(
        "select * from public.receive_whatsapp_message(%s, %s, 'hello', 'Ada on WhatsApp')",
        ("SM" + uuid.uuid4().hex, f"whatsapp:+{phone}"),
    )


Real = Callable[[App, SyncGoTrueAdminAPI, Side], uuid.UUID]
Fake = Callable[[SupabaseAuth, Side], uuid.UUID]


def real_sign_up(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    return app.sign_up(side.email, PASSWORD, full_name="Ada")


def fake_sign_up(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    return auth.sign_up(side.email, metadata={"full_name": "Ada"})


def real_phone_sign_in(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    app.sign_in_with_phone(side.phone, otp_for(side.phone))
    return app.user_id


def fake_phone_sign_in(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    return auth.sign_up_with_phone(side.phone)


def real_admin_create(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    return uuid.UUID(admin.create_user({"phone": side.phone, "phone_confirm": True}).user.id)


def fake_admin_create(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    return auth.create_user(side.phone, phone_confirm=True)


def real_phone_change_requested(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    user_id = real_sign_up(app, admin, side)
    app.client.update_user({"phone": side.phone})
    return user_id


def fake_phone_change_requested(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    user_id = fake_sign_up(auth, side)
    auth.request_phone_change(user_id, side.phone)
    return user_id


def real_phone_change_verified(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    user_id = real_sign_up(app, admin, side)
    app.add_phone(side.phone, otp_for(side.phone))
    return user_id


def fake_phone_change_verified(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    user_id = fake_phone_change_requested(auth, side)
    auth.confirm_phone(user_id, side.phone)
    return user_id


def real_email_change(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    user_id = real_sign_up(app, admin, side)
    app.change_email(side.email, side.new_email)
    return user_id


def fake_email_change(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    user_id = fake_sign_up(auth, side)
    auth.change_email(user_id, side.new_email)
    return user_id


def real_delete(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    user_id = real_phone_change_verified(app, admin, side)
    admin.delete_user(str(user_id))
    return user_id


def fake_delete(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    user_id = fake_phone_change_verified(auth, side)
    auth.delete_user(user_id)
    return user_id


def real_admin_update(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    user_id = uuid.UUID(admin.create_user({"phone": side.first_phone, "phone_confirm": True}).user.id)
    admin.update_user_by_id(str(user_id), {"phone": side.phone})
    return user_id


def fake_admin_update(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    user_id = auth.create_user(side.first_phone, phone_confirm=True)
    auth.admin_update_user(user_id, phone=side.phone)
    return user_id


def real_admin_update_confirmed(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    user_id = uuid.UUID(admin.create_user({"email": side.email, "email_confirm": True}).user.id)
    admin.update_user_by_id(str(user_id), {"phone": side.phone, "phone_confirm": True})
    return user_id


def fake_admin_update_confirmed(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    user_id = auth.admin_create_user_with_email(side.email)
    auth.admin_update_user(user_id, phone=side.phone, phone_confirm=True)
    return user_id


def real_phone_sign_up_then_code_sign_in(app: App, admin: SyncGoTrueAdminAPI, side: Side) -> uuid.UUID:
    app.client.sign_up({"phone": side.phone, "password": PASSWORD})
    time.sleep(5.1)  # config.toml's [auth.sms] max_frequency between two codes to one number
    app.sign_in_with_phone(side.phone, otp_for(side.phone))
    return app.user_id


def fake_phone_sign_up_then_code_sign_in(auth: SupabaseAuth, side: Side) -> uuid.UUID:
    user_id = auth.request_phone_code(side.phone, password_hash=PASSWORD_HASH)
    auth.request_phone_code(side.phone)
    auth.verify_phone_code(side.phone)
    return user_id


FLOWS: dict[str, tuple[Real, Fake]] = {
    "email sign-up, confirmed by mail": (real_sign_up, fake_sign_up),
    "phone OTP sign-in of a WhatsApp sender": (real_phone_sign_in, fake_phone_sign_in),
    "admin create with phone_confirm": (real_admin_create, fake_admin_create),
    "phone change requested, not verified": (real_phone_change_requested, fake_phone_change_requested),
    "phone change verified": (real_phone_change_verified, fake_phone_change_verified),
    "email change confirmed on both addresses": (real_email_change, fake_email_change),
    "linked account deleted": (real_delete, fake_delete),
    "admin phone update without phone_confirm": (real_admin_update, fake_admin_update),
    "admin phone update with phone_confirm": (real_admin_update_confirmed, fake_admin_update_confirmed),
    "phone sign-up with a password, then a code sign-in": (
        real_phone_sign_up_then_code_sign_in,
        fake_phone_sign_up_then_code_sign_in,
    ),
}


@pytest.mark.parametrize("flow", FLOWS, ids=list(FLOWS))
def test_the_imitation_writes_what_the_real_server_writes(
    flow: str, sql: Conn, app: App, auth_admin: SyncGoTrueAdminAPI, supabase_auth: SupabaseAuth
) -> None:
    """Both ways, each with a WhatsApp sender of its own number first: the same rows, the same profile."""
    real_flow, fake_flow = FLOWS[flow]
    tag = uuid.uuid4().hex[:8]
    real = Side(f"real-{tag}@example.com", f"real-new-{tag}@example.com", "14155557001", "14155557003")
    fake = Side(f"fake-{tag}@example.com", f"fake-new-{tag}@example.com", "14155557002", "14155557004")
    receive(sql, real.phone)
    receive(sql, fake.phone)
    real_id = real_flow(app, auth_admin, real)
    fake_id = fake_flow(supabase_auth, fake)
    assert outcome(sql, fake_id, fake) == outcome(sql, real_id, real)


COLUMNS = """
select c.relname as table_name, a.attname as column_name, format_type(a.atttypid, a.atttypmod) as type,
       a.attnotnull as not_null, a.attgenerated as generated,
       pg_get_expr(d.adbin, d.adrelid) as default_value
from pg_attribute as a
join pg_class as c on c.oid = a.attrelid
left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
where c.relnamespace = 'auth'::regnamespace and c.relname in ('users', 'identities')
  and a.attnum > 0 and not a.attisdropped
order by 1, 2
"""
UNIQUE_INDEXES = """
select c.relname as table_name, pg_get_indexdef(i.indexrelid) as definition
from pg_index as i join pg_class as c on c.oid = i.indrelid
where c.relnamespace = 'auth'::regnamespace and c.relname in ('users', 'identities') and i.indisunique
order by 1, 2
"""


def test_the_stand_in_tables_are_the_real_ones(cluster: Cluster, sql: Conn, auth_server: AuthServer) -> None:
    """Where the server cannot be built, auth_standin.sql gives our triggers the same columns,
    types, defaults and unique keys as the real migrations (which made the `sql` database's)."""
    assert cluster.admin_user is not None
    name = f"standin_{uuid.uuid4().hex[:8]}"
    create_database(cluster.url(cluster.admin_user), name)
    try:
        install_platform(cluster.url(cluster.admin_user, name), use_real_auth=False)
        with psycopg.connect(cluster.url("postgres", name), row_factory=dict_row) as standin:
            standin_tables = (standin.execute(COLUMNS).fetchall(), standin.execute(UNIQUE_INDEXES).fetchall())
    finally:
        cluster.drop(name)
    assert standin_tables == (sql.execute(COLUMNS).fetchall(), sql.execute(UNIQUE_INDEXES).fetchall())
