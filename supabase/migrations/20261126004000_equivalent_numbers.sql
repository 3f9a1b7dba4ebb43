-- One person, one profile across country-specific forms of one mobile number.
-- WhatsApp and Supabase Auth can write the same person's number differently (Brazil's
-- ninth digit, Mexico's +521, Argentina's +549: see private.phone_match_key). From
-- here on, uniqueness and every lookup compare private.phone_match_key(phone_number):
-- the WhatsApp sender and the app user who verified the other form are one profile.
-- The stored phone_number keeps the form WhatsApp writes from, the one replies go to.
-- Existing profiles whose numbers now collide are merged first, through the same
-- merge as account linking, and audited with the reason "equivalent number".

-- data ------------------------------------------------------------------------
do $$
declare
  colliding record;
  survivor public.users;
  other public.users;
  moved jsonb;
begin
  for colliding in
    select private.phone_match_key(u.phone_number) as match_key
    from public.users as u
    where u.phone_number is not null
    group by 1
    having count(*) > 1
  loop
    -- The survivor is the form WhatsApp wrote from last (replies go there), else the oldest.
    select u.* into survivor
    from public.users as u
    where private.phone_match_key(u.phone_number) = colliding.match_key
    order by
      (select max(m.received_at) from public.whatsapp_messages as m where m.user_id = u.id) desc nulls last,
      u.created_at,
      u.id
    limit 1;

    for other in
      select u.* from public.users as u
      where private.phone_match_key(u.phone_number) = colliding.match_key and u.id <> survivor.id
      order by u.created_at, u.id
    loop
      if survivor.auth_id is not null and other.auth_id is not null then
        -- Two accounts verified two forms of one number: accounts are not ours to join.
        -- The number stays with the survivor; the other keeps its account and messages.
        update public.users as u set phone_number = null where u.id = other.id;
        insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, outcome, reason, triggered_by)
        values (
          survivor.id, other.id, other.auth_id, other.phone_number, 'refused',
          format('equivalent number: %s and %s belong to two accounts; %s was removed from the second profile',
            survivor.phone_number, other.phone_number, other.phone_number),
          'migration'
        );
      else
        moved := private.merge_profiles(survivor.id, other.id);
        insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, moved, outcome, reason, triggered_by)
        values (
          survivor.id, other.id, coalesce(survivor.auth_id, other.auth_id), survivor.phone_number, moved, 'merged',
          format('equivalent number: %s and %s', survivor.phone_number, other.phone_number),
          'migration'
        );
        select u.* into survivor from public.users as u where u.id = survivor.id;
      end if;
    end loop;
  end loop;
end;
$$;

-- tables ----------------------------------------------------------------------
alter table public.users drop constraint users_phone_number_key;
-- An expression index rather than a stored key column: a stored generated column is
-- recomputed on every update, as the updating role, and the API roles may not call
-- functions in private. Lookups compute the key once and compare it to the index.
create unique index users_phone_match_key on public.users (private.phone_match_key(phone_number));
comment on index public.users_phone_match_key is
  'One profile per number, whatever equivalent form (private.phone_match_key) WhatsApp or Supabase Auth wrote it in.';
comment on column public.users.phone_number is
  'The WhatsApp number in E.164, in the form WhatsApp writes from (replies go there); unique up to equivalent forms. Null for app users who have not verified a phone.';

-- helper functions ------------------------------------------------------------
create or replace function private.whatsapp_user(
  phone text,
  profile_name text default null,
  whatsapp_user_id text default null,
  lock_found boolean default false
)
returns public.whatsapp_sender
language plpgsql
set search_path = ''
as $$
declare
  -- Validated in this order: the phone, then the BSUID, then (first thing in the loop) that
  -- there is one of them. What Twilio sends (E.164, perhaps after 'whatsapp:') is its own
  -- normal form, and a number outside +55, +52 and +54 is its own key. Both are decided
  -- here, by the same tests as the first lines of normalize_phone and phone_match_key,
  -- because a call into a function with a pinned search_path costs about 2 us, and those
  -- two calls were a seventh of a known sender's lookup (BENCHMARKS.md).
  -- tests/test_phone_match_key.py holds the copies to the originals.
  normalized_phone text := case
    when whatsapp_user.phone ~ '^(whatsapp:)?\+[1-9][0-9]{6,14}$'
      then substr(whatsapp_user.phone, strpos(whatsapp_user.phone, '+'))
    when btrim(whatsapp_user.phone) <> '' then private.normalize_phone(whatsapp_user.phone, 'phone')
  end;
  sender_key text := case
    when left(normalized_phone, 3) not in ('+55', '+52', '+54') then normalized_phone
    else private.phone_match_key(normalized_phone)
  end;
  bsuid text := case
    when btrim(whatsapp_user.whatsapp_user_id) <> ''
      then private.normalize_whatsapp_user_id(whatsapp_user.whatsapp_user_id)
  end;
  display_name text := nullif(btrim(whatsapp_user.profile_name), '');
  found_profile public.users;  -- by phone when there is one, else by BSUID
  by_bsuid public.users;
  moved jsonb;
begin
  -- A merge absorbs a profile that another message found by its BSUID (into that message's
  -- phone profile), and forget_user may erase any profile. A phone-only lookup takes no lock
  -- of its own: if either removes the profile first, the message's foreign key check fails
  -- (23503) and the relay's 503 brings Twilio's redelivery. Without a phone, the BSUID lookup
  -- locks what it finds (lock_found). With phone and BSUID together a merge may follow,
  -- taking FOR UPDATE on both rows, and two transactions each holding FOR KEY SHARE would
  -- deadlock upgrading: those lookups go unlocked, and the profile chosen is locked
  -- afterwards. plpgsql sets up each expression it reaches again in every transaction, and
  -- every request is one: the common paths reach as few as they can, so each way out
  -- returns its answer itself rather than through flags.
  for attempt in 1..5 loop
    if normalized_phone is null then
      if bsuid is null then
        raise exception using
          errcode = '22023',
          message = 'phone or whatsapp_user_id is required',
          hint = 'Pass the sender''s number (From) or, for a WhatsApp username without a number, its BSUID (ExternalUserId).';
      end if;
      if whatsapp_user.lock_found then
        select * into found_profile from public.users as u where u.whatsapp_user_id = bsuid for key share;
      else
        select * into found_profile from public.users as u where u.whatsapp_user_id = bsuid;
      end if;
    else
      select * into found_profile from public.users as u where private.phone_match_key(u.phone_number) = sender_key;
      if bsuid is not null and found_profile.whatsapp_user_id is distinct from bsuid then
        select * into by_bsuid from public.users as u where u.whatsapp_user_id = bsuid;
        if found_profile.id is null then
          found_profile := by_bsuid;
        elsif by_bsuid.id is not null then
          if found_profile.id = by_bsuid.id then
            continue;  -- a merge committed between the two lookups: read the merged profile again
          end if;
          if found_profile.auth_id is not null and by_bsuid.auth_id is not null then
            -- Two accounts: not ours to join. The message goes to the phone's profile.
            if whatsapp_user.lock_found then
              perform 1 from public.users as u where u.id = found_profile.id for key share;
              if not found then
                continue;
              end if;
            end if;
            return (
              found_profile.id, found_profile.auth_id, found_profile.phone_number, found_profile.whatsapp_user_id,
              found_profile.email, found_profile.full_name, found_profile.created_at, found_profile.updated_at, false
            )::public.whatsapp_sender;
          end if;
          -- One person, two profiles (the BSUID arrived first, without the phone): the
          -- phone's profile survives, as in account linking.
          perform 1 from public.users as u where u.id in (found_profile.id, by_bsuid.id) order by u.id for update;
          if not exists (
            select from public.users as u
            where u.id = found_profile.id and private.phone_match_key(u.phone_number) = sender_key
          )
             or not exists (select from public.users as u where u.id = by_bsuid.id and u.whatsapp_user_id = bsuid) then
            continue;  -- a concurrent message merged them first
          end if;
          moved := private.merge_profiles(found_profile.id, by_bsuid.id);
          insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, moved, outcome, reason, triggered_by)
          values (
            found_profile.id, by_bsuid.id, coalesce(found_profile.auth_id, by_bsuid.auth_id), normalized_phone, moved,
            'merged', format('same WhatsApp user: one message carried phone %s and BSUID %s', normalized_phone, bsuid),
            'inbound_message'
          );
          select * into found_profile from public.users as u where u.id = found_profile.id;
          return (
            found_profile.id, found_profile.auth_id, found_profile.phone_number, found_profile.whatsapp_user_id,
            found_profile.email, found_profile.full_name, found_profile.created_at, found_profile.updated_at, false
          )::public.whatsapp_sender;
        end if;
      end if;
    end if;

    if found_profile.id is null then
      insert into public.users (phone_number, whatsapp_user_id, full_name)
      values (normalized_phone, bsuid, display_name)
      on conflict do nothing
      returning * into found_profile;
      if found then
        return (
          found_profile.id, found_profile.auth_id, found_profile.phone_number, found_profile.whatsapp_user_id,
          found_profile.email, found_profile.full_name, found_profile.created_at, found_profile.updated_at, true
        )::public.whatsapp_sender;
      end if;
      -- Another transaction inserted this phone or BSUID first and has committed (on
      -- conflict waited for it): the next look finds its row.
      continue;
    end if;

    -- Fill in what the profile lacks. The number is stored in WhatsApp's own form
    -- (replies go there), so an equivalent form written by Supabase Auth gives way.
    -- receive_whatsapp_message does not call this function for a profile that lacks none of
    -- these: a new rule here needs its condition there too (tests/test_receive_known_sender.py).
    if (found_profile.whatsapp_user_id is null and bsuid is not null)
       or (normalized_phone is not null and found_profile.phone_number is distinct from normalized_phone
           and (found_profile.phone_number is null or private.phone_match_key(found_profile.phone_number) = sender_key))
       or (found_profile.full_name is null and display_name is not null) then
      begin
        update public.users as u
        set whatsapp_user_id = coalesce(u.whatsapp_user_id, bsuid),
            phone_number = case
              when u.phone_number is null or private.phone_match_key(u.phone_number) = sender_key
                then coalesce(normalized_phone, u.phone_number)
              else u.phone_number
            end,
            full_name = coalesce(u.full_name, display_name)
        where u.id = found_profile.id
        returning * into found_profile;
      exception
        when unique_violation then
          continue;  -- another profile took the phone or BSUID meanwhile: look again and merge
      end;
      if found_profile.id is null then
        continue;  -- erased meanwhile
      end if;
    end if;
    if whatsapp_user.lock_found and normalized_phone is not null and bsuid is not null then
      perform 1 from public.users as u where u.id = found_profile.id for key share;
      if not found then
        continue;  -- merged away or erased since the unlocked lookup
      end if;
    end if;
    return (
      found_profile.id, found_profile.auth_id, found_profile.phone_number, found_profile.whatsapp_user_id,
      found_profile.email, found_profile.full_name, found_profile.created_at, found_profile.updated_at, false
    )::public.whatsapp_sender;
  end loop;
  raise exception using
    errcode = '40001',
    message = format('could not settle the profile of phone %s / BSUID %s; retry', normalized_phone, bsuid);
end;
$$;

comment on function private.whatsapp_user(text, text, text, boolean) is
  'Finds or creates the profile of a WhatsApp sender by phone and/or BSUID, merging a BSUID-only profile into the phone''s; created is true only for the call that inserted it.';
revoke execute on function private.whatsapp_user(text, text, text, boolean) from public, anon, authenticated;

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
    update public.users as u
    set auth_id = new.id,
        email = coalesce(u.email, new_email),
        full_name = coalesce(u.full_name, new_name)
    where private.phone_match_key(u.phone_number) = private.phone_match_key(new_phone) and u.auth_id is null
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
  select u.phone, u.phone_confirmed_at, u.email into account
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
          values (link_verified_phone.auth_user_id, verified_phone, nullif(account.email, ''))
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
            select nullif(account.email, '')
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

create or replace function private.link_confirmed_phone()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  failed_state text;
  failed_message text;
  phone text;
begin
  begin
    perform private.link_verified_phone(new.id, 'auth_trigger');
  exception
    when others then
      get stacked diagnostics failed_state = returned_sqlstate, failed_message = message_text;
      begin
        phone := private.try_normalize_phone(new.phone);
        insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, outcome, reason, triggered_by)
        values (
          (select u.id from public.users as u where private.phone_match_key(u.phone_number) = private.phone_match_key(phone)),
          (select u.id from public.users as u where u.auth_id = new.id),
          new.id,
          phone,
          'refused',
          format('%s: %s', failed_state, failed_message),
          'auth_trigger'
        );
      exception
        when others then
          raise warning 'link of auth user % refused (%: %) and not recorded: %', new.id, failed_state, failed_message, sqlerrm;
      end;
  end;
  return null;
end;
$$;

comment on function private.link_confirmed_phone() is
  'After Supabase Auth confirms a phone: links it as link_whatsapp_account does; a refusal is recorded in public.user_merges, never raised.';
revoke execute on function private.link_confirmed_phone() from public, anon, authenticated;
