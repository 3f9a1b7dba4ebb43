-- Keeps public.users in step with auth.users, inside Supabase Auth's own transaction:
-- a profile for every new auth user, the email mirrored when it changes, and the
-- profile kept (as WhatsApp-only) or removed when the auth user is deleted.
-- Supabase Auth writes as supabase_auth_admin, which has no rights on public: these
-- functions are security definer with an empty search_path. They must never fail,
-- or sign-up fails with "Database error saving new user".

-- new auth user ---------------------------------------------------------------
create or replace function private.create_profile_for_auth_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  profile_id uuid;
  new_name text := nullif(btrim(new.raw_user_meta_data ->> 'full_name'), '');
  new_email text := nullif(new.email, '');
  new_phone text;
begin
  -- A user created with an already confirmed phone takes over the unlinked
  -- WhatsApp profile of that number instead of getting a second profile.
  if new.phone_confirmed_at is not null and coalesce(new.phone, '') <> '' then
    new_phone := private.try_normalize_phone(new.phone);
    update public.users as u
    set auth_id = new.id,
        email = coalesce(u.email, new_email),
        full_name = coalesce(u.full_name, new_name)
    where u.phone_number = new_phone and u.auth_id is null
    returning u.id into profile_id;
    if profile_id is not null then
      return new;
    end if;
  end if;

  -- Any unique clash (an SSO user sharing an email, a number another profile holds)
  -- drops the clashing value rather than the sign-up.
  insert into public.users (auth_id, email, full_name, phone_number)
  values (new.id, new_email, new_name, new_phone)
  on conflict do nothing
  returning id into profile_id;
  if profile_id is null then
    insert into public.users (auth_id, full_name)
    values (new.id, new_name)
    on conflict do nothing;
  end if;
  return new;
end;
$$;

comment on function private.create_profile_for_auth_user() is
  'After insert on auth.users: creates the public.users profile, or attaches an unlinked WhatsApp profile of the same confirmed phone.';
revoke execute on function private.create_profile_for_auth_user() from public, anon, authenticated;

create trigger on_auth_user_created
after insert on auth.users
for each row execute function private.create_profile_for_auth_user();

-- email change ------------------------------------------------------------------
create or replace function private.mirror_auth_email()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  begin
    update public.users
    set email = nullif(new.email, '')
    where auth_id = new.id;
  exception
    when unique_violation then
      null;  -- another profile holds the address (SSO users may share one): keep ours as it was
  end;
  return new;
end;
$$;

comment on function private.mirror_auth_email() is
  'After a confirmed email change in auth.users: copies the new address to the profile.';
revoke execute on function private.mirror_auth_email() from public, anon, authenticated;

create trigger on_auth_user_email_changed
after update of email on auth.users
for each row
when (old.email is distinct from new.email)
execute function private.mirror_auth_email();

-- deletion ----------------------------------------------------------------------
create or replace function private.release_profile_of_deleted_auth_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A profile with a phone stays: the person can still message us on WhatsApp.
  update public.users
  set auth_id = null, email = null
  where auth_id = old.id and phone_number is not null;
  delete from public.users
  where auth_id = old.id;
  return old;
end;
$$;

comment on function private.release_profile_of_deleted_auth_user() is
  'Before delete on auth.users: keeps the profile as WhatsApp-only when it has a phone, removes it otherwise.';
revoke execute on function private.release_profile_of_deleted_auth_user() from public, anon, authenticated;

create trigger on_auth_user_deleted
before delete on auth.users
for each row execute function private.release_profile_of_deleted_auth_user();
