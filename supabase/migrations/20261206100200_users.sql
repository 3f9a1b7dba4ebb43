-- public.users: one profile per person, whether they reached us on WhatsApp, in the
-- app, or both. Clients read their own profile and may change only their name.

-- tables ----------------------------------------------------------------------
create table public.users (
  id uuid primary key default gen_random_uuid(),
  auth_id uuid unique references auth.users (id) on delete set null,
  phone_number text,
  email text,
  full_name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  whatsapp_user_id text,
  constraint users_phone_number_e164 check (phone_number ~ '^\+[1-9][0-9]{6,14}$'),
  constraint users_has_an_identity
    check (phone_number is not null or whatsapp_user_id is not null or auth_id is not null),
  constraint users_whatsapp_user_id_key unique (whatsapp_user_id),
  constraint users_whatsapp_user_id_shape
    check (whatsapp_user_id ~ '^[A-Z]{2}(\.[A-Z]{2,8})?\.[A-Za-z0-9]{1,128}$')
);

comment on table public.users is
  'One profile per person across channels: WhatsApp senders (by phone) and app users (by Supabase Auth id).';
comment on column public.users.id is 'The profile id every other table references.';
comment on column public.users.auth_id is 'The Supabase Auth user of this person, null for WhatsApp-only profiles.';
comment on column public.users.phone_number is
  'The WhatsApp number in E.164, in the form WhatsApp writes from (replies go there); unique up to equivalent forms. Null for app users who have not verified a phone.';
comment on column public.users.email is
  'The Auth email once Supabase Auth has confirmed it (email_confirmed_at), mirrored from auth.users; unique regardless of case.';
comment on column public.users.full_name is
  'Display name: from sign-up metadata or the WhatsApp profile name; the user may change it.';
comment on column public.users.created_at is 'When the profile was created.';
comment on column public.users.updated_at is 'When the profile last changed; kept by a trigger.';
comment on column public.users.whatsapp_user_id is
  'WhatsApp''s business-scoped user id (BSUID) of this person, as Twilio sends it in ExternalUserId; null until a message carries one.';

create unique index users_email_key on public.users (lower(email));

-- An expression index rather than a stored key column: a stored generated column is
-- recomputed on every update, as the updating role, and the API roles may not call
-- functions in private. Lookups compute the key once and compare it to the index.
create unique index users_phone_match_key on public.users (private.phone_match_key(phone_number));
comment on index public.users_phone_match_key is
  'One profile per number, whatever equivalent form (private.phone_match_key) WhatsApp or Supabase Auth wrote it in.';

alter table public.users enable row level security;

revoke all on table public.users from anon, authenticated;
grant select on table public.users to authenticated;
grant update (full_name) on table public.users to authenticated;
grant select, insert, update, delete on table public.users to service_role;

-- triggers --------------------------------------------------------------------
create or replace function private.touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;
comment on function private.touch_updated_at() is 'Sets updated_at on every update of the row.';
revoke execute on function private.touch_updated_at() from public, anon, authenticated;

create trigger users_touch_updated_at
before update on public.users
for each row execute function private.touch_updated_at();

-- policies --------------------------------------------------------------------
create policy "users read own profile"
on public.users
for select
to authenticated
using (auth_id = (select auth.uid()));

create policy "users update own name"
on public.users
for update
to authenticated
using (auth_id = (select auth.uid()))
with check (auth_id = (select auth.uid()));
