-- The per-database part of Supabase's platform layer, as a hosted project has it
-- before any user migration runs. Run as supabase_admin in a database owned by postgres.
-- Dev/test infrastructure only: never part of supabase/migrations.

-- extensions ------------------------------------------------------------------
create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;

-- public: Supabase's default privileges, the trap a forgotten revoke falls into --
grant usage on schema public to anon, authenticated, service_role;
grant all on schema public to postgres;

alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on functions to anon, authenticated, service_role;

-- auth ------------------------------------------------------------------------
create schema if not exists auth authorization supabase_admin;
grant usage on schema auth to anon, authenticated, service_role, postgres;
grant all on schema auth to supabase_auth_admin;
-- Supabase's own platform grants postgres everything Auth creates here (seed files insert
-- into auth.users, our migrations put triggers and foreign keys on it).
alter default privileges for role supabase_auth_admin in schema auth grant all on tables to postgres;
alter default privileges for role supabase_auth_admin in schema auth grant all on sequences to postgres;
alter default privileges for role supabase_auth_admin in schema auth grant all on routines to postgres;
