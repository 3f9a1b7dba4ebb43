-- The profile trigger keeps every identity it can when one value clashes.
-- Supabase Auth lets SSO users share an address with another user, and public.users
-- holds each address once. A user inserted with a confirmed phone and an address an SSO
-- user's profile already holds made the attach path raise 23505 into Auth's own insert
-- (the user could not be created), and the other path drop the confirmed phone along
-- with the address. Now the attach path attaches without the address, and the other path
-- drops only the value that clashes: the address, or the number (held by a profile linked
-- to another account), or both.

-- triggers --------------------------------------------------------------------
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
  'After insert on auth.users: creates the public.users profile, or attaches an unlinked WhatsApp profile of the same confirmed phone; a value another profile holds is left off, never raised.';
revoke execute on function private.create_profile_for_auth_user() from public, anon, authenticated;
