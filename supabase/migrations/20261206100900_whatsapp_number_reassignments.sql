-- public.whatsapp_number_reassignments: the audit of numbers that changed hands.
-- Carriers recycle mobile numbers. WhatsApp's business-scoped user id (BSUID) belongs to
-- the WhatsApp account, not the number, so a known number arriving with another BSUID
-- means another account writes from it now: the number moves to that account's profile
-- and the previous profile keeps its history (private.whatsapp_user). Each move is
-- recorded here: the number, both profiles, both BSUIDs, when and why.
--
-- The previous owner's account may read its own rows (the app can show that the number
-- moved), but only the columns about itself: the new owner's profile id and BSUID are
-- not granted. previous_user_id references the profile, so a merge carries the row to
-- the person's surviving profile and forget_user erases it with the previous owner;
-- new_user_id does not, so erasing the new owner keeps the previous owner's record
-- (and the rule that a previous owner never takes the number back) and clears only the
-- new owner's ids.

-- tables ----------------------------------------------------------------------
create table public.whatsapp_number_reassignments (
  id uuid primary key default gen_random_uuid(),
  phone_number text not null,
  previous_user_id uuid not null references public.users (id) on delete cascade,
  previous_whatsapp_user_id text not null,
  new_user_id uuid,
  new_whatsapp_user_id text,
  reason text not null,
  created_at timestamptz not null default now(),
  constraint whatsapp_number_reassignments_phone_number_e164 check (phone_number ~ '^\+[1-9][0-9]{6,14}$'),
  constraint whatsapp_number_reassignments_new_owner_known_together check (
    (new_user_id is null) = (new_whatsapp_user_id is null)
  )
);

comment on table public.whatsapp_number_reassignments is
  'Audit of WhatsApp numbers that changed hands: a message from a known number carried another account''s BSUID, so the number moved to that account''s profile and the previous profile kept its history.';
comment on column public.whatsapp_number_reassignments.id is 'The audit row id.';
comment on column public.whatsapp_number_reassignments.phone_number is
  'The number that moved, in E.164, as the previous profile held it: its former number.';
comment on column public.whatsapp_number_reassignments.previous_user_id is
  'The profile that gave the number up and kept its history; follows that person''s profile through merges, erased with them.';
comment on column public.whatsapp_number_reassignments.previous_whatsapp_user_id is
  'The BSUID of the previous profile when the number moved: a later message with this BSUID and number goes to that profile and leaves the number where it is.';
comment on column public.whatsapp_number_reassignments.new_user_id is
  'The profile that took the number (the new account''s); null once that profile is erased or merged away. Not readable by the previous owner.';
comment on column public.whatsapp_number_reassignments.new_whatsapp_user_id is
  'The BSUID the message carried, the new account''s; null once its profile is erased or merged away. Not readable by the previous owner.';
comment on column public.whatsapp_number_reassignments.reason is
  'Why the number moved, in words that name neither owner''s ids.';
comment on column public.whatsapp_number_reassignments.created_at is
  'When the number moved: a phone verification older than this proves nothing about the number''s current owner.';

-- previous_user_id: the foreign key's index (merges and erasure look rows up by it, the
-- previous owner's policy too). The number's key: a previous owner's late message and a
-- link's check look up the moves of a number in any equivalent form. new_user_id: a
-- deleted profile's ids are cleared by it.
create index whatsapp_number_reassignments_previous_user_id_idx
on public.whatsapp_number_reassignments (previous_user_id);
create index whatsapp_number_reassignments_phone_match_key_idx
on public.whatsapp_number_reassignments (private.phone_match_key(phone_number));
create index whatsapp_number_reassignments_new_user_id_idx
on public.whatsapp_number_reassignments (new_user_id);

alter table public.whatsapp_number_reassignments enable row level security;

revoke all on table public.whatsapp_number_reassignments from anon, authenticated;
grant select (id, phone_number, previous_user_id, previous_whatsapp_user_id, reason, created_at)
on table public.whatsapp_number_reassignments to authenticated;
grant select, insert, update, delete on table public.whatsapp_number_reassignments to service_role;

-- triggers --------------------------------------------------------------------
create or replace function private.clear_new_owner_of_reassignments()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A profile is deleted when a merge absorbs it or forget_user erases it: either way the
  -- new owner's ids leave the audit, and the previous owner's record stays.
  update public.whatsapp_number_reassignments as r
  set new_user_id = null, new_whatsapp_user_id = null
  where r.new_user_id = old.id;
  return old;
end;
$$;
comment on function private.clear_new_owner_of_reassignments() is
  'After delete on public.users: clears the deleted profile''s id and BSUID from the moves it took a number in, keeping the previous owners'' records.';
revoke execute on function private.clear_new_owner_of_reassignments() from public, anon, authenticated;

create trigger users_clear_new_owner_of_reassignments
after delete on public.users
for each row execute function private.clear_new_owner_of_reassignments();

-- policies --------------------------------------------------------------------
create policy "accounts read that their number moved"
on public.whatsapp_number_reassignments
for select
to authenticated
using (
  previous_user_id in (select u.id from public.users as u where u.auth_id = (select auth.uid()))
);
