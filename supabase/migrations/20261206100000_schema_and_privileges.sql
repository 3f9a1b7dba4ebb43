-- The private schema and deny-by-default privileges.
-- Internals (trigger functions, helpers) live in `private`, which PostgREST does not
-- expose. Supabase grants every new function to anon (and PostgreSQL to PUBLIC): from
-- here on, functions this role creates are executable by nobody until a migration
-- grants them. Every function still revokes and grants explicitly next to its
-- definition, so it stays safe on a project whose defaults differ.

create schema if not exists private;
comment on schema private is
  'Internals of the identity layer: helpers and trigger functions. Not exposed by PostgREST.';
revoke all on schema private from public;

alter default privileges for role postgres revoke execute on functions from public;
alter default privileges for role postgres in schema public revoke execute on functions from anon, authenticated;
