-- public.receive_whatsapp_message: the relay's single round trip per webhook.
-- One transaction: the sender's profile found or created, the message stored once
-- per MessageSid. A redelivery returns what the first delivery returned, so the
-- relay answers it the same way (a new user is greeted even if Twilio never got
-- the first answer).

create or replace function public.receive_whatsapp_message(
  message_sid text,
  phone text,
  body text,
  profile_name text default null,
  media jsonb default '[]'::jsonb
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
  sender_id uuid;
  sender_created boolean;
  stored public.whatsapp_messages;
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
  perform private.normalize_phone(receive_whatsapp_message.phone, 'phone');

  select * into stored from public.whatsapp_messages as m where m.message_sid = sid;
  if found then
    return query select stored.user_id, stored.id, stored.user_created, true;
    return;
  end if;

  select (w.profile).id, w.created into sender_id, sender_created
  from private.whatsapp_user(receive_whatsapp_message.phone, receive_whatsapp_message.profile_name) as w;

  insert into public.whatsapp_messages (message_sid, user_id, body, media, profile_name, user_created)
  values (
    sid,
    sender_id,
    coalesce(receive_whatsapp_message.body, ''),
    attachments,
    nullif(btrim(receive_whatsapp_message.profile_name), ''),
    sender_created
  )
  on conflict (message_sid) do nothing
  returning * into stored;
  if stored.id is not null then
    return query select stored.user_id, stored.id, stored.user_created, false;
    return;
  end if;

  -- A concurrent delivery of the same MessageSid stored it first.
  select * into stored from public.whatsapp_messages as m where m.message_sid = sid;
  return query select stored.user_id, stored.id, stored.user_created, true;
end;
$$;

comment on function public.receive_whatsapp_message(text, text, text, text, jsonb) is
  'Stores an inbound WhatsApp message once per MessageSid and returns the sender''s profile id; duplicate = true for redeliveries. Service role only.';
revoke execute on function public.receive_whatsapp_message(text, text, text, text, jsonb) from public, anon, authenticated;  -- noqa: LT05
grant execute on function public.receive_whatsapp_message(text, text, text, text, jsonb) to service_role;
