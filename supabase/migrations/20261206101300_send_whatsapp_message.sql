-- Queuing a WhatsApp message to a profile, with WhatsApp's rules enforced in SQL.
-- WhatsApp lets a business send free-form text only within 24 hours of the person's last
-- message to it (the customer-service window; only their messages open it, never ours);
-- outside it only an approved template goes (Twilio refuses free-form text with 63016).
-- A person who opted out gets nothing. send_whatsapp_message refuses each case with its
-- own SQLSTATE, in the caller's transaction, so the app's own writes and the message
-- commit or roll back together; a worker (glue worker) sends what commits.
-- The readers let an app choose between text and a template before it sends.

-- helper functions ------------------------------------------------------------
create or replace function private.whatsapp_window_closes_at(user_id uuid)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select max(m.received_at) + interval '24 hours'
  from public.whatsapp_messages as m
  where m.user_id = whatsapp_window_closes_at.user_id;
$$;
comment on function private.whatsapp_window_closes_at(uuid) is
  'When the profile''s 24-hour customer-service window closes: 24 hours after its last inbound message; null if it never wrote.';
revoke execute on function private.whatsapp_window_closes_at(uuid) from public, anon, authenticated;

-- public rpc ------------------------------------------------------------------
create or replace function public.whatsapp_window_open(user_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(private.whatsapp_window_closes_at(whatsapp_window_open.user_id) > now(), false);
$$;
comment on function public.whatsapp_window_open(uuid) is
  'Whether free-form text may be sent to the profile now: its last inbound WhatsApp message is less than 24 hours old. Service role only.';
revoke execute on function public.whatsapp_window_open(uuid) from public, anon, authenticated;
grant execute on function public.whatsapp_window_open(uuid) to service_role;

create or replace function public.whatsapp_messaging_state(user_id uuid)
returns table (
  to_address text,
  opted_out boolean,
  window_closes_at timestamptz,
  window_open boolean,
  can_send_text boolean,
  can_send_template boolean
)
language sql
stable
security definer
set search_path = ''
as $$
  with state as (
    select case when u.phone_number is not null then 'whatsapp:' || u.phone_number end as to_address,
           public.whatsapp_opted_out(u.id) as opted_out,
           private.whatsapp_window_closes_at(u.id) as window_closes_at
    from public.users as u
    where u.id = whatsapp_messaging_state.user_id
  )
  select s.to_address,
         s.opted_out,
         s.window_closes_at,
         coalesce(s.window_closes_at > now(), false),
         s.to_address is not null and not s.opted_out and coalesce(s.window_closes_at > now(), false),
         s.to_address is not null and not s.opted_out
  from state as s;
$$;
comment on function public.whatsapp_messaging_state(uuid) is
  'What send_whatsapp_message would accept for the profile now: its address, opt-out, window and whether text or a template may go. No row for an unknown profile. Service role only.';
revoke execute on function public.whatsapp_messaging_state(uuid) from public, anon, authenticated;
grant execute on function public.whatsapp_messaging_state(uuid) to service_role;

create or replace function public.send_whatsapp_message(
  user_id uuid,
  idempotency_key text,
  body text default null,
  content_sid text default null,
  content_variables jsonb default null
)
returns public.outbound_messages
language plpgsql
security definer
set search_path = ''
as $$
declare
  profile public.users;
  key text := btrim(send_whatsapp_message.idempotency_key);
  message public.outbound_messages;
begin
  if send_whatsapp_message.user_id is null then
    raise exception using
      errcode = '22023',
      message = 'user_id is required',
      hint = 'Pass the id of the public.users profile to message.';
  end if;
  if key is null or key = '' or length(key) > 200 then
    raise exception using
      errcode = '22023',
      message = 'idempotency_key is required (1 to 200 characters)',
      hint = 'Pass a key unique to this message for this person, e.g. the id of the order it is about.';
  end if;
  if (send_whatsapp_message.body is null) = (send_whatsapp_message.content_sid is null) then
    raise exception using
      errcode = '22023',
      message = 'exactly one of body and content_sid is required',
      hint = 'Pass free-form text as body, or a Twilio Content template as content_sid (with content_variables).';
  end if;
  if send_whatsapp_message.body is not null and btrim(send_whatsapp_message.body) = '' then
    raise exception using
      errcode = '22023',
      message = 'body is empty',
      hint = 'Pass the text to send.';
  end if;
  if send_whatsapp_message.content_sid is not null and send_whatsapp_message.content_sid !~ '^HX[0-9a-fA-F]{32}$' then
    raise exception using
      errcode = '22023',
      message = format('content_sid %s is not a Twilio Content SID', quote_literal(left(send_whatsapp_message.content_sid, 40))),
      hint = 'Pass the SID of an approved Content template, HX followed by 32 hex digits.';
  end if;
  if send_whatsapp_message.content_variables is not null
     and (send_whatsapp_message.content_sid is null or jsonb_typeof(send_whatsapp_message.content_variables) <> 'object') then
    raise exception using
      errcode = '22023',
      message = 'content_variables must be a JSON object and goes with content_sid',
      hint = 'Pass the template''s variables as {"1": "Ada", ...}.';
  end if;

  -- Locked for the rest of the transaction: a merge or an erasure of the profile waits
  -- until the message is queued (and then moves or erases it with the profile).
  select * into profile from public.users as u where u.id = send_whatsapp_message.user_id for key share;
  if not found then
    raise exception using
      errcode = 'PT404',
      message = format('user_id %s has no profile', send_whatsapp_message.user_id),
      hint = 'Message an existing public.users profile.';
  end if;

  -- A repeated key returns the first row, whatever happened since (the window may have
  -- closed): the caller retried, it did not ask for a second message.
  select * into message from public.outbound_messages as o
  where o.user_id = profile.id and o.idempotency_key = key;
  if found then
    if message.body is distinct from send_whatsapp_message.body
       or message.content_sid is distinct from send_whatsapp_message.content_sid
       or message.content_variables is distinct from send_whatsapp_message.content_variables then
      raise exception using
        errcode = 'PT409',
        message = format('idempotency_key %s was already used for another message to user_id %s', quote_literal(key), profile.id),
        hint = 'Use a new key for a new message; repeat a key only to retry the same message.';
    end if;
    return message;
  end if;

  if profile.phone_number is null then
    raise exception using
      errcode = 'PT422',
      message = format('user_id %s has no WhatsApp number', profile.id),
      hint = 'The person has not written from or confirmed a WhatsApp number yet.';
  end if;
  if public.whatsapp_opted_out(profile.id) then
    raise exception using
      errcode = 'PT403',
      message = format('user_id %s opted out of WhatsApp messages', profile.id),
      hint = 'Send nothing until the person opts back in (writes START or another opt-in keyword).';
  end if;
  if send_whatsapp_message.body is not null
     and coalesce(private.whatsapp_window_closes_at(profile.id) <= now(), true) then
    raise exception using
      errcode = 'PT428',
      message = format('body: user_id %s has not written in the last 24 hours; a template (content_sid) is needed', profile.id),
      hint = 'Outside WhatsApp''s 24-hour window only an approved template may be sent: pass content_sid instead of body.';
  end if;

  insert into public.outbound_messages as o (user_id, to_address, body, content_sid, content_variables, idempotency_key)
  values (
    profile.id, 'whatsapp:' || profile.phone_number, send_whatsapp_message.body, send_whatsapp_message.content_sid,
    send_whatsapp_message.content_variables, key
  )
  on conflict on constraint outbound_messages_user_key do nothing
  returning * into message;
  if found then
    return message;
  end if;
  -- The same key queued concurrently and committed while we waited: that row is the answer.
  select * into message from public.outbound_messages as o
  where o.user_id = profile.id and o.idempotency_key = key;
  if message.body is distinct from send_whatsapp_message.body
     or message.content_sid is distinct from send_whatsapp_message.content_sid
     or message.content_variables is distinct from send_whatsapp_message.content_variables then
    raise exception using
      errcode = 'PT409',
      message = format('idempotency_key %s was already used for another message to user_id %s', quote_literal(key), profile.id),
      hint = 'Use a new key for a new message; repeat a key only to retry the same message.';
  end if;
  return message;
end;
$$;
comment on function public.send_whatsapp_message(uuid, text, text, text, jsonb) is
  'Queues a WhatsApp message to a profile (free-form body, or a Content template by content_sid): PT404 unknown profile, PT422 no WhatsApp number, PT403 opted out, PT428 free-form text outside the 24-hour window (a template is needed), PT409 a key reused for another message; a repeated idempotency_key returns the first row. Service role only.';
revoke execute on function public.send_whatsapp_message(uuid, text, text, text, jsonb) from public, anon, authenticated;
grant execute on function public.send_whatsapp_message(uuid, text, text, text, jsonb) to service_role;
