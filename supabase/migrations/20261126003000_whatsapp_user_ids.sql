-- WhatsApp usernames: senders known by a business-scoped user id (BSUID).
-- Since April 2026 Meta adds a BSUID (e.g. 'US.13491208655302741918') to every inbound
-- message, and a user who adopts a username may have their phone left out entirely:
-- Twilio then sends the BSUID as ExternalUserId and in From. Such a message must be
-- stored, not refused, so a profile may now be known by BSUID alone. When one message
-- carries both a phone and a BSUID that sit on two profiles, WhatsApp itself says they
-- are one person: the BSUID profile is merged into the phone profile and audited.
-- A BSUID is scoped to one business portfolio and changes when the user changes their
-- number, so the phone stays the primary key of a WhatsApp identity when present.

-- tables ----------------------------------------------------------------------
alter table public.users add column whatsapp_user_id text;
alter table public.users add constraint users_whatsapp_user_id_key unique (whatsapp_user_id);
alter table public.users add constraint users_whatsapp_user_id_shape
check (whatsapp_user_id ~ '^[A-Z]{2}(\.[A-Z]{2,8})?\.[A-Za-z0-9]{1,128}$');
alter table public.users drop constraint users_has_an_identity;
alter table public.users add constraint users_has_an_identity
check (phone_number is not null or whatsapp_user_id is not null or auth_id is not null);

comment on column public.users.whatsapp_user_id is
  'WhatsApp''s business-scoped user id (BSUID) of this person, as Twilio sends it in ExternalUserId; null until a message carries one.';

alter table public.user_merges drop constraint user_merges_refusal_has_reason;
alter table public.user_merges add constraint user_merges_refusal_has_reason
check (outcome <> 'refused' or reason is not null);
alter table public.user_merges drop constraint user_merges_triggered_by_known;
alter table public.user_merges add constraint user_merges_triggered_by_known
check (triggered_by in ('rpc', 'auth_trigger', 'inbound_message', 'migration'));

comment on column public.user_merges.reason is
  'Why a link was refused ("SQLSTATE: message"), or why two WhatsApp profiles were one person; null for links.';
comment on column public.user_merges.triggered_by is
  'rpc (link_whatsapp_account), auth_trigger (Supabase Auth confirmed the phone), inbound_message (a message named both profiles) or migration.';

-- helper functions ------------------------------------------------------------
create or replace function private.normalize_whatsapp_user_id(raw text, field text default 'whatsapp_user_id')
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  cleaned text := btrim(regexp_replace(raw, '^\s*whatsapp:', '', 'i'));
begin
  if cleaned ~ '^[A-Z]{2}(\.[A-Z]{2,8})?\.[A-Za-z0-9]+$'
     and length(split_part(cleaned, '.', -1)) <= 128 then
    return cleaned;
  end if;
  raise exception using
    errcode = '22023',
    message = format('%s %s is not a WhatsApp business-scoped user id', field, quote_literal(left(raw, 40))),
    hint = 'Pass ExternalUserId as Twilio sends it: a country code, a dot and up to 128 letters or digits, e.g. US.13491208655302741918.';
end;
$$;

comment on function private.normalize_whatsapp_user_id(text, text) is
  'Returns the BSUID without a whatsapp: prefix; raises 22023 naming the field when it is not shaped like one.';
revoke execute on function private.normalize_whatsapp_user_id(text, text) from public, anon, authenticated;

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

-- A named row type for what private.whatsapp_user and get_or_create_whatsapp_user return.
-- `returns table` cannot serve the public function: a plpgsql function may not have an
-- argument and a result column of one name, and both are whatsapp_user_id there. And a
-- call of a function returning one row of a named type is a simple expression to plpgsql:
-- no query to run and no result set to build, which a set-returning function needs.
create type public.whatsapp_sender as (
  id uuid,
  auth_id uuid,
  phone_number text,
  whatsapp_user_id text,
  email text,
  full_name text,
  created_at timestamptz,
  updated_at timestamptz,
  created boolean
);
comment on type public.whatsapp_sender is
  'A WhatsApp sender''s profile columns, and created = true only for the call that inserted the profile: what private.whatsapp_user and get_or_create_whatsapp_user return.';

-- The profile of a WhatsApp sender by phone, BSUID or both. Race-free without
-- select-then-insert: unique indexes arbitrate through insert ... on conflict do
-- nothing, and every path that loses a race looks again. `lock_found` (for
-- receive_whatsapp_message, which inserts a message referencing the profile) takes FOR
-- KEY SHARE on a profile a concurrent merge could delete, so the merge is waited for and
-- the next look finds the survivor instead of failing the message's foreign key.
drop function private.whatsapp_user(text, text);

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
  normalized_phone text;
  bsuid text;
  display_name text := nullif(btrim(whatsapp_user.profile_name), '');
  by_phone public.users;
  by_bsuid public.users;
  found_profile public.users;
  inserted boolean := false;
  settled boolean := false;
  moved jsonb;
  lock_in_lookup boolean;
  lock_after boolean;
begin
  if nullif(btrim(whatsapp_user.phone), '') is not null then
    normalized_phone := private.normalize_phone(whatsapp_user.phone, 'phone');
  end if;
  if nullif(btrim(whatsapp_user.whatsapp_user_id), '') is not null then
    bsuid := private.normalize_whatsapp_user_id(whatsapp_user.whatsapp_user_id);
  end if;
  if normalized_phone is null and bsuid is null then
    raise exception using
      errcode = '22023',
      message = 'phone or whatsapp_user_id is required',
      hint = 'Pass the sender''s number (From) or, for a WhatsApp username without a number, its BSUID (ExternalUserId).';
  end if;

  -- Only a profile found by BSUID alone can be merged away under us (into the profile of
  -- its phone); merges never absorb the profile a phone finds. So the phone-only path,
  -- today's common case, takes no lock of its own: the message's foreign key check takes
  -- it. With phone and BSUID together a merge may follow, taking FOR UPDATE on both rows,
  -- and two transactions each holding FOR KEY SHARE would deadlock upgrading: those
  -- lookups go unlocked, and the profile chosen is locked afterwards.
  lock_in_lookup := lock_found and normalized_phone is null;
  lock_after := lock_found and normalized_phone is not null and bsuid is not null;

  for attempt in 1..5 loop
    by_phone := null;
    by_bsuid := null;
    if normalized_phone is not null then
      if lock_in_lookup then
        select * into by_phone from public.users as u where u.phone_number = normalized_phone for key share;
      else
        select * into by_phone from public.users as u where u.phone_number = normalized_phone;
      end if;
    end if;
    if bsuid is not null and (by_phone.id is null or by_phone.whatsapp_user_id is distinct from bsuid) then
      if lock_in_lookup then
        select * into by_bsuid from public.users as u where u.whatsapp_user_id = bsuid for key share;
      else
        select * into by_bsuid from public.users as u where u.whatsapp_user_id = bsuid;
      end if;
    end if;

    if by_phone.id = by_bsuid.id then
      continue;  -- a merge committed between the two lookups: read the merged profile again
    end if;

    if by_phone.id is not null and by_bsuid.id is not null and by_phone.auth_id is not null
       and by_bsuid.auth_id is not null then
      -- Two accounts: not ours to join. The message goes to the phone's profile.
      if lock_after then
        perform 1 from public.users as u where u.id = by_phone.id for key share;
        if not found then
          continue;
        end if;
      end if;
      found_profile := by_phone;
      settled := true;
      exit;
    end if;

    if by_phone.id is not null and by_bsuid.id is not null then
      -- One person, two profiles (the BSUID arrived first, without the phone): the
      -- phone's profile survives, as in account linking.
      perform 1 from public.users as u where u.id in (by_phone.id, by_bsuid.id) order by u.id for update;
      if not exists (select from public.users as u where u.id = by_phone.id and u.phone_number = normalized_phone)
         or not exists (select from public.users as u where u.id = by_bsuid.id and u.whatsapp_user_id = bsuid) then
        continue;  -- a concurrent message merged them first
      end if;
      moved := private.merge_profiles(by_phone.id, by_bsuid.id);
      insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, moved, outcome, reason, triggered_by)
      values (
        by_phone.id, by_bsuid.id, coalesce(by_phone.auth_id, by_bsuid.auth_id), normalized_phone, moved, 'merged',
        format('same WhatsApp user: one message carried phone %s and BSUID %s', normalized_phone, bsuid),
        'inbound_message'
      );
      select * into found_profile from public.users as u where u.id = by_phone.id;
      settled := true;
      exit;
    end if;

    found_profile := case when by_phone.id is not null then by_phone else by_bsuid end;
    if found_profile.id is not null then
      if (found_profile.whatsapp_user_id is null and bsuid is not null)
         or (found_profile.phone_number is null and normalized_phone is not null)
         or (found_profile.full_name is null and display_name is not null) then
        begin
          update public.users as u
          set whatsapp_user_id = coalesce(u.whatsapp_user_id, bsuid),
              phone_number = coalesce(u.phone_number, normalized_phone),
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
      if lock_after then
        perform 1 from public.users as u where u.id = found_profile.id for key share;
        if not found then
          continue;  -- merged away or erased since the unlocked lookup
        end if;
      end if;
      settled := true;
      exit;
    end if;

    insert into public.users (phone_number, whatsapp_user_id, full_name)
    values (normalized_phone, bsuid, display_name)
    on conflict do nothing
    returning * into found_profile;
    if found_profile.id is not null then
      inserted := true;
      settled := true;
      exit;
    end if;
    -- Another transaction inserted this phone or BSUID first and has committed (on
    -- conflict waited for it): the next look finds its row.
  end loop;
  if not settled then
    raise exception using
      errcode = '40001',
      message = format('could not settle the profile of phone %s / BSUID %s; retry', normalized_phone, bsuid);
  end if;
  return (
    found_profile.id, found_profile.auth_id, found_profile.phone_number, found_profile.whatsapp_user_id,
    found_profile.email, found_profile.full_name, found_profile.created_at, found_profile.updated_at, inserted
  )::public.whatsapp_sender;
end;
$$;

comment on function private.whatsapp_user(text, text, text, boolean) is
  'Finds or creates the profile of a WhatsApp sender by phone and/or BSUID, merging a BSUID-only profile into the phone''s; created is true only for the call that inserted it.';
revoke execute on function private.whatsapp_user(text, text, text, boolean) from public, anon, authenticated;

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

-- public rpcs -----------------------------------------------------------------
drop function public.get_or_create_whatsapp_user(text, text);

create or replace function public.get_or_create_whatsapp_user(
  phone text default null,
  profile_name text default null,
  whatsapp_user_id text default null
)
returns setof public.whatsapp_sender
language plpgsql
security definer
set search_path = ''
as $$
-- plpgsql rather than sql: PostgreSQL plans a non-inlined sql function's body on every
-- call, while plpgsql keeps the plan for the session (a third of the call's cost).
begin
  return next private.whatsapp_user(
    get_or_create_whatsapp_user.phone,
    get_or_create_whatsapp_user.profile_name,
    get_or_create_whatsapp_user.whatsapp_user_id
  );
end;
$$;

comment on function public.get_or_create_whatsapp_user(text, text, text) is
  'The profile of a WhatsApp sender by phone and/or BSUID (whatsapp_user_id), created on first contact (created = true for that call only). Service role only.';
revoke execute on function public.get_or_create_whatsapp_user(text, text, text) from public, anon, authenticated;
grant execute on function public.get_or_create_whatsapp_user(text, text, text) to service_role;

drop function public.receive_whatsapp_message(text, text, text, text, jsonb);

create or replace function public.receive_whatsapp_message(
  message_sid text,
  phone text,
  body text,
  profile_name text default null,
  media jsonb default '[]'::jsonb,
  whatsapp_user_id text default null
)
returns table (user_id uuid, message_id uuid, user_created boolean, duplicate boolean)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  sid text := btrim(receive_whatsapp_message.message_sid);
  attachments jsonb := coalesce(receive_whatsapp_message.media, '[]'::jsonb);
  -- The number as a profile stores it, if the message wrote it that way (Twilio does).
  phone_as_stored text := case
    when left(receive_whatsapp_message.phone, 9) = 'whatsapp:' then substr(receive_whatsapp_message.phone, 10)
    else receive_whatsapp_message.phone
  end;
  sender public.whatsapp_sender;
begin
  if sid is null or sid !~ '^[A-Za-z0-9]+$' or length(sid) not between 2 and 64 then
    raise exception using
      errcode = '22023',
      message = format('message_sid %s is not a Twilio MessageSid', coalesce(quote_literal(left(sid, 40)), 'null')),
      hint = 'Pass the MessageSid parameter of the webhook, e.g. SM0123456789abcdef0123456789abcdef.';
  end if;
  if jsonb_typeof(attachments) <> 'array' then
    raise exception using
      errcode = '22023',
      message = 'media must be a JSON array',
      hint = 'Pass [{"url": ..., "content_type": ...}, ...] or [].';
  end if;

  -- The sender first, then the message; a redelivery finds the sender and stores nothing.
  -- Almost every message comes from a known sender whose profile already holds what the
  -- message carries: the number exactly as stored, the BSUID if one is sent, a name if one
  -- is sent. Such a profile is found here by one lookup, as private.whatsapp_user would find
  -- it and leave it, without the call (its frame and rules cost ~15 % of the message).
  -- Equality with stored values, which are valid, validates the number and the BSUID; and
  -- the lookup locks as whatsapp_user's does: FOR KEY SHARE only with a BSUID.
  -- tests/test_receive_known_sender.py holds both ways to the same outcome.
  if receive_whatsapp_message.phone is not null then
    if nullif(btrim(receive_whatsapp_message.whatsapp_user_id), '') is null then
      select u.id, false into sender.id, sender.created
      from public.users as u
      where private.phone_match_key(u.phone_number) = private.phone_match_key(phone_as_stored)
        and u.phone_number = phone_as_stored
        and (u.full_name is not null or nullif(btrim(receive_whatsapp_message.profile_name), '') is null);
    else
      select u.id, false into sender.id, sender.created
      from public.users as u
      where private.phone_match_key(u.phone_number) = private.phone_match_key(phone_as_stored)
        and u.phone_number = phone_as_stored
        and u.whatsapp_user_id = receive_whatsapp_message.whatsapp_user_id
        and (u.full_name is not null or nullif(btrim(receive_whatsapp_message.profile_name), '') is null)
      for key share of u;
    end if;
  end if;
  if sender.id is null then
    -- Everyone else: whatsapp_user validates phone and BSUID (22023 before anything is
    -- written), creates, fills in and merges.
    sender := private.whatsapp_user(
      receive_whatsapp_message.phone,
      receive_whatsapp_message.profile_name,
      receive_whatsapp_message.whatsapp_user_id,
      lock_found => true
    );
  end if;

  insert into public.whatsapp_messages as m (message_sid, user_id, body, media, profile_name, user_created)
  values (
    sid,
    sender.id,
    coalesce(receive_whatsapp_message.body, ''),
    attachments,
    nullif(btrim(receive_whatsapp_message.profile_name), ''),
    sender.created
  )
  on conflict (message_sid) do nothing
  returning m.user_id, m.id, m.user_created, false into user_id, message_id, user_created, duplicate;
  if found then
    return next;
    return;
  end if;

  -- A redelivery: the first delivery stored it (perhaps concurrently, just now).
  select m.user_id, m.id, m.user_created, true into user_id, message_id, user_created, duplicate
  from public.whatsapp_messages as m
  where m.message_sid = sid;
  if not found then
    -- forget_user erased the first delivery between the insert and this read. Delivered
    -- again, the message belongs to whoever writes from the number now.
    raise exception using
      errcode = '40001',
      message = format('message_sid %s was erased while it was delivered again; retry', sid);
  end if;
  return next;
end;
$$;

comment on function public.receive_whatsapp_message(text, text, text, text, jsonb, text) is
  'Stores an inbound WhatsApp message once per MessageSid and returns the sender''s profile id, found by phone and/or BSUID (whatsapp_user_id); duplicate = true for redeliveries. Service role only.';
revoke execute on function public.receive_whatsapp_message(text, text, text, text, jsonb, text) from public, anon, authenticated;  -- noqa: LT05
grant execute on function public.receive_whatsapp_message(text, text, text, text, jsonb, text) to service_role;
