"""Build a database from each of two migrations folders and compare their catalogs.

    .venv/bin/python scripts/catalog_snapshot.py OLD_FOLDER NEW_FOLDER
    .venv/bin/python scripts/catalog_snapshot.py FOLDER              # print one catalog

Each folder is applied on the local platform (roles, platform layer, Auth's tables) as
`supabase db reset` applies it, without the seed. The catalog covers the public and
private schemas: functions with their full definitions, owners, ACLs, security and
settings; tables with columns, defaults, constraints, indexes, RLS, policies, triggers
and comments; types, sequences, views; triggers on auth tables; default privileges; and
the rows the migrations themselves insert. Exit status 0 when the two catalogs are equal.
Used to prove that a squash of the migration history changed nothing.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glue.devdb import EmbeddedPostgres, apply_migrations, install_platform, install_roles  # noqa: E402
from glue.devdb.platform import create_database  # noqa: E402

OURS = "('public', 'private')"

# Each query yields (key, facts): one line of the catalog per object, facts as stable text.
QUERIES = [
    f"""
    select 'schema ' || nspname, concat_ws(' | ', 'owner=' || pg_get_userbyid(nspowner),
           'acl=' || nspacl::text, 'comment=' || obj_description(oid, 'pg_namespace'))
    from pg_namespace where nspname in {OURS}
    """,
    f"""
    select 'function ' || p.oid::regprocedure::text,
           concat_ws(E'\\n', 'owner=' || pg_get_userbyid(p.proowner), 'acl=' || p.proacl::text,
                     'comment=' || obj_description(p.oid, 'pg_proc'), pg_get_functiondef(p.oid))
    from pg_proc as p
    where p.pronamespace::regnamespace::text in {OURS}
    """,
    f"""
    select 'relation ' || c.oid::regclass::text,
           concat_ws(' | ', 'kind=' || c.relkind::text, 'owner=' || pg_get_userbyid(c.relowner),
                     'acl=' || c.relacl::text, 'rls=' || c.relrowsecurity,
                     'force_rls=' || c.relforcerowsecurity, 'options=' || c.reloptions::text,
                     'comment=' || obj_description(c.oid, 'pg_class'),
                     'view=' || pg_get_viewdef(c.oid) )
    from pg_class as c
    where c.relnamespace::regnamespace::text in {OURS} and c.relkind not in ('i', 'I')
    """,
    f"""
    select 'column ' || a.attrelid::regclass::text || '.' || a.attname,
           concat_ws(' | ', 'position=' || a.attnum, format_type(a.atttypid, a.atttypmod),
                     case when a.attnotnull then 'not null' end,
                     'default=' || pg_get_expr(d.adbin, d.adrelid),
                     case when a.attgenerated::text <> '' then 'generated=' || a.attgenerated::text end,
                     case when a.attidentity::text <> '' then 'identity=' || a.attidentity::text end,
                     'collation=' || nullif(a.attcollation, 0)::regcollation::text,
                     'acl=' || a.attacl::text, 'comment=' || col_description(a.attrelid, a.attnum))
    from pg_attribute as a
    join pg_class as c on c.oid = a.attrelid
    left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where c.relnamespace::regnamespace::text in {OURS} and c.relkind in ('r', 'p', 'v', 'm', 'f')
      and a.attnum > 0 and not a.attisdropped
    """,
    f"""
    select 'constraint ' || coalesce(r.conrelid::regclass::text, r.contypid::regtype::text) || ': '
           || r.conname,
           concat_ws(' | ', pg_get_constraintdef(r.oid), 'comment=' || obj_description(r.oid, 'pg_constraint'))
    from pg_constraint as r
    where r.connamespace::regnamespace::text in {OURS}
    """,
    f"""
    select 'index ' || i.indexrelid::regclass::text,
           concat_ws(' | ', pg_get_indexdef(i.indexrelid), 'comment=' || obj_description(i.indexrelid, 'pg_class'))
    from pg_index as i join pg_class as c on c.oid = i.indexrelid
    where c.relnamespace::regnamespace::text in {OURS}
    """,
    f"""
    select 'policy ' || schemaname || '.' || tablename || ': ' || policyname,
           concat_ws(' | ', permissive, cmd, roles::text, 'using=' || qual, 'check=' || with_check,
                     'comment=' || (select obj_description(p.oid, 'pg_policy') from pg_policy as p
                                    where p.polname = policyname
                                      and p.polrelid = (schemaname || '.' || tablename)::regclass))
    from pg_policies where schemaname in {OURS}
    """,
    f"""
    select 'trigger ' || t.tgrelid::regclass::text || ': ' || t.tgname,
           concat_ws(' | ', pg_get_triggerdef(t.oid), 'enabled=' || t.tgenabled::text,
                     'comment=' || obj_description(t.oid, 'pg_trigger'))
    from pg_trigger as t join pg_class as c on c.oid = t.tgrelid
    where not t.tgisinternal
      and (c.relnamespace::regnamespace::text in {OURS} or c.relnamespace::regnamespace::text = 'auth')
    """,
    f"""
    select 'type ' || t.oid::regtype::text,
           concat_ws(' | ', 'kind=' || t.typtype::text, 'owner=' || pg_get_userbyid(t.typowner),
                     'acl=' || t.typacl::text, 'comment=' || obj_description(t.oid, 'pg_type'),
                     'labels=' || (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
                                   from pg_enum as e where e.enumtypid = t.oid),
                     'base=' || nullif(t.typbasetype, 0)::regtype::text,
                     'default=' || t.typdefault)
    from pg_type as t
    where t.typnamespace::regnamespace::text in {OURS}
      and t.typtype in ('e', 'd', 'c', 'r', 'm')
      and (t.typrelid = 0 or (select relkind from pg_class where oid = t.typrelid) = 'c')
    """,
    f"""
    select 'sequence ' || s.seqrelid::regclass::text,
           concat_ws(' | ', s.seqtypid::regtype::text, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                     s.seqcache, s.seqcycle,
                     'owned by=' || (select d.refobjid::regclass::text || '.' || d.refobjsubid
                                     from pg_depend as d
                                     where d.objid = s.seqrelid and d.classid = 'pg_class'::regclass
                                       and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    from pg_sequence as s join pg_class as c on c.oid = s.seqrelid
    where c.relnamespace::regnamespace::text in {OURS}
    """,
    """
    select 'default privileges ' || pg_get_userbyid(d.defaclrole) || ' in '
           || coalesce(d.defaclnamespace::regnamespace::text, '*') || ' on ' || d.defaclobjtype::text,
           d.defaclacl::text
    from pg_default_acl as d
    """,
    """
    select 'auth grant ' || c.oid::regclass::text, concat_ws(' | ', 'acl=' || c.relacl::text)
    from pg_class as c where c.relnamespace = 'auth'::regnamespace and c.relkind in ('r', 'v')
    """,
    """
    select 'auth function ' || p.oid::regprocedure::text,
           concat_ws(' | ', 'owner=' || pg_get_userbyid(p.proowner), 'acl=' || p.proacl::text)
    from pg_proc as p where p.pronamespace = 'auth'::regnamespace
    """,
    """
    select 'extension ' || e.extname, e.extnamespace::regnamespace::text || ' ' || e.extversion
    from pg_extension as e
    """,
    f"""
    select 'publication table ' || pubname || ': ' || schemaname || '.' || tablename, ''
    from pg_publication_tables where schemaname in {OURS}
    """,
]

# The rows a fresh install holds are part of what the migrations define (settings, defaults).
TABLES = f"""
select c.oid::regclass::text from pg_class as c
where c.relnamespace::regnamespace::text in {OURS} and c.relkind in ('r', 'p')
order by 1
"""


def catalog(url: str) -> dict[str, str]:
    """The normalized catalog of the database at `url`, one entry per object."""
    entries: dict[str, str] = {}
    with psycopg.connect(url) as conn:
        for query in QUERIES:
            for key, facts in conn.execute(query.encode()).fetchall():
                entries[str(key)] = str(facts)
        for (table,) in conn.execute(TABLES.encode()).fetchall():
            rows = conn.execute(f"select to_jsonb(t)::text from {table} as t order by 1".encode()).fetchall()
            entries[f"rows {table}"] = "\n".join(str(row[0]) for row in rows)
    return entries


def build(server: EmbeddedPostgres, name: str, folder: Path) -> dict[str, str]:
    """A new database `name` with the platform layer and the migrations in `folder`; its catalog."""
    create_database(server.url("supabase_admin"), name)
    install_platform(server.url("supabase_admin", name))
    apply_migrations(server.url("postgres", name), seed=False, directory=folder)
    return catalog(server.url("supabase_admin", name))


def differences(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """A readable diff per object that is missing from one side or differs."""
    found = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            found.append(f"- only in the old catalog: {key}")
        elif key not in old:
            found.append(f"+ only in the new catalog: {key}")
        elif old[key] != new[key]:
            diff = difflib.unified_diff(
                old[key].splitlines(), new[key].splitlines(), "old", "new", lineterm=""
            )
            found.append(f"~ differs: {key}\n" + "\n".join(f"    {line}" for line in diff))
    return found


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    folders = [Path(arg).resolve() for arg in argv[1:]]
    server = EmbeddedPostgres()
    server.start()
    try:
        install_roles(server.url("supabase_admin"))
        catalogs = [build(server, f"catalog_{n}", folder) for n, folder in enumerate(folders)]
    finally:
        server.destroy()
    if len(catalogs) == 1:
        for key, facts in sorted(catalogs[0].items()):
            print(f"{key}\n    " + facts.replace("\n", "\n    "))
        return 0
    old, new = catalogs
    found = differences(old, new)
    for line in found:
        print(line)
    print(f"{len(old)} objects in the old catalog, {len(new)} in the new; {len(found)} differ")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
