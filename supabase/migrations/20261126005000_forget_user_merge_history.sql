-- forget_user erases the person's whole audit history, found through indexes.
-- A person's audit rows name profiles that no longer exist: every profile merged into
-- theirs (a BSUID-only profile, an app profile, a number they wrote from before) left
-- rows naming it as survivor, and those rows hold the person's numbers and BSUIDs.
-- Erasure now follows the merges back (outcome 'merged' only: a refused link names
-- another person's profile) and matches the number in any equivalent form. Before,
-- the phone test was an exact match on an unindexed column, so every erasure read the
-- whole audit table.

-- tables ----------------------------------------------------------------------
create index user_merges_phone_match_key_idx on public.user_merges (private.phone_match_key(phone_number));
comment on index public.user_merges_phone_match_key_idx is
  'forget_user finds the audit rows naming a number, in any equivalent form, without reading the whole table.';

-- public rpc ------------------------------------------------------------------
create or replace function public.forget_user(user_id uuid)
returns table (table_name text, rows_removed bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  profile public.users;
  history uuid[];
  ref record;
  removed_rows bigint;
  removed jsonb := '{}'::jsonb;
begin
  if forget_user.user_id is null then
    raise exception using
      errcode = '22023',
      message = 'user_id is required',
      hint = 'Pass the id of the public.users profile to erase.';
  end if;
  select * into profile from public.users as u where u.id = forget_user.user_id for update;
  if not found then
    raise exception using
      errcode = 'PT404',
      message = format('user_id %s has no profile', forget_user.user_id),
      hint = 'The profile does not exist or was already erased.';
  end if;

  for ref in select * from private.user_references() as r where r.table_name <> 'public.users'::regclass loop
    execute format('delete from %s where %I = $1', ref.table_name, ref.column_name) using profile.id;
    get diagnostics removed_rows = row_count;
    removed := removed || jsonb_build_object(
      ref.table_name::text, coalesce((removed ->> ref.table_name::text)::bigint, 0) + removed_rows);
  end loop;

  -- The profile and every profile merged into it, however many merges back. union (not
  -- union all) ends the walk should the audit rows ever name a cycle.
  with recursive merged_into (id) as (
    select profile.id
    union
    select m.absorbed_id
    from public.user_merges as m
    join merged_into as t on m.survivor_id = t.id
    where m.outcome = 'merged' and m.absorbed_id is not null
  )
  select array_agg(t.id) into history from merged_into as t;

  -- An array rather than a subquery keeps each test an index condition.
  delete from public.user_merges as m
  where m.survivor_id = any (history)
     or m.absorbed_id = any (history)
     or m.auth_id = profile.auth_id
     or private.phone_match_key(m.phone_number) = private.phone_match_key(profile.phone_number);
  get diagnostics removed_rows = row_count;
  removed := removed || jsonb_build_object('public.user_merges', removed_rows);

  delete from public.users as u where u.id = profile.id;
  removed := removed || jsonb_build_object('public.users', 1);

  -- After the profile: the auth deletion trigger then finds nothing left to keep.
  if profile.auth_id is not null then
    delete from auth.users as a where a.id = profile.auth_id;
    get diagnostics removed_rows = row_count;
    removed := removed || jsonb_build_object('auth.users', removed_rows);
  end if;

  return query
    select e.key, e.value::bigint
    from jsonb_each_text(removed) as e
    order by e.key;
end;
$$;

comment on function public.forget_user(uuid) is
  'Right to erasure: deletes the profile, every row referencing it, its audit rows (those of the profiles merged into it and those naming its number in any equivalent form) and its auth user; returns the rows removed per table. PT404 when there is no such profile. Service role only.';
revoke execute on function public.forget_user(uuid) from public, anon, authenticated;
grant execute on function public.forget_user(uuid) to service_role;
