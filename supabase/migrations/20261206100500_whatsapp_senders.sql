-- public.get_or_create_whatsapp_user: the WhatsApp sender's profile, found or created.
-- Race-free without locks: the unique index on phone_number arbitrates through
-- insert ... on conflict do nothing, so concurrent first messages from one number
-- create one profile and every caller gets its id. An existing sender costs one
-- index lookup and writes nothing.
--
-- WhatsApp usernames: senders known by a business-scoped user id (BSUID).
-- Since April 2026 Meta adds a BSUID (e.g. 'US.13491208655302741918') to every inbound
-- message, and a user who adopts a username may have their phone left out entirely:
-- Twilio then sends the BSUID as ExternalUserId and in From. Such a message must be
-- stored, not refused, so a profile may be known by BSUID alone. When one message
-- carries both a phone and a BSUID that sit on two profiles, WhatsApp itself says they
-- are one person: the BSUID profile is merged into the phone profile and audited.
-- A BSUID is scoped to one business portfolio and changes when the user changes their
-- number, so the phone stays the primary key of a WhatsApp identity when present.

-- types -----------------------------------------------------------------------
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
  former_profile_id uuid;
  taker public.users;  -- the profile a moving number goes to
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
        if found_profile.id = by_bsuid.id or private.phone_match_key(by_bsuid.phone_number) = sender_key then
          -- A merge or a move committed between the two lookups: read again. Going on would
          -- lock the BSUID's profile before the number's old one, which a transaction that
          -- already locked the old one (and then found the number gone) takes the other way.
          continue;
        end if;
        -- A former owner of this number writing from it (a message sent before the number
        -- moved, delivered after): it goes to their profile (the one their BSUID is on, or
        -- the one the move names, which follows merges), and the number stays where it is.
        -- Decided before every other rule, so that no message takes a number back.
        select r.previous_user_id into former_profile_id
        from public.whatsapp_number_reassignments as r
        where private.phone_match_key(r.phone_number) = sender_key and r.previous_whatsapp_user_id = bsuid
        order by r.created_at desc
        limit 1;
        if found then
          if whatsapp_user.lock_found then
            select * into found_profile from public.users as u
            where u.id = coalesce(by_bsuid.id, former_profile_id)
            for key share;
          else
            select * into found_profile from public.users as u where u.id = coalesce(by_bsuid.id, former_profile_id);
          end if;
          if not found then
            continue;  -- merged away or erased since the lookup
          end if;
          return (
            found_profile.id, found_profile.auth_id, found_profile.phone_number, found_profile.whatsapp_user_id,
            found_profile.email, found_profile.full_name, found_profile.created_at, found_profile.updated_at, false
          )::public.whatsapp_sender;
        end if;
        if found_profile.id is null then
          found_profile := by_bsuid;
        elsif found_profile.whatsapp_user_id is not null then
          -- The number's profile belongs to another WhatsApp account: the number moves to the
          -- profile of the account writing now. Both rows locked in id order, as merges lock
          -- them, then read again: a concurrent message may have moved the number already.
          perform 1 from public.users as u where u.id in (found_profile.id, by_bsuid.id) order by u.id for update;
          select * into found_profile from public.users as u
          where u.id = found_profile.id
            and private.phone_match_key(u.phone_number) = sender_key
            and u.whatsapp_user_id <> bsuid;
          if not found then
            continue;  -- moved, merged or erased meanwhile: look again
          end if;
          if by_bsuid.id is not null then
            select * into by_bsuid from public.users as u where u.id = by_bsuid.id and u.whatsapp_user_id = bsuid;
            if not found then
              continue;
            end if;
          end if;
          begin
            update public.users as u set phone_number = null where u.id = found_profile.id;
            if by_bsuid.id is null then
              insert into public.users (phone_number, whatsapp_user_id, full_name)
              values (normalized_phone, bsuid, display_name)
              returning * into taker;
            else
              -- The account's profile takes the number unless it holds another one: the
              -- BSUID decides the profile, as when no profile has the number.
              update public.users as u
              set phone_number = coalesce(u.phone_number, normalized_phone),
                  full_name = coalesce(u.full_name, display_name)
              where u.id = by_bsuid.id
              returning * into taker;
            end if;
          exception
            when unique_violation then
              continue;  -- the new account's BSUID got a profile meanwhile: look again, move to it
          end;
          insert into public.whatsapp_number_reassignments (
            phone_number, previous_user_id, previous_whatsapp_user_id, new_user_id, new_whatsapp_user_id, reason
          )
          values (
            found_profile.phone_number, found_profile.id, found_profile.whatsapp_user_id, taker.id, bsuid,
            format(
              'a message from %s carried the user id (BSUID) of another WhatsApp account: the number has a new owner',
              normalized_phone
            )
          );
          return (
            taker.id, taker.auth_id, taker.phone_number, taker.whatsapp_user_id,
            taker.email, taker.full_name, taker.created_at, taker.updated_at, by_bsuid.id is null
          )::public.whatsapp_sender;
        elsif by_bsuid.id is not null then
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
          -- One person, two profiles (the BSUID arrived first, without the phone, and the
          -- number's profile has no BSUID of its own): the phone's profile survives, as in
          -- account linking.
          perform 1 from public.users as u where u.id in (found_profile.id, by_bsuid.id) order by u.id for update;
          if not exists (
            select from public.users as u
            where u.id = found_profile.id
              and private.phone_match_key(u.phone_number) = sender_key
              and u.whatsapp_user_id is null
          )
             or not exists (select from public.users as u where u.id = by_bsuid.id and u.whatsapp_user_id = bsuid) then
            continue;  -- a concurrent message merged them, or gave the number's profile a BSUID, first
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
  'Finds or creates the profile of a WhatsApp sender by phone and/or BSUID: merges a BSUID-only profile into the profile of a number without a BSUID, moves a number whose profile holds another BSUID to the writing account''s profile (audited in public.whatsapp_number_reassignments), and never gives a number back to an account that gave it up; created is true only for the call that inserted the profile.';
revoke execute on function private.whatsapp_user(text, text, text, boolean) from public, anon, authenticated;

-- public rpc ------------------------------------------------------------------
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
