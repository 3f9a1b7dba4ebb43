"""`glue doctor`: configuration, database reachability, migrations, exposed tables and the token, one verdict per line.

Never prints a secret: tokens and keys are reported by presence and length only, URLs without password.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pydantic import ValidationError

from glue.gateway import RPC_SIGNATURE, SupabaseGateway
from glue.hooks import load_hook
from glue.settings import Settings

Verdict = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.verdict:<4}  {self.name}: {self.detail}"


def redact(url: str) -> str:
    """A connection URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _local_migrations() -> list[str] | None:
    try:
        from glue.devdb.platform import migrations, supabase_dir

        if not (supabase_dir() / "migrations").is_dir():
            return None
        return [m.version for m in migrations()]
    except Exception:
        return None


def check_settings_fields(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    if not token:
        checks.append(Check("FAIL", "TWILIO_AUTH_TOKEN", "not set: every webhook would get 403"))
    elif len(token) != 32:
        checks.append(Check("warn", "TWILIO_AUTH_TOKEN", f"set ({len(token)} chars; Twilio's are 32)"))
    else:
        checks.append(Check("ok", "TWILIO_AUTH_TOKEN", "set (32 chars)"))
    if settings.twilio_auth_token_secondary is not None:
        checks.append(Check("ok", "TWILIO_AUTH_TOKEN_SECONDARY", "set: either token is accepted (rotation)"))
    if settings.public_base_url:
        verdict: Verdict = "ok" if settings.public_base_url.startswith("https://") else "warn"
        detail = f"signatures checked against {settings.public_base_url}"
        checks.append(Check(verdict, "PUBLIC_BASE_URL", detail))
    elif settings.trust_forwarded_headers:
        checks.append(Check("ok", "PUBLIC_BASE_URL", "unset; X-Forwarded-Proto/Host are trusted"))
    elif settings.trust_host_header:
        detail = "unset; TRUST_HOST_HEADER=true checks signatures against the Host header (local use only)"
        checks.append(Check("warn", "PUBLIC_BASE_URL", detail))
    else:
        detail = (
            "not set: glue serve refuses to start; set it to the URL Twilio calls (without /twilio/webhook),"
            " or TRUST_FORWARDED_HEADERS=true behind a proxy you control"
        )
        checks.append(Check("FAIL", "PUBLIC_BASE_URL", detail))
    if settings.reply_hook:
        try:
            load_hook(settings.reply_hook)
            checks.append(Check("ok", "REPLY_HOOK", f"{settings.reply_hook} imports"))
        except Exception as error:
            detail = f"{settings.reply_hook}: {type(error).__name__}: {error}"
            checks.append(Check("FAIL", "REPLY_HOOK", detail))
    return checks


# Tables in public that PostgREST serves to anon or authenticated while row level security is off: every
# row is then anyone's to read and write with the anon key. Supabase grants new tables in public to both
# roles by default, so an application's table is exposed unless it switches RLS on or revokes the grants.
EXPOSED_TABLES = """
select format('%I.%I', n.nspname, c.relname) as name,
       array(select r.rolname::text from pg_roles as r
             where r.rolname in ('anon', 'authenticated')
               and (has_table_privilege(r.oid, c.oid, 'select, insert, update, delete, truncate, references, trigger')
                    or has_any_column_privilege(r.oid, c.oid, 'select, insert, update, references'))
             order by r.rolname) as roles,
       exists (select 1 from pg_constraint as k
               where k.conrelid = c.oid and k.contype = 'f' and k.confrelid = to_regclass('public.users'))
         as references_users
from pg_class as c
join pg_namespace as n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
order by 1
"""


def check_exposed_tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[Check]:
    """One FAIL per table in public that anon or authenticated may use with row level security off."""
    checks: list[Check] = []
    rows = cast(list[tuple[str, list[str], bool]], conn.execute(EXPOSED_TABLES).fetchall())
    for name, roles, references_users in rows:
        if not roles:
            continue  # service role only: not served to clients
        why = (
            " (it references public.users: a merge moves its rows to the merged profile)"
            if references_users
            else ""
        )
        detail = (
            f"{name} has row level security off and {', '.join(roles)} may use it{why};"
            f" run 'alter table {name} enable row level security;' and add policies,"
            f" or 'revoke all on {name} from anon, authenticated;'"
        )
        checks.append(Check("FAIL", "tables", detail))
    if not checks:
        detail = "every table in public that anon or authenticated may use has row level security on"
        checks.append(Check("ok", "tables", detail))
    return checks


def check_psycopg(url: str, timeout: float) -> list[Check]:
    checks: list[Check] = []
    shown = redact(url)
    try:
        conn = psycopg.connect(
            url, connect_timeout=max(1, int(timeout)), prepare_threshold=None, autocommit=True
        )
    except psycopg.Error as error:
        return [Check("FAIL", "database", f"{shown} unreachable: {str(error).strip().splitlines()[0]}")]
    with conn:
        pooler = " (transaction pooler: no prepared statements)" if urlsplit(url).port == 6543 else ""
        checks.append(Check("ok", "database", f"{shown} answers{pooler}"))
        row = conn.execute(
            "select p is not null, p is not null and has_function_privilege(p, 'execute')"
            " from to_regprocedure(%s) as p",
            (RPC_SIGNATURE,),
        ).fetchone()
        assert row is not None
        if not row[0]:
            checks.append(Check("FAIL", "rpc", f"{RPC_SIGNATURE} is missing: apply the migrations"))
        elif not row[1]:
            checks.append(Check("FAIL", "rpc", f"this login may not execute {RPC_SIGNATURE}"))
        else:
            checks.append(Check("ok", "rpc", f"{RPC_SIGNATURE} is callable"))
        checks += check_exposed_tables(conn)
        local = _local_migrations()
        try:
            rows = conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
            applied = {r[0] for r in rows}
        except psycopg.Error:
            checks.append(Check("warn", "migrations", "no supabase_migrations.schema_migrations table"))
            return checks
        if local is None:
            detail = f"{len(applied)} applied (no local supabase/ to compare)"
            checks.append(Check("ok", "migrations", detail))
        else:
            missing = [v for v in local if v not in applied]
            if missing:
                detail = f"{len(missing)} of {len(local)} not applied: {', '.join(missing)}"
                checks.append(Check("FAIL", "migrations", detail))
            else:
                checks.append(Check("ok", "migrations", f"all {len(local)} local migrations applied"))
    return checks


def check_supabase(settings: Settings) -> list[Check]:
    assert settings.supabase_url is not None and settings.supabase_service_role_key is not None
    gateway = SupabaseGateway(
        settings.supabase_url, settings.supabase_service_role_key.get_secret_value(), settings.db_timeout
    )

    async def probe() -> None:
        await gateway.open()
        try:
            await gateway.check_ready()
        finally:
            await gateway.close()

    try:
        asyncio.run(probe())
    except Exception as error:
        return [Check("FAIL", "database", f"{settings.supabase_url}: {type(error).__name__}: {error}")]
    return [
        Check("ok", "database", f"{settings.supabase_url} answers as the service role"),
        Check("ok", "rpc", f"{RPC_SIGNATURE} is callable (migrations applied)"),
        Check("warn", "tables", "not checked through SUPABASE_URL: run glue doctor with DATABASE_URL"),
    ]


def run_checks() -> list[Check]:
    """Every check, in order; stops after the configuration if it does not load."""
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        return [Check("FAIL", "configuration", problems)]
    checks = [Check("ok", "configuration", "loaded")]
    checks += check_settings_fields(settings)
    kind = settings.gateway_kind()
    if kind == "psycopg":
        assert settings.database_url is not None
        checks += check_psycopg(settings.database_url.get_secret_value(), settings.db_timeout)
    elif kind == "supabase":
        checks += check_supabase(settings)
    else:
        checks.append(
            Check("FAIL", "database", "set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
        )
    return checks
