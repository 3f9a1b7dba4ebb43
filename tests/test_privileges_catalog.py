"""Every object in the exposed schema has a declared privilege expectation per API role.

The objects are read from the catalog, so a table, view, sequence or function added
without a decision about who may use it fails here.
"""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[dict[str, Any]]

ROLES = ("anon", "authenticated", "service_role")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
EVERYTHING = frozenset(TABLE_PRIVILEGES)
READ_WRITE = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
NOTHING: frozenset[str] = frozenset()
EXECUTE = frozenset({"EXECUTE"})

# (kind, name) -> role -> privileges. Column grants are listed as "UPDATE(column)".
EXPECTED: dict[tuple[str, str], dict[str, frozenset[str]]] = {
    ("table", "public.users"): {
        "anon": NOTHING,
        "authenticated": frozenset({"SELECT", "UPDATE(full_name)"}),
        "service_role": EVERYTHING,
    },
    ("table", "public.whatsapp_messages"): {
        "anon": NOTHING,
        "authenticated": frozenset({"SELECT"}),
        "service_role": EVERYTHING,
    },
    ("function", "public.get_or_create_whatsapp_user(text,text,text)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.receive_whatsapp_message(text,text,text,text,jsonb,text)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("table", "public.user_merges"): {
        "anon": NOTHING,
        "authenticated": frozenset({"SELECT"}),
        "service_role": EVERYTHING,
    },
    ("table", "public.whatsapp_number_reassignments"): {
        "anon": NOTHING,
        # The previous owner's account reads that its number moved, never the new owner's ids.
        "authenticated": frozenset(
            {
                "SELECT(id)",
                "SELECT(phone_number)",
                "SELECT(previous_user_id)",
                "SELECT(previous_whatsapp_user_id)",
                "SELECT(reason)",
                "SELECT(created_at)",
            }
        ),
        "service_role": EVERYTHING,
    },
    ("function", "public.link_whatsapp_account()"): {
        "anon": NOTHING,
        "authenticated": EXECUTE,
        "service_role": NOTHING,
    },
    ("table", "public.whatsapp_settings"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EVERYTHING,
    },
    ("function", "public.create_whatsapp_link_code()"): {
        "anon": NOTHING,
        "authenticated": EXECUTE,
        "service_role": NOTHING,
    },
    ("function", "public.forget_user(uuid)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("table", "public.outbound_messages"): {
        "anon": NOTHING,
        "authenticated": frozenset({"SELECT"}),
        "service_role": EVERYTHING,
    },
    ("table", "public.whatsapp_opt_outs"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EVERYTHING,
    },
    ("table", "public.whatsapp_consent_keywords"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EVERYTHING,
    },
    # Messages go out under the business's sender and cost money: the backend decides, never a client.
    ("function", "public.send_whatsapp_message(uuid,text,text,text,jsonb)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.whatsapp_opted_out(uuid)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.whatsapp_window_open(uuid)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.whatsapp_messaging_state(uuid)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.claim_outbound_messages(integer,integer)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.claim_unsettled_outbound_messages(integer,integer)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.settle_outbound_message(uuid,integer,text,text,integer,text,integer)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
    ("function", "public.record_whatsapp_status(text,text,integer,uuid)"): {
        "anon": NOTHING,
        "authenticated": NOTHING,
        "service_role": EXECUTE,
    },
}

RELATIONS = """
select c.oid, c.oid::regclass::text as name,
       case c.relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'view' else 'table' end as kind
from pg_class as c
where c.relnamespace = 'public'::regnamespace
  and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
  and not exists (select from pg_depend d where d.objid = c.oid and d.deptype = 'e')
"""

FUNCTIONS = """
select p.oid, replace(p.oid::regprocedure::text, ' ', '') as name
from pg_proc as p
where p.pronamespace = 'public'::regnamespace
  and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
"""


def actual_privileges(sql: Conn) -> dict[tuple[str, str], dict[str, frozenset[str]]]:
    found: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    for rel in sql.execute(RELATIONS).fetchall():
        name = rel["name"] if "." in rel["name"] else f"public.{rel['name']}"
        per_role = {}
        for role in ROLES:
            granted = {
                p
                for p in TABLE_PRIVILEGES
                if sql.execute(
                    "select has_table_privilege(%s, %s, %s) as ok", (role, rel["oid"], p)
                ).fetchone()["ok"]
            }
            columns = sql.execute(
                "select a.attname, p.priv from pg_attribute a,"
                " unnest(array['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) as p(priv)"
                " where a.attrelid = %s and a.attnum > 0 and not a.attisdropped"
                " and has_column_privilege(%s, a.attrelid, a.attnum, p.priv)"
                " and not has_table_privilege(%s, a.attrelid, p.priv)",
                (rel["oid"], role, role),
            ).fetchall()
            granted |= {f"{c['priv']}({c['attname']})" for c in columns}
            per_role[role] = frozenset(granted)
        found[(rel["kind"], name)] = per_role
    for fn in sql.execute(FUNCTIONS).fetchall():
        name = fn["name"] if fn["name"].startswith("public.") else f"public.{fn['name']}"
        found[("function", name)] = {
            role: EXECUTE
            if sql.execute(
                "select has_function_privilege(%s, %s, 'EXECUTE') as ok", (role, fn["oid"])
            ).fetchone()["ok"]
            else NOTHING
            for role in ROLES
        }
    return found


def test_every_exposed_object_has_a_declared_expectation(sql: Conn) -> None:
    """No table, view, sequence or function exists in public without a decision about its privileges."""
    undeclared = sorted(set(actual_privileges(sql)) - set(EXPECTED))
    assert undeclared == [], f"declare privileges for: {undeclared}"


def test_declared_objects_all_exist(sql: Conn) -> None:
    """The declaration lists no object the migrations no longer create."""
    missing = sorted(set(EXPECTED) - set(actual_privileges(sql)))
    assert missing == []


def test_each_role_has_exactly_the_declared_privileges(sql: Conn) -> None:
    """Per object and role, the catalog grants exactly what is declared, no more and no less."""
    actual = actual_privileges(sql)
    differences = {
        (key, role): {"declared": sorted(EXPECTED[key][role]), "actual": sorted(actual[key][role])}
        for key in EXPECTED.keys() & actual.keys()
        for role in ROLES
        if EXPECTED[key][role] != actual[key][role]
    }
    assert differences == {}


def test_private_schema_is_closed_to_the_api_roles(sql: Conn) -> None:
    """The internals schema is unusable by anon, authenticated and service_role."""
    rows = sql.execute(
        "select r.rolname, has_schema_privilege(r.rolname, 'private', 'USAGE') as usage"
        " from pg_roles r where r.rolname = any(%s) order by 1",
        (list(ROLES),),
    ).fetchall()
    assert rows == [{"rolname": r, "usage": False} for r in sorted(ROLES)]
