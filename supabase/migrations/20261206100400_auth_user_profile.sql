-- Keeps public.users in step with auth.users, inside Supabase Auth's own transaction:
-- a profile for every new auth user, the email mirrored when it changes, and the
-- profile kept (as WhatsApp-only) or removed when the auth user is deleted.
-- Supabase Auth writes as supabase_auth_admin, which has no rights on public: these
-- functions are security definer with an empty search_path. They must never fail,
-- or sign-up fails with "Database error saving new user".

-- trigger functions -----------------------------------------------------------
create or replace function private.create_profile_for_auth_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  profile_id uuid;
  new_name text := nullif(btrim(new.raw_user_meta_data ->> 'full_name'), '');
  -- An address shows on the profile once Supabase Auth has confirmed it.
  new_email text := case when new.email_confirmed_at is not null then nullif(new.email, '') end;
  new_phone text;
begin
  -- A user created with an already confirmed phone takes over the unlinked
  -- WhatsApp profile of that number (in any equivalent form, keeping WhatsApp's)
  -- instead of getting a second profile.
  if new.phone_confirmed_at is not null and coalesce(new.phone, '') <> '' then
    new_phone := private.try_normalize_phone(new.phone);
    begin
      update public.users as u
      set auth_id = new.id,
          email = coalesce(u.email, new_email),
          full_name = coalesce(u.full_name, new_name)
      where private.phone_match_key(u.phone_number) = private.phone_match_key(new_phone) and u.auth_id is null
      returning u.id into profile_id;
    exception
      when unique_violation then
        -- Another profile holds the address (SSO users may share one): attach without it.
        update public.users as u
        set auth_id = new.id,
            full_name = coalesce(u.full_name, new_name)
        where private.phone_match_key(u.phone_number) = private.phone_match_key(new_phone) and u.auth_id is null
        returning u.id into profile_id;
    end;
    if profile_id is not null then
      return new;
    end if;
  end if;

  -- A unique clash drops the clashing value alone: first both, then without the address,
  -- then without the number, then neither.
  insert into public.users (auth_id, email, full_name, phone_number)
  values (new.id, new_email, new_name, new_phone)
  on conflict do nothing
  returning id into profile_id;
  if profile_id is null and new_email is not null then
    insert into public.users (auth_id, full_name, phone_number)
    values (new.id, new_name, new_phone)
    on conflict do nothing
    returning id into profile_id;
  end if;
  if profile_id is null and new_phone is not null then
    insert into public.users (auth_id, email, full_name)
    values (new.id, new_email, new_name)
    on conflict do nothing
    returning id into profile_id;
  end if;
  if profile_id is null then
    insert into public.users (auth_id, full_name)
    values (new.id, new_name)
    on conflict do nothing;
  end if;
  return new;
end;
$$;
comment on function private.create_profile_for_auth_user() is
  'After insert on auth.users: creates the public.users profile (with the email only if already confirmed), or attaches an unlinked WhatsApp profile of the same confirmed phone; a value another profile holds is left off, never raised.';
revoke execute on function private.create_profile_for_auth_user() from public, anon, authenticated;

create trigger on_auth_user_created
after insert on auth.users
for each row execute function private.create_profile_for_auth_user();

create or replace function private.mirror_auth_email()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  begin
    update public.users
    set email = case when new.email_confirmed_at is not null then nullif(new.email, '') end
    where auth_id = new.id;
  exception
    when unique_violation then
      null;  -- another profile holds the address (SSO users may share one): keep ours as it was
  end;
  return new;
end;
$$;
comment on function private.mirror_auth_email() is
  'After Supabase Auth changes or confirms an email: the profile shows the address when it is confirmed, none otherwise.';
revoke execute on function private.mirror_auth_email() from public, anon, authenticated;

create or replace trigger on_auth_user_email_changed
after update of email, email_confirmed_at on auth.users
for each row
when (
  old.email is distinct from new.email
  or (old.email_confirmed_at is null) <> (new.email_confirmed_at is null)
)
execute function private.mirror_auth_email();

create or replace function private.release_profile_of_deleted_auth_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A profile with a phone or a BSUID stays: the person can still message us on WhatsApp.
  update public.users
  set auth_id = null, email = null
  where auth_id = old.id and (phone_number is not null or whatsapp_user_id is not null);
  delete from public.users
  where auth_id = old.id;
  return old;
end;
$$;
comment on function private.release_profile_of_deleted_auth_user() is
  'Before delete on auth.users: keeps the profile as WhatsApp-only when it has a phone or BSUID, removes it otherwise.';
revoke execute on function private.release_profile_of_deleted_auth_user() from public, anon, authenticated;

create trigger on_auth_user_deleted
before delete on auth.users
for each row execute function private.release_profile_of_deleted_auth_user();
