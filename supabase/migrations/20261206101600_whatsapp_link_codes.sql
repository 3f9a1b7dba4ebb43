-- Linking from inside WhatsApp with a one-time code.
-- Linking by phone needs Supabase Auth to verify the number WhatsApp writes from, which
-- leaves out WhatsApp users with a username (their messages carry a BSUID and no phone),
-- numbers that cannot receive the app's code, and apps without phone sign-in. A message
-- that arrives through Twilio's signed webhook was sent by that WhatsApp account, so the
-- account itself can prove control: the app shows a code, the person sends it from
-- WhatsApp.
--
-- Codes get phished ("send this code to verify"), so a code alone links nothing:
--   1. public.create_whatsapp_link_code(): the signed-in account gets a code such as
--      LINK-7KQ2MX (10 minutes, single use, stored as its SHA-256 only, one per account: a
--      new one replaces the old; at most 5 per account per 15 minutes).
--   2. The first message whose whole body is the code holds it for that sender; the reply
--      names the account in a masked form (a***@example.com) and asks for YES.
--   3. YES (or SIM, SÍ) from the same sender within 5 minutes consumes the code and links
--      the sender's WhatsApp profile with the code's account by the merge machinery of the
--      phone link: the WhatsApp profile survives, every referencing row moves, refusals
--      change nothing, everything is audited in public.user_merges with
--      triggered_by = 'whatsapp_code'.
-- Guessing is bounded: a sender whose codes failed 5 times in an hour is refused for the
-- rest of the hour, and one code can be held by at most 3 senders. Every failure and
-- refusal is audited.
-- public.receive_whatsapp_message calls private.handle_link_code for bodies shaped like a
-- code or a confirmation word; every other message costs nothing here.

-- types -----------------------------------------------------------------------
create type public.whatsapp_link_code as (
  code text,
  expires_at timestamptz,
  whatsapp_url text
);
comment on type public.whatsapp_link_code is
  'A code for linking from inside WhatsApp: the code to show, when it expires, and the https://wa.me link that opens WhatsApp with the code typed in.';

-- tables ----------------------------------------------------------------------
create table private.whatsapp_link_codes (
  auth_id uuid primary key references auth.users (id) on delete cascade,
  code_hash bytea not null unique,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  held_by_user_id uuid,
  held_at timestamptz,
  holds integer not null default 0,
  consumed_at timestamptz,
  issued_in_window integer not null default 1,
  window_started_at timestamptz not null default now(),
  constraint whatsapp_link_codes_hold_complete check ((held_by_user_id is null) = (held_at is null))
);

comment on table private.whatsapp_link_codes is
  'The live WhatsApp link code of each account (one row per auth user; a new code replaces the old). Written only by create_whatsapp_link_code and private.handle_link_code.';
comment on column private.whatsapp_link_codes.auth_id is 'The Supabase Auth user the code links to.';
comment on column private.whatsapp_link_codes.code_hash is 'SHA-256 of the code (upper case); the code itself is never stored.';
comment on column private.whatsapp_link_codes.created_at is 'When the code was made.';
comment on column private.whatsapp_link_codes.expires_at is 'After this the code is refused.';
comment on column private.whatsapp_link_codes.held_by_user_id is
  'The WhatsApp profile that sent the code and may confirm it with YES; no foreign key (an audit of who held it outlives the profile).';
comment on column private.whatsapp_link_codes.held_at is 'When that sender sent the code; YES is taken for 5 minutes after.';
comment on column private.whatsapp_link_codes.holds is 'How many senders have held the code; a fourth is refused.';
comment on column private.whatsapp_link_codes.consumed_at is 'When a confirmation used the code; a used code links nothing more.';
comment on column private.whatsapp_link_codes.issued_in_window is 'Codes the account made since window_started_at (rate limit).';
comment on column private.whatsapp_link_codes.window_started_at is 'Start of the account''s current 15-minute rate-limit window.';

create index whatsapp_link_codes_held_by_user_id_idx on private.whatsapp_link_codes (held_by_user_id);

alter table private.whatsapp_link_codes enable row level security;

revoke all on table private.whatsapp_link_codes from public, anon, authenticated, service_role;

create table private.whatsapp_link_code_failures (
  user_id uuid primary key,
  failures integer not null,
  window_started_at timestamptz not null default now()
);

comment on table private.whatsapp_link_code_failures is
  'Failed link codes per WhatsApp sender (unknown, expired, used) in the current hour: the guessing bound. No foreign key: a counter outlives the profile it counts.';
comment on column private.whatsapp_link_code_failures.user_id is 'The sender''s WhatsApp profile.';
comment on column private.whatsapp_link_code_failures.failures is 'Failed codes since window_started_at.';
comment on column private.whatsapp_link_code_failures.window_started_at is 'Start of the sender''s current one-hour window.';

alter table private.whatsapp_link_code_failures enable row level security;

revoke all on table private.whatsapp_link_code_failures from public, anon, authenticated, service_role;

-- helper functions ------------------------------------------------------------
create or replace function private.masked_account(auth_user_id uuid)
returns text
language sql
stable
set search_path = ''
as $$
  -- Enough for the person to recognise their own account, too little to learn someone else's.
  select case
    when coalesce(u.email, '') like '%_@_%'
      then left(u.email, 1) || '***' || substr(u.email, strpos(u.email, '@'))
    when coalesce(u.phone, '') <> '' then '***' || right(u.phone, 4)
    else 'an app account'
  end
  from auth.users as u
  where u.id = masked_account.auth_user_id;
$$;
comment on function private.masked_account(uuid) is
  'The account as a link-code confirmation names it: a***@example.com, or the last four digits of its phone.';
revoke execute on function private.masked_account(uuid) from public, anon, authenticated;

create or replace function private.note_link_code_failure(
  sender_id uuid,
  auth_user_id uuid,
  reason text,
  redelivered boolean
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  failures integer;
begin
  if note_link_code_failure.redelivered then
    return;  -- Twilio delivering the same message again is not another guess
  end if;
  insert into private.whatsapp_link_code_failures as f (user_id, failures)
  values (note_link_code_failure.sender_id, 1)
  on conflict (user_id) do update
  set failures = case when f.window_started_at > now() - interval '1 hour' then f.failures + 1 else 1 end,
      window_started_at = case when f.window_started_at > now() - interval '1 hour' then f.window_started_at else now() end
  returning f.failures into failures;
  insert into public.user_merges (survivor_id, auth_id, outcome, reason, triggered_by)
  values (
    note_link_code_failure.sender_id, note_link_code_failure.auth_user_id, 'refused',
    note_link_code_failure.reason
      || case when failures >= 5 then ' (5 failed codes this hour: this sender''s codes are refused until the hour is over)' else '' end,
    'whatsapp_code'
  );
end;
$$;
comment on function private.note_link_code_failure(uuid, uuid, text, boolean) is
  'Counts a failed link code against its sender (the guessing bound) and audits it in public.user_merges; a redelivery counts nothing.';
revoke execute on function private.note_link_code_failure(uuid, uuid, text, boolean) from public, anon, authenticated;

create or replace function private.refuse_code_link(sender_id uuid, auth_user_id uuid, reason text)
returns void
language sql
set search_path = ''
as $$
  -- The sender's number stays out of the row: the code's account reads its own audit rows,
  -- and the person who sent the code may be a stranger it phished.
  insert into public.user_merges (survivor_id, auth_id, outcome, reason, triggered_by)
  values (refuse_code_link.sender_id, refuse_code_link.auth_user_id, 'refused', refuse_code_link.reason, 'whatsapp_code');
$$;
comment on function private.refuse_code_link(uuid, uuid, text) is
  'Audits a refused link-code link in public.user_merges (the sender''s profile id, the code''s account, the reason).';
revoke execute on function private.refuse_code_link(uuid, uuid, text) from public, anon, authenticated;

create or replace function private.account_has_other_whatsapp(sender public.users, account public.users)
returns boolean
language sql
stable
set search_path = ''
as $$
  -- The account's profile holds a WhatsApp identity (a number or a BSUID) that is not the
  -- sender's: joining would drop it, unless the two are the same person by number.
  select account.id is not null
    and account.id <> sender.id
    and (account.phone_number is not null or account.whatsapp_user_id is not null)
    and not coalesce(
      private.phone_match_key(account.phone_number) = private.phone_match_key(sender.phone_number)
      and (account.whatsapp_user_id is null or sender.whatsapp_user_id is null
           or account.whatsapp_user_id = sender.whatsapp_user_id),
      false
    );
$$;
comment on function private.account_has_other_whatsapp(public.users, public.users) is
  'True when the account''s profile holds a WhatsApp number or BSUID other than the sender''s (not the same number in any equivalent form).';
revoke execute on function private.account_has_other_whatsapp(public.users, public.users) from public, anon, authenticated;  -- noqa: LT05

create or replace function private.link_by_code(code private.whatsapp_link_codes, sender_id uuid)
returns text
language plpgsql
set search_path = ''
as $$
declare
  account record;
  sender public.users;
  caller public.users;
  fresh_sender public.users;
  fresh_caller public.users;
  moved jsonb;
  conflict text;
begin
  -- Lock order as in link_whatsapp_account: the auth.users row, then the profiles by id.
  select case when u.email_confirmed_at is not null then nullif(u.email, '') end as email
  into account
  from auth.users as u
  where u.id = code.auth_id
  for key share;

  for attempt in 1..3 loop
    select * into sender from public.users as u where u.id = link_by_code.sender_id;
    select * into caller from public.users as u where u.auth_id = code.auth_id;
    if sender.id is null then
      return null;  -- the sender's profile was merged away or erased since the code was held
    end if;
    if sender.auth_id = code.auth_id then
      update private.whatsapp_link_codes as c set consumed_at = coalesce(c.consumed_at, now()) where c.auth_id = code.auth_id;
      return 'linked';  -- linked already: nothing to do
    end if;
    if sender.auth_id is not null then
      perform private.refuse_code_link(sender.id, code.auth_id,
        'PT409: this WhatsApp profile is linked to another account');
      return 'linked_elsewhere';
    end if;
    if private.account_has_other_whatsapp(sender, caller) then
      perform private.refuse_code_link(sender.id, code.auth_id,
        'PT409: the account already has another WhatsApp profile');
      return 'account_has_whatsapp';
    end if;

    perform 1 from public.users as u where u.id in (sender.id, caller.id) order by u.id for update;
    select * into fresh_sender from public.users as u where u.id = sender.id;
    select * into fresh_caller from public.users as u where u.auth_id = code.auth_id;
    if fresh_sender is distinct from sender or fresh_caller is distinct from caller then
      continue;  -- a concurrent link, merge or erasure got there first: decide again
    end if;

    if caller.id is null then
      -- An auth user without a profile takes the WhatsApp profile over, with its confirmed
      -- email unless another profile holds that address.
      update public.users as u
      set auth_id = code.auth_id,
          email = coalesce(u.email, (
            select account.email
            where not exists (select from public.users as o where lower(o.email) = lower(account.email))
          ))
      where u.id = sender.id;
      moved := '{}'::jsonb;
    else
      begin
        moved := private.merge_profiles(sender.id, caller.id);
      exception
        when unique_violation then
          get stacked diagnostics conflict = message_text;
          perform private.refuse_code_link(sender.id, code.auth_id, '23505: ' || conflict);
          return 'refused';
      end;
    end if;
    update private.whatsapp_link_codes as c set consumed_at = now() where c.auth_id = code.auth_id;
    insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, moved, outcome, triggered_by)
    values (sender.id, caller.id, code.auth_id, sender.phone_number, moved, 'merged', 'whatsapp_code');
    return 'linked';
  end loop;
  raise exception using
    errcode = '40001',
    message = 'could not settle the profiles of a link code; retry';
end;
$$;
comment on function private.link_by_code(private.whatsapp_link_codes, uuid) is
  'Links the sender''s WhatsApp profile with the code''s account (the WhatsApp profile survives, as in the phone link) and consumes the code; refusals change nothing and are audited. Returns linked, linked_elsewhere, account_has_whatsapp, refused, or null when the sender''s profile is gone.';
revoke execute on function private.link_by_code(private.whatsapp_link_codes, uuid) from public, anon, authenticated;

create or replace function private.handle_link_code(sender_id uuid, body text, message_sid text)
returns table (outcome text, account text)
language plpgsql
set search_path = ''
as $$
declare
  word text := upper(btrim(handle_link_code.body));
  redelivered boolean;
  code private.whatsapp_link_codes;
  sender public.users;
  caller public.users;
begin
  if word in ('YES', 'SIM', 'SÍ', 'Sí') then  -- upper() leaves í as it is under the C locale
    -- The sender's latest held code; none: an ordinary message.
    select * into code from private.whatsapp_link_codes as c
    where c.held_by_user_id = handle_link_code.sender_id
    order by c.held_at desc
    limit 1
    for update;
    if not found then
      return;
    end if;
    -- A redelivery (the MessageSid stored) answers as the first delivery did and counts
    -- nothing. Read after the code's lock: a concurrent first delivery has committed by then.
    redelivered := exists (
      select from public.whatsapp_messages as m where m.message_sid = handle_link_code.message_sid
    );
    if code.consumed_at is not null then
      if redelivered then
        return query select 'linked', private.masked_account(code.auth_id);
      end if;
      return;
    end if;
    if code.held_at <= now() - interval '5 minutes' or code.expires_at <= now() then
      if code.held_at > now() - interval '1 hour' then
        return query select 'code_expired', null::text;
      end if;
      return;
    end if;
    return query select private.link_by_code(code, handle_link_code.sender_id), private.masked_account(code.auth_id);
    return;
  end if;

  if word !~ '^LINK-[A-Z0-9]{6}$' then
    return;  -- not a link message
  end if;
  if exists (
    select from private.whatsapp_link_code_failures as f
    where f.user_id = handle_link_code.sender_id and f.failures >= 5 and f.window_started_at > now() - interval '1 hour'
  ) then
    return query select 'too_many_tries', null::text;
    return;
  end if;

  select * into code from private.whatsapp_link_codes as c
  where c.code_hash = extensions.digest(word, 'sha256')
  for update;
  -- A redelivery (the MessageSid stored) answers as the first delivery did and counts
  -- nothing. Read after the code's lock: a concurrent first delivery has committed by then.
  redelivered := exists (
    select from public.whatsapp_messages as m where m.message_sid = handle_link_code.message_sid
  );
  if code.auth_id is null then
    perform private.note_link_code_failure(handle_link_code.sender_id, null, 'PT404: unknown link code', redelivered);
    return query select 'code_unknown', null::text;
    return;
  end if;
  select * into sender from public.users as u where u.id = handle_link_code.sender_id;
  if code.consumed_at is not null then
    if sender.auth_id = code.auth_id then
      return query select 'linked', private.masked_account(code.auth_id);
      return;
    end if;
    perform private.note_link_code_failure(handle_link_code.sender_id, code.auth_id, 'PT410: link code already used', redelivered);
    return query select 'code_unknown', null::text;
    return;
  end if;
  if code.expires_at <= now() then
    perform private.note_link_code_failure(handle_link_code.sender_id, code.auth_id, 'PT410: link code expired', redelivered);
    return query select 'code_expired', null::text;
    return;
  end if;
  if code.held_by_user_id is distinct from handle_link_code.sender_id and code.holds >= 3 then
    perform private.note_link_code_failure(
      handle_link_code.sender_id, code.auth_id, 'PT429: link code already sent by 3 WhatsApp senders', redelivered);
    return query select 'code_unknown', null::text;
    return;
  end if;

  -- Refusals that a confirmation could not change are said now, before anyone says YES.
  if sender.auth_id = code.auth_id then
    update private.whatsapp_link_codes as c set consumed_at = now() where c.auth_id = code.auth_id;
    return query select 'linked', private.masked_account(code.auth_id);
    return;
  end if;
  if sender.auth_id is not null then
    if not redelivered then
      perform private.refuse_code_link(sender.id, code.auth_id, 'PT409: this WhatsApp profile is linked to another account');
    end if;
    return query select 'linked_elsewhere', null::text;
    return;
  end if;
  select * into caller from public.users as u where u.auth_id = code.auth_id;
  if private.account_has_other_whatsapp(sender, caller) then
    if not redelivered then
      perform private.refuse_code_link(sender.id, code.auth_id, 'PT409: the account already has another WhatsApp profile');
    end if;
    return query select 'account_has_whatsapp', null::text;
    return;
  end if;

  -- Hold the code for this sender (a redelivery keeps the first delivery's hold), and
  -- release whatever other code the sender held: YES confirms the latest.
  if code.held_by_user_id is distinct from handle_link_code.sender_id or not redelivered then
    update private.whatsapp_link_codes as c
    set held_by_user_id = handle_link_code.sender_id,
        held_at = now(),
        holds = c.holds + case when c.held_by_user_id is distinct from handle_link_code.sender_id then 1 else 0 end
    where c.auth_id = code.auth_id;
  end if;
  update private.whatsapp_link_codes as c
  set held_by_user_id = null, held_at = null
  where c.held_by_user_id = handle_link_code.sender_id and c.auth_id <> code.auth_id and c.consumed_at is null;
  return query select 'code_held', private.masked_account(code.auth_id);
end;
$$;
comment on function private.handle_link_code(uuid, text, text) is
  'What a message whose body is a link code or a confirmation word does: holds the code for the sender (code_held, with the masked account), links on YES (linked), or refuses (code_expired, code_unknown, linked_elsewhere, account_has_whatsapp, too_many_tries, refused); no row for any other message. Called by receive_whatsapp_message.';
revoke execute on function private.handle_link_code(uuid, text, text) from public, anon, authenticated;

-- public rpc ------------------------------------------------------------------
create or replace function public.create_whatsapp_link_code()
returns public.whatsapp_link_code
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_id uuid := (select auth.uid());
  business_number text;
  -- No 0/O, 1/I/L: a person reads the code off a screen.
  alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
  random_bytes bytea;
  new_code text;
  issued private.whatsapp_link_codes;
begin
  if caller_id is null or not exists (select from auth.users as u where u.id = caller_id) then
    raise exception using
      errcode = '42501',
      message = 'create_whatsapp_link_code needs a signed-in user',
      hint = 'Call it with the user''s session (supabase.rpc after sign-in), not with the anon or service key.';
  end if;
  select s.business_number into business_number from public.whatsapp_settings as s;
  if business_number is null then
    raise exception using
      errcode = 'PT503',
      message = 'public.whatsapp_settings.business_number is not set',
      hint = 'Insert the business''s WhatsApp number: insert into public.whatsapp_settings (business_number) values (''+14155238886'').';
  end if;

  for attempt in 1..5 loop
    random_bytes := extensions.gen_random_bytes(12);
    -- Two random bytes per character: the modulo's bias is under 0.05 %.
    select 'LINK-' || string_agg(substr(alphabet, (get_byte(random_bytes, 2 * i) * 256 + get_byte(random_bytes, 2 * i + 1)) % 31 + 1, 1), '' order by i)
    into new_code
    from generate_series(0, 5) as i;
    begin
      insert into private.whatsapp_link_codes as c (auth_id, code_hash, expires_at)
      values (caller_id, extensions.digest(new_code, 'sha256'), now() + interval '10 minutes')
      on conflict (auth_id) do update
      set code_hash = excluded.code_hash,
          created_at = now(),
          expires_at = excluded.expires_at,
          held_by_user_id = null,
          held_at = null,
          holds = 0,
          consumed_at = null,
          issued_in_window = case when c.window_started_at > now() - interval '15 minutes' then c.issued_in_window + 1 else 1 end,
          window_started_at = case when c.window_started_at > now() - interval '15 minutes' then c.window_started_at else now() end
      where c.window_started_at <= now() - interval '15 minutes' or c.issued_in_window < 5
      returning * into issued;
    exception
      when unique_violation then
        continue;  -- another account's live code has the same text: draw again
    end;
    if issued.auth_id is null then
      raise exception using
        errcode = 'PT429',
        message = 'too many WhatsApp link codes: at most 5 per account in 15 minutes',
        hint = 'Show the code made last, or try again in a few minutes.';
    end if;
    return (new_code, issued.expires_at, format('https://wa.me/%s?text=%s', substr(business_number, 2), new_code))::public.whatsapp_link_code;
  end loop;
  raise exception using
    errcode = '40001',
    message = 'could not draw an unused link code; retry';
end;
$$;
comment on function public.create_whatsapp_link_code() is
  'Makes the signed-in account''s WhatsApp link code (replacing its previous one): the code, its expiry (10 minutes) and the https://wa.me link that sends it. The person sends it from WhatsApp and confirms with YES. PT429 over 5 codes in 15 minutes, PT503 when public.whatsapp_settings has no number. Authenticated only.';
revoke execute on function public.create_whatsapp_link_code() from public, anon, authenticated, service_role;
grant execute on function public.create_whatsapp_link_code() to authenticated;
