-- The profile shows an email only once Supabase Auth has confirmed it.
-- The address of a sign-up was mirrored into public.users.email at once, confirmed or
-- not, and the unique index on it let an unconfirmed sign-up hold the address: whoever
-- typed someone else's address kept its owner's profile (an SSO user, say) from showing
-- it. Now the insert trigger takes the address only when email_confirmed_at is set, and
-- the mirror follows email_confirmed_at as well as email, so the confirmation Auth writes
-- in a later UPDATE (sign-up confirmation, a phone user's first address) brings it in.
-- Profiles holding an address Auth never confirmed lose it; an address so freed goes to
-- the earliest account that confirmed it and whose profile had to go without.

-- data ------------------------------------------------------------------------
update public.users as p
set email = null
from auth.users as a
where a.id = p.auth_id and p.email is not null and a.email_confirmed_at is null;

with freed as (
  select distinct on (lower(a.email))
    a.id,
    a.email
  from auth.users as a
  inner join public.users as p on a.id = p.auth_id
  where p.email is null and a.email_confirmed_at is not null and coalesce(a.email, '') <> ''
    and not exists (select from public.users as o where lower(o.email) = lower(a.email))
  order by lower(a.email), a.created_at, a.id
)

update public.users as p
set email = freed.email
from freed
where p.auth_id = freed.id;

-- tables ----------------------------------------------------------------------
comment on column public.users.email is
  'The Auth email once Supabase Auth has confirmed it (email_confirmed_at), mirrored from auth.users; unique regardless of case.';

-- helper functions ------------------------------------------------------------
create or replace function private.link_verified_phone(auth_user_id uuid, triggered_by text)
returns public.users
language plpgsql
set search_path = ''
as $$
declare
  account record;
  verified_phone text;
  caller public.users;
  holder public.users;
  fresh_caller public.users;
  fresh_holder public.users;
  result public.users;
  moved jsonb;
begin
  -- Waits for an update of this auth user in flight (a phone confirmation) and keeps
  -- the user from being deleted under us.
  select u.phone, u.phone_confirmed_at,
         case when u.email_confirmed_at is not null then nullif(u.email, '') end as email
  into account
  from auth.users as u
  where u.id = link_verified_phone.auth_user_id
  for key share;
  if not found or account.phone_confirmed_at is null or coalesce(account.phone, '') = '' then
    raise exception using
      errcode = 'PT412',
      message = 'phone must be verified before linking: this account has no confirmed phone',
      hint = 'Call auth.updateUser({ phone }), then auth.verifyOtp({ phone, token, type: ''phone_change'' }), then link again.';
  end if;
  verified_phone := private.normalize_phone(account.phone, 'auth.users.phone');

  for attempt in 1..3 loop
    select * into caller from public.users as u where u.auth_id = link_verified_phone.auth_user_id;
    select * into holder from public.users as u
    where private.phone_match_key(u.phone_number) = private.phone_match_key(verified_phone);

    if holder.auth_id = link_verified_phone.auth_user_id then
      return holder;  -- already linked: nothing to do
    end if;
    if holder.auth_id is not null then
      raise exception using
        errcode = 'PT409',
        message = format('phone %s is linked to another account', verified_phone),
        hint = 'Sign in with the account that owns this number, or ask support to unlink it.';
    end if;

    -- Lock what we found, in id order, then check nothing moved before we got the locks.
    perform 1 from public.users as u
    where u.id in (caller.id, holder.id)
    order by u.id
    for update;
    select * into fresh_caller from public.users as u where u.auth_id = link_verified_phone.auth_user_id;
    select * into fresh_holder from public.users as u
    where private.phone_match_key(u.phone_number) = private.phone_match_key(verified_phone);
    if fresh_caller.id is distinct from caller.id
       or fresh_holder.id is distinct from holder.id
       or fresh_holder.auth_id is distinct from holder.auth_id then
      continue;  -- a concurrent link or erasure got there first: decide again
    end if;

    if holder.id is null then
      -- Nobody has written from this number yet: the number goes onto the app profile
      -- (or a profile is made, for an auth user that predates the profile trigger).
      begin
        if caller.id is null then
          insert into public.users (auth_id, phone_number, email)
          values (link_verified_phone.auth_user_id, verified_phone, account.email)
          returning * into result;
        else
          update public.users as u
          set phone_number = verified_phone
          where u.id = caller.id
          returning * into result;
        end if;
      exception
        when unique_violation then
          continue;  -- a first WhatsApp message created the number's profile meanwhile: merge with it
      end;
      insert into public.user_merges (survivor_id, auth_id, phone_number, outcome, triggered_by)
      values (result.id, link_verified_phone.auth_user_id, verified_phone, 'phone_attached', link_verified_phone.triggered_by);
      return result;
    end if;

    if caller.id is null then
      -- An auth user without a profile (it predates the profile trigger) takes the
      -- WhatsApp profile over, with its email unless another profile holds that address.
      update public.users as u
      set auth_id = link_verified_phone.auth_user_id,
          email = coalesce(u.email, (
            select account.email
            where not exists (select from public.users as o where lower(o.email) = lower(account.email))
          ))
      where u.id = holder.id;
      moved := '{}'::jsonb;
    else
      moved := private.merge_profiles(holder.id, caller.id);
    end if;
    select * into result from public.users as u where u.id = holder.id;
    insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, moved, outcome, triggered_by)
    values (result.id, caller.id, link_verified_phone.auth_user_id, verified_phone, moved, 'merged', link_verified_phone.triggered_by);
    return result;
  end loop;

  raise exception using
    errcode = '40001',
    message = format('could not settle the profile of phone %s; retry', verified_phone),
    hint = 'Concurrent changes to these profiles kept moving; call link_whatsapp_account again.';
end;
$$;

comment on function private.link_verified_phone(uuid, text) is
  'Links the auth user''s confirmed phone: merges the unlinked WhatsApp profile of that number with the user''s profile, or writes the number onto it; audited in public.user_merges. Raises PT412 (no confirmed phone) or PT409 (number linked to another account).';
revoke execute on function private.link_verified_phone(uuid, text) from public, anon, authenticated;

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
