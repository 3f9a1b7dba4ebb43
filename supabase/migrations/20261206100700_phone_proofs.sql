-- Account linking acts only on a confirmation that proves this account controls the
-- number now. phone_confirmed_at alone is not such proof: whatever wrote the phone later,
-- and however the confirmation came about, it stays set. Three ways that goes wrong, each
-- reproduced against what Supabase Auth (GoTrue) writes:
--
-- 1. An admin write of the phone (auth.admin.updateUserById(id, { phone })) writes the
--    phone column alone: phone_confirmed_at still carries the confirmation of the number
--    before, and the new number's WhatsApp history would be linked.
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
-- backend confirmation lifts the hold.
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

-- trigger functions -----------------------------------------------------------
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
