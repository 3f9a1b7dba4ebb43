-- public.whatsapp_messages: every inbound WhatsApp message, stored once per MessageSid.

-- tables ----------------------------------------------------------------------
create table public.whatsapp_messages (
  id uuid primary key default gen_random_uuid(),
  message_sid varchar(64) not null unique,
  user_id uuid not null references public.users (id) on delete cascade,
  body text not null default '',
  media jsonb not null default '[]'::jsonb,
  profile_name text,
  user_created boolean not null default false,
  received_at timestamptz not null default now(),
  -- varchar(64) and an unbounded match rather than text and '^[A-Za-z0-9]{2,64}$': PostgreSQL's
  -- regex engine unrolls a bounded repeat, and that match cost ~8 us of every insert.
  constraint whatsapp_messages_message_sid_shape check (message_sid ~ '^[A-Za-z0-9][A-Za-z0-9]+$'),
  constraint whatsapp_messages_media_is_array check (jsonb_typeof(media) = 'array')
);

comment on table public.whatsapp_messages is
  'Inbound WhatsApp messages, one row per Twilio MessageSid however often Twilio delivers it.';
comment on column public.whatsapp_messages.id is 'The message id.';
comment on column public.whatsapp_messages.message_sid is 'Twilio''s MessageSid: the idempotency key of a delivery.';
comment on column public.whatsapp_messages.user_id is 'The sender''s profile.';
comment on column public.whatsapp_messages.body is 'The text as received; empty for media-only messages.';
comment on column public.whatsapp_messages.media is 'Attachments as a JSON array of {url, content_type}.';
comment on column public.whatsapp_messages.profile_name is 'The sender''s WhatsApp display name at the time.';
comment on column public.whatsapp_messages.user_created is
  'Whether this message created the sender''s profile, so a redelivery can answer as the first delivery did.';
comment on column public.whatsapp_messages.received_at is 'When the message was first stored.';

create index whatsapp_messages_user_id_received_at_idx
on public.whatsapp_messages (user_id, received_at desc);

alter table public.whatsapp_messages enable row level security;

revoke all on table public.whatsapp_messages from anon, authenticated;
grant select on table public.whatsapp_messages to authenticated;
grant select, insert, update, delete on table public.whatsapp_messages to service_role;

-- policies --------------------------------------------------------------------
create policy "users read own messages"
on public.whatsapp_messages
for select
to authenticated
using (
  user_id in (select u.id from public.users as u where u.auth_id = (select auth.uid()))
);
