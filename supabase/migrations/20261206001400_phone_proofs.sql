-- Account linking acts only on a confirmation that proves this account controls the
-- number now. Until here a confirmed phone was phone_confirmed_at set: whatever wrote the
-- phone later, and however the confirmation came about, counted. Three ways that was
-- wrong, each reproduced against what Supabase Auth (GoTrue) writes:
--
-- 1. An admin write of the phone (auth.admin.updateUserById(id, { phone })) writes the
--    phone column alone: phone_confirmed_at still carries the confirmation of the number
--    before, and the new number's WhatsApp history was linked.
-- 2. Verifying a phone change finds the user by `phone_change = <number>`, first row met,
--    and with test codes or Twilio Verify checks the code per number (supabase/auth#2430):
--    an account holding a change to someone else's number pending could receive that
--    person's verification, and the history with it.
-- 3. A phone sign-up holds its number unconfirmed; Auth's later sign-in for that number
--    (signInWithOtp, or another signUp) only sends a code to the same row. Whoever made the
--    sign-up chose its password, and the owner's code then confirmed that account.
--
-- So every change Auth makes to phone or phone_confirmed_at is judged as it happens and
-- the verdict kept in private.phone_proofs; the automatic link and link_whatsapp_account
-- both act on it:
--   phone_change  the UPDATE moves a pending phone_change into phone and renews
--                 phone_confirmed_at (User.ConfirmPhoneChange). Disputed when another
--                 account has a change to the same number (any equivalent form) pending
--                 and sent within the hour: either account may be the one the code was
--                 for. The dispute stays with the confirmation, not with the other row.
--   code          the UPDATE renews phone_confirmed_at of an unchanged phone and clears the
--                 code (User.ConfirmPhone after verifyOtp({ type: 'sms' })): the number is
--                 unique among users, so the code went to this account's number.
--   backend       any other renewal: the admin API's phone_confirm (its ConfirmPhone comes
--                 before SetPhone, so the phone written next in the same transaction is the
--                 one vouched for), or SQL by the project's owner. The service key can
--                 already write every profile: its assertion is accepted.
--   (none)        the phone written with phone_confirmed_at unchanged: not a confirmation.
-- An account is held (no link, PT403) when its sign-up phone is first confirmed by a code
-- that a later request than the sign-up asked for, and it has a password: GoTrue gives
-- phone sign-ups a password even for OTP-only users (a random one), so the only sign of a
-- sign-up made by someone else is that the owner's code was requested separately. Only a
-- backend confirmation lifts the hold. Confirmations made before this migration are kept
-- as they were ('migration'): it cannot tell how they were made.
-- Every trigger here catches what it must: Supabase Auth's own write never fails.

-- tables ----------------------------------------------------------------------
create table private.phone_proofs (
  auth_id uuid primary key references auth.users (id) on delete cascade,
  phone text,
  proven_by text,
  refusal text,
  code_resent boolean not null default false,
  held boolean not null default false,
  updated_at timestamptz not null default now(),
  constraint phone_proofs_proven_by_known check (proven_by in ('phone_change', 'code', 'backend', 'migration')),
  constraint phone_proofs_refusal_known check (refusal in ('contested'))
);

comment on table private.phone_proofs is
  'Per auth user, what the latest write of its phone proved: read by the automatic link and link_whatsapp_account, written only by triggers on auth.users.';
comment on column private.phone_proofs.auth_id is 'The Supabase Auth user.';
comment on column private.phone_proofs.phone is 'auth.users.phone as the latest phone write left it (digits, no +); null before any.';
comment on column private.phone_proofs.proven_by is
  'How that phone was confirmed: phone_change, code (an SMS or WhatsApp code sign-in), backend (admin API or SQL) or migration; null when written without a confirmation.';
comment on column private.phone_proofs.refusal is
  'contested: another account had a change to the same number pending when this one was confirmed; null otherwise.';
comment on column private.phone_proofs.code_resent is
  'The unconfirmed sign-up phone was sent a code by a later request than the sign-up (another sign-up or sign-in for the number, or a resend).';
comment on column private.phone_proofs.held is
  'The sign-up phone was first confirmed by such a later code while the account had a password someone else may know; lifted only by a backend confirmation.';
comment on column private.phone_proofs.updated_at is 'When a trigger last wrote the row.';

alter table private.phone_proofs enable row level security;
revoke all on table private.phone_proofs from public, anon, authenticated, service_role;

-- data ------------------------------------------------------------------------
insert into private.phone_proofs (auth_id, phone, proven_by)
select
  u.id,
  u.phone,
  'migration' as proven_by
from auth.users as u
where u.phone_confirmed_at is not null and coalesce(u.phone, '') <> '';

-- helper functions ------------------------------------------------------------
create or replace function private.phone_change_pending_elsewhere(auth_user_id uuid, phone text)
returns boolean
language sql
stable
set search_path = ''
as $$
  -- Auth's own lookup of a phone change reads every row's phone_change too (no index):
  -- a pending change is rare, so the match key is computed for few rows.
  select exists (
    select from auth.users as o
    where o.id <> phone_change_pending_elsewhere.auth_user_id
      and coalesce(o.phone_change, '') <> ''
      and (o.phone_change_sent_at is null or o.phone_change_sent_at > now() - interval '1 hour')
      and private.phone_match_key(private.try_normalize_phone(o.phone_change))
          = private.phone_match_key(private.try_normalize_phone(phone_change_pending_elsewhere.phone))
  );
$$;

comment on function private.phone_change_pending_elsewhere(uuid, text) is
  'True when another auth user has a change to this number (any equivalent form) pending, sent within the hour (no code lives longer: config.toml [auth.sms] otp_expiry).';
revoke execute on function private.phone_change_pending_elsewhere(uuid, text) from public, anon, authenticated;

create or replace function private.link_verified_phone(auth_user_id uuid, triggered_by text)
returns public.users
language plpgsql
set search_path = ''
as $$
declare
  account record;
  proof private.phone_proofs;
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

  -- The confirmation must prove that this account controls the number now.
  select * into proof from private.phone_proofs as p where p.auth_id = link_verified_phone.auth_user_id;
  if proof.auth_id is null or proof.proven_by is null or proof.phone is distinct from account.phone then
    raise exception using
      errcode = 'PT412',
      message = format('phone %s on this account was not confirmed with a code sent to it', verified_phone),
      hint = 'Sign in with a code sent to the number (auth.signInWithOtp({ phone }), then auth.verifyOtp({ phone, token, type: ''sms'' })), then link again.';
  end if;
  if proof.held then
    raise exception using
      errcode = 'PT403',
      message = format('phone %s was on this account before a code proved it: whoever signed it up may know its password', verified_phone),
      hint = 'Your backend can vouch for the number after its own checks: auth.admin.updateUserById(id, { phone_confirm: true }).';
  end if;
  if proof.refusal = 'contested' then
    raise exception using
      errcode = 'PT412',
      message = format('the confirmation of phone %s is disputed: another account had a change to the same number pending', verified_phone),
      hint = 'Sign in with a code sent to the number (auth.signInWithOtp({ phone }), then auth.verifyOtp({ phone, token, type: ''sms'' })), then link again.';
  end if;

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
  'Links the auth user''s phone when its latest confirmation proves control now (private.phone_proofs): merges the unlinked WhatsApp profile of that number with the user''s profile, or writes the number onto it; audited in public.user_merges. Raises PT412 (no confirmed phone, a phone not confirmed with a code, a disputed confirmation), PT403 (a phone sign-up someone else may hold the password of) or PT409 (number linked to another account).';
revoke execute on function private.link_verified_phone(uuid, text) from public, anon, authenticated;

-- triggers --------------------------------------------------------------------
create or replace function private.record_inserted_phone_proof()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Supabase Auth inserts users unconfirmed and confirms in a later UPDATE: a row inserted
  -- confirmed comes from the project's owner (a seed, an import), who vouches for it.
  begin
    insert into private.phone_proofs (auth_id, phone, proven_by)
    values (new.id, new.phone, 'backend')
    on conflict (auth_id) do nothing;
  exception
    when others then
      raise warning 'phone proof of auth user % not recorded: %', new.id, sqlerrm;
  end;
  return null;
end;
$$;

comment on function private.record_inserted_phone_proof() is
  'After insert on auth.users of a user already holding a confirmed phone: records it as vouched for by the backend.';
revoke execute on function private.record_inserted_phone_proof() from public, anon, authenticated;

create trigger on_auth_user_created_with_phone
after insert on auth.users
for each row
when (new.phone_confirmed_at is not null and coalesce(new.phone, '') <> '')
execute function private.record_inserted_phone_proof();

create or replace function private.note_phone_code_resent()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  begin
    insert into private.phone_proofs as p (auth_id, code_resent)
    values (new.id, true)
    on conflict (auth_id) do update set code_resent = true, updated_at = now();
  exception
    when others then
      raise warning 'resent phone code of auth user % not recorded: %', new.id, sqlerrm;
  end;
  return null;
end;
$$;

comment on function private.note_phone_code_resent() is
  'After Supabase Auth sends another code to an unconfirmed phone (the sign-up''s own code was the first): remembers it for the first confirmation.';
revoke execute on function private.note_phone_code_resent() from public, anon, authenticated;

-- The sign-up's own request sends the first code (confirmation_sent_at was null); any
-- later request for the number sends the next.
create trigger on_auth_user_phone_code_resent
after update of confirmation_sent_at on auth.users
for each row
when (
  old.confirmation_sent_at is not null
  and new.confirmation_sent_at is distinct from old.confirmation_sent_at
  and new.phone_confirmed_at is null
  and coalesce(new.phone, '') <> ''
)
execute function private.note_phone_code_resent();

create or replace function private.link_confirmed_phone()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  proof private.phone_proofs;
  proven_by text;
  failed_state text;
  failed_message text;
  phone text;
begin
  if new.phone_confirmed_at is distinct from old.phone_confirmed_at then
    if coalesce(old.phone_change, '') <> '' and new.phone is not distinct from old.phone_change
       and coalesce(new.phone_change, '') = '' then
      proven_by := 'phone_change';
    elsif new.phone is not distinct from old.phone and coalesce(old.confirmation_token, '') <> ''
          and coalesce(new.confirmation_token, '') = '' then
      proven_by := 'code';
    else
      proven_by := 'backend';
      -- adminUserUpdate confirms before it writes the phone: the phone written next, in
      -- this transaction, is the one vouched for.
      perform set_config('glue.phone_vouched_for', new.id::text, true);
    end if;
  elsif current_setting('glue.phone_vouched_for', true) = new.id::text then
    proven_by := 'backend';
  end if;
  if coalesce(new.phone, '') = '' then
    return null;
  end if;

  begin
    select * into proof from private.phone_proofs as p where p.auth_id = new.id;
    insert into private.phone_proofs as p (auth_id, phone, proven_by, refusal, held)
    values (
      new.id,
      new.phone,
      proven_by,
      case when proven_by = 'phone_change' and private.phone_change_pending_elsewhere(new.id, new.phone) then 'contested' end,
      case
        when proven_by = 'backend' then false
        when proven_by = 'code' and old.phone_confirmed_at is null and coalesce(proof.code_resent, false)
             and coalesce(old.encrypted_password, '') <> '' then true
        else coalesce(proof.held, false)
      end
    )
    on conflict (auth_id) do update
    set phone = excluded.phone,
        proven_by = excluded.proven_by,
        refusal = excluded.refusal,
        held = excluded.held,
        updated_at = now();
  exception
    when others then
      -- Unrecorded, the link below finds no proof for this phone and refuses.
      raise warning 'phone proof of auth user % not recorded: %', new.id, sqlerrm;
  end;

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
  'After Supabase Auth writes phone or phone_confirmed_at: records what the write proved (private.phone_proofs), then links as link_whatsapp_account does; a refusal is recorded in public.user_merges, never raised.';
revoke execute on function private.link_confirmed_phone() from public, anon, authenticated;

-- Now also on a renewal of an unchanged phone (a code sign-in, the admin API's
-- phone_confirm) and on a phone written without one, so each is judged.
create or replace trigger on_auth_user_phone_confirmed
after update of phone, phone_confirmed_at on auth.users
for each row
when (
  new.phone_confirmed_at is not null
  and (old.phone is distinct from new.phone or old.phone_confirmed_at is distinct from new.phone_confirmed_at)
)
execute function private.link_confirmed_phone();
