-- public.user_merges: the audit trail of account linking.
-- One row per link that changed something (a WhatsApp profile merged into an app
-- profile, a verified phone attached to an app profile) and per automatic link that
-- was refused. Plain uuid columns, no foreign keys: the rows must outlive the merge
-- that deletes the absorbed profile, the deletion of the auth user and the profiles
-- themselves (forget_user erases a person's rows here explicitly).
--
-- The merge machinery: which rows reference a profile, and how two profiles become one.
-- The references are read from the catalog (every foreign key to public.users(id)),
-- so a table the app adds later is moved by a merge and erased by forget_user without
-- touching this code. Internals only: the callers (link_whatsapp_account, the auth
-- phone trigger, forget_user) decide who may merge what and hold the row locks.

-- tables ----------------------------------------------------------------------
create table public.user_merges (
  id uuid primary key default gen_random_uuid(),
  survivor_id uuid,
  absorbed_id uuid,
  auth_id uuid,
  phone_number text,
  moved jsonb not null default '{}'::jsonb,
  outcome text not null,
  reason text,
  triggered_by text not null,
  created_at timestamptz not null default now(),
  constraint user_merges_outcome_known check (outcome in ('merged', 'phone_attached', 'refused')),
  constraint user_merges_refusal_has_reason check (outcome <> 'refused' or reason is not null),
  constraint user_merges_triggered_by_known
    check (triggered_by in ('rpc', 'auth_trigger', 'inbound_message', 'migration', 'whatsapp_code')),
  constraint user_merges_moved_is_object check (jsonb_typeof(moved) = 'object')
);

comment on table public.user_merges is
  'Audit trail of account linking: every merge of a WhatsApp profile into an app account, every phone attached, every automatic link refused.';
comment on column public.user_merges.id is 'The audit row id.';
comment on column public.user_merges.survivor_id is
  'The profile that remains: the WhatsApp profile that absorbed the app profile, or the app profile that got the phone. No foreign key: it may be erased later.';
comment on column public.user_merges.absorbed_id is
  'The app profile merged into the survivor and deleted; null when nothing was absorbed.';
comment on column public.user_merges.auth_id is 'The Supabase Auth user whose verified phone was linked.';
comment on column public.user_merges.phone_number is 'The verified phone in E.164.';
comment on column public.user_merges.moved is
  'What the merge moved from the absorbed profile to the survivor, as {"schema.table": rows}.';
comment on column public.user_merges.outcome is
  'merged (two profiles became one), phone_attached (no profile had the phone: it was written onto the app profile) or refused.';
comment on column public.user_merges.reason is
  'Why a link was refused ("SQLSTATE: message"), or why two WhatsApp profiles were one person; null for links.';
comment on column public.user_merges.triggered_by is
  'rpc (link_whatsapp_account), auth_trigger (Supabase Auth confirmed the phone), inbound_message (a message named both profiles), whatsapp_code (a link code sent and confirmed from WhatsApp, or refused) or migration.';
comment on column public.user_merges.created_at is 'When the link happened or was refused.';

create index user_merges_survivor_id_idx on public.user_merges (survivor_id);
create index user_merges_absorbed_id_idx on public.user_merges (absorbed_id);
create index user_merges_auth_id_idx on public.user_merges (auth_id);

alter table public.user_merges enable row level security;

revoke all on table public.user_merges from anon, authenticated;
grant select on table public.user_merges to authenticated;
grant select, insert, update, delete on table public.user_merges to service_role;

-- policies --------------------------------------------------------------------
create policy "users read own merges"
on public.user_merges
for select
to authenticated
using (auth_id = (select auth.uid()));

-- helper functions ------------------------------------------------------------
create or replace function private.user_references()
returns table (table_name regclass, column_name name, constraint_name name)
language plpgsql
stable
set search_path = ''
as $$
declare
  users_id smallint;
  odd record;
begin
  select a.attnum into users_id
  from pg_catalog.pg_attribute as a
  where a.attrelid = 'public.users'::regclass and a.attname = 'id';

  -- A key on another column (auth_id, phone_number) could not follow its row: refuse
  -- rather than merge or erase around it.
  select c.conname, c.conrelid::regclass as referencing into odd
  from pg_catalog.pg_constraint as c
  where c.contype = 'f'
    and c.confrelid = 'public.users'::regclass
    and c.conparentid = 0
    and c.confkey <> array[users_id]
  order by 2, 1
  limit 1;
  if found then
    raise exception using
      errcode = '0A000',
      message = format('foreign key %I on %s references public.users by a column other than id', odd.conname, odd.referencing),
      hint = 'Reference public.users(id): profiles are merged and erased by id.';
  end if;

  return query
    select c.conrelid::regclass, a.attname, c.conname
    from pg_catalog.pg_constraint as c
    join pg_catalog.pg_attribute as a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f'
      and c.confrelid = 'public.users'::regclass
      and c.conparentid = 0  -- a partition's copy of its parent's key: the parent covers it
    order by c.conrelid::regclass::text, a.attname;
end;
$$;
comment on function private.user_references() is
  'Every (table, column, constraint) referencing public.users(id), read from the catalog; raises 0A000 for a key on any other column.';
revoke execute on function private.user_references() from public, anon, authenticated;

create or replace function private.merge_profiles(survivor_id uuid, absorbed_id uuid)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  survivor public.users;
  absorbed public.users;
  ref record;
  moved_rows bigint;
  moved jsonb := '{}'::jsonb;
  conflict text;
begin
  -- Both rows locked in id order, as every caller locks them: no deadlock between
  -- merges, and an inbound message (FOR KEY SHARE on the survivor) waits for us.
  perform 1 from public.users as u
  where u.id in (merge_profiles.survivor_id, merge_profiles.absorbed_id)
  order by u.id
  for update;
  select * into survivor from public.users as u where u.id = merge_profiles.survivor_id;
  select * into absorbed from public.users as u where u.id = merge_profiles.absorbed_id;
  if survivor.id is null or absorbed.id is null or survivor.id = absorbed.id
     or (survivor.auth_id is not null and absorbed.auth_id is not null) then
    raise exception using
      errcode = '22023',
      message = format('profiles %s and %s cannot be merged', merge_profiles.survivor_id, merge_profiles.absorbed_id),
      hint = 'Merge two distinct existing profiles, at most one of them linked to an auth user.';
  end if;

  for ref in select * from private.user_references() loop
    begin
      execute format('update %s set %I = $1 where %I = $2', ref.table_name, ref.column_name, ref.column_name)
      using survivor.id, absorbed.id;
      get diagnostics moved_rows = row_count;
    exception
      when unique_violation then
        get stacked diagnostics conflict = constraint_name;
        raise exception using
          errcode = '23505',
          message = format(
            'cannot merge profile %s into %s: moving its rows in %s would break unique constraint %s',
            absorbed.id, survivor.id, ref.table_name, conflict),
          hint = format('Both profiles have a row in %s that must stay unique: keep one, then link again. Nothing was changed.', ref.table_name);
    end;
    if moved_rows > 0 then
      moved := moved || jsonb_build_object(
        ref.table_name::text, coalesce((moved ->> ref.table_name::text)::bigint, 0) + moved_rows);
    end if;
  end loop;

  -- auth_id, email, phone and BSUID are unique: the absorbed profile goes before the
  -- survivor takes what it lacks.
  delete from public.users as u where u.id = absorbed.id;
  update public.users as u
  set auth_id = coalesce(absorbed.auth_id, u.auth_id),
      email = coalesce(absorbed.email, u.email),
      full_name = coalesce(u.full_name, absorbed.full_name),
      phone_number = coalesce(u.phone_number, absorbed.phone_number),
      whatsapp_user_id = coalesce(u.whatsapp_user_id, absorbed.whatsapp_user_id)
  where u.id = survivor.id;
  return moved;
end;
$$;
comment on function private.merge_profiles(uuid, uuid) is
  'Moves every row referencing the absorbed profile to the survivor, deletes the absorbed profile, gives the survivor its auth_id, email, phone and BSUID where the survivor has none (and its name likewise); returns {"table": rows moved}. Raises 23505 naming the table when a move breaks a unique constraint.';
revoke execute on function private.merge_profiles(uuid, uuid) from public, anon, authenticated;
