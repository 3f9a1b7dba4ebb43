-- public.forget_user: a right-to-erasure request, in one transaction.
-- Erases the profile, every row that references it through a foreign key (found from
-- the catalog, so tables the app adds later are covered), the audit rows about the
-- person, and their Supabase Auth account when they have one. Rows that reference
-- those rows go by their own foreign key actions. A foreign key from public.users to
-- itself (e.g. a referrer) is left to its own on delete action: it points at other
-- people's profiles.

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

  -- An array rather than a subquery keeps each test an index condition. The number a row
  -- names is not a test: a number passes from one person to another.
  delete from public.user_merges as m
  where m.survivor_id = any (history)
     or m.absorbed_id = any (history)
     or m.auth_id = profile.auth_id;
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
  'Right to erasure: deletes the profile, every row referencing it, its audit rows (those naming it, a profile merged into it, or its auth user; never another person''s row naming the same number) and its auth user; returns the rows removed per table. PT404 when there is no such profile. Service role only.';
revoke execute on function public.forget_user(uuid) from public, anon, authenticated;
grant execute on function public.forget_user(uuid) to service_role;
