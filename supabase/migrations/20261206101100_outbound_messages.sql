-- public.outbound_messages: the outbox. The application queues a WhatsApp message to a
-- profile in its own transaction (public.send_whatsapp_message); a worker claims queued
-- rows, sends them through Twilio's Messages API and records the outcome; Twilio's status
-- callbacks move each row forward. A row names the profile, so a merge moves it and
-- forget_user erases it like every other row referencing public.users(id).

-- tables ----------------------------------------------------------------------
create table public.outbound_messages (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  to_address text not null,
  body text,
  content_sid text,
  content_variables jsonb,
  idempotency_key text not null,
  status text not null default 'queued',
  message_sid varchar(64) unique,
  error_code integer,
  error_message text,
  attempts integer not null default 0,
  claimed_until timestamptz,
  queued_at timestamptz not null default now(),
  sending_at timestamptz,
  unknown_at timestamptz,
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  failed_at timestamptz,
  undelivered_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint outbound_messages_status_known check (
    status in ('queued', 'sending', 'unknown', 'sent', 'delivered', 'read', 'failed', 'undelivered')
  ),
  constraint outbound_messages_body_or_template check ((body is null) <> (content_sid is null)),
  constraint outbound_messages_variables_with_template check (content_variables is null or content_sid is not null),
  constraint outbound_messages_variables_object check (
    content_variables is null or jsonb_typeof(content_variables) = 'object'
  ),
  constraint outbound_messages_idempotency_key_shape check (length(idempotency_key) between 1 and 200),
  constraint outbound_messages_user_key unique (user_id, idempotency_key)
);

comment on table public.outbound_messages is
  'Outbound WhatsApp messages (the outbox): queued by send_whatsapp_message, sent by the glue worker, moved forward by Twilio''s status callbacks.';
comment on column public.outbound_messages.id is 'The outbound message id.';
comment on column public.outbound_messages.user_id is 'The profile the message is for.';
comment on column public.outbound_messages.to_address is
  'The address resolved when the message was queued (whatsapp:+E.164); a later change of the profile''s number does not redirect it.';
comment on column public.outbound_messages.body is 'Free-form text; null for a template message.';
comment on column public.outbound_messages.content_sid is 'The Twilio Content template (HX...); null for free-form text.';
comment on column public.outbound_messages.content_variables is 'The template''s variables as a JSON object, e.g. {"1": "Ada"}.';
comment on column public.outbound_messages.idempotency_key is
  'The caller''s key: queuing the same key for the same profile again returns the first row.';
comment on column public.outbound_messages.status is
  'queued, sending (claimed by a worker), unknown (the API call''s outcome is unknown: reconciled before any resend), sent (Twilio accepted it), delivered, read, failed, undelivered.';
comment on column public.outbound_messages.message_sid is 'Twilio''s MessageSid once Twilio accepted the message.';
comment on column public.outbound_messages.error_code is 'Twilio''s error code (e.g. 63016 outside the 24-hour window).';
comment on column public.outbound_messages.error_message is 'What went wrong, in words.';
comment on column public.outbound_messages.attempts is
  'How often a worker claimed the message; a worker''s outcome is recorded only for the attempt it claimed.';
comment on column public.outbound_messages.claimed_until is
  'Until when the claiming worker holds the message; a sending message past it is reconciled as unknown.';
comment on column public.outbound_messages.queued_at is 'When the message was queued.';
comment on column public.outbound_messages.sending_at is 'When a worker last claimed it.';
comment on column public.outbound_messages.unknown_at is 'When the outcome of an API call became unknown.';
comment on column public.outbound_messages.sent_at is 'When Twilio accepted or reported it sent.';
comment on column public.outbound_messages.delivered_at is 'When Twilio reported it delivered.';
comment on column public.outbound_messages.read_at is 'When Twilio reported it read.';
comment on column public.outbound_messages.failed_at is 'When it failed (a 4xx from the API or a failed callback).';
comment on column public.outbound_messages.undelivered_at is 'When Twilio reported it undelivered.';
comment on column public.outbound_messages.updated_at is 'When the row last changed.';

create index outbound_messages_queued_idx on public.outbound_messages (queued_at) where status = 'queued';
comment on index public.outbound_messages_queued_idx is 'Workers claim the oldest queued messages without reading the rest.';

create index outbound_messages_unsettled_idx on public.outbound_messages (claimed_until)
where status in ('sending', 'unknown');
comment on index public.outbound_messages_unsettled_idx is 'Reconciliation finds messages whose outcome is unknown.';

alter table public.outbound_messages enable row level security;

revoke all on table public.outbound_messages from anon, authenticated;
grant select on table public.outbound_messages to authenticated;
grant select, insert, update, delete on table public.outbound_messages to service_role;

-- triggers --------------------------------------------------------------------
create or replace function private.outbound_message_follows_merge()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- A merge moves the absorbed profile's messages to the survivor. Two profiles of one
  -- person may each have used a key ("welcome"): the moved row keeps its own under a
  -- suffix, so the merge goes through and a repeated key still finds the survivor's row.
  if exists (
    select from public.outbound_messages as o
    where o.user_id = new.user_id and o.idempotency_key = new.idempotency_key and o.id <> new.id
  ) then
    new.idempotency_key := left(new.idempotency_key, 150) || ' (merged from ' || old.user_id || ')';
  end if;
  return new;
end;
$$;
comment on function private.outbound_message_follows_merge() is
  'Keeps a merge from failing on two profiles'' equal idempotency keys: the moved row''s key gets a suffix naming its former profile.';
revoke execute on function private.outbound_message_follows_merge() from public, anon, authenticated;

create trigger outbound_messages_follow_merge
before update of user_id on public.outbound_messages
for each row when (old.user_id is distinct from new.user_id)
execute function private.outbound_message_follows_merge();

create trigger outbound_messages_touch_updated_at
before update on public.outbound_messages
for each row execute function private.touch_updated_at();

-- policies --------------------------------------------------------------------
create policy "users read own outbound messages"
on public.outbound_messages
for select
to authenticated
using (
  user_id in (select u.id from public.users as u where u.auth_id = (select auth.uid()))
);
