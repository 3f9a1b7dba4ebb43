-- public.receive_whatsapp_message: the relay's single round trip per webhook.
-- One transaction: the sender's profile found or created, the message stored once
-- per MessageSid. A redelivery returns what the first delivery returned, so the
-- relay answers it the same way (a new user is greeted even if Twilio never got
-- the first answer).
-- It also answers the consent keywords (whatsapp_consent) and link codes
-- (whatsapp_link_codes), so it comes after both.

-- public rpc ------------------------------------------------------------------
create or replace function public.receive_whatsapp_message(
  message_sid text,
  phone text,
  body text,
  profile_name text default null,
  media jsonb default '[]'::jsonb,
  whatsapp_user_id text default null
)
returns table (
  user_id uuid,
  message_id uuid,
  user_created boolean,
  duplicate boolean,
  consent_reply text,
  link_code text,
  link_account text
)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  sid text := btrim(receive_whatsapp_message.message_sid);
  attachments jsonb := coalesce(receive_whatsapp_message.media, '[]'::jsonb);
  -- The number as a profile stores it, if the message wrote it that way (Twilio does).
  phone_as_stored text := case
    when left(receive_whatsapp_message.phone, 9) = 'whatsapp:' then substr(receive_whatsapp_message.phone, 10)
    else receive_whatsapp_message.phone
  end;
  sender public.whatsapp_sender;
  consent public.whatsapp_consent_keywords;
  stored boolean;
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

  -- The sender first, then the message; a redelivery finds the sender and stores nothing.
  -- Almost every message comes from a known sender whose profile already holds what the
  -- message carries: the number exactly as stored, the BSUID if one is sent, a name if one
  -- is sent. Such a profile is found here by one lookup, as private.whatsapp_user would find
  -- it and leave it, without the call (its frame and rules cost ~15 % of the message).
  -- Equality with stored values, which are valid, validates the number and the BSUID; and
  -- the lookup locks as whatsapp_user's does: FOR KEY SHARE only with a BSUID.
  -- tests/test_receive_known_sender.py holds both ways to the same outcome.
  if receive_whatsapp_message.phone is not null then
    if nullif(btrim(receive_whatsapp_message.whatsapp_user_id), '') is null then
      select u.id, false into sender.id, sender.created
      from public.users as u
      where private.phone_match_key(u.phone_number) = private.phone_match_key(phone_as_stored)
        and u.phone_number = phone_as_stored
        and (u.full_name is not null or nullif(btrim(receive_whatsapp_message.profile_name), '') is null);
    else
      select u.id, false into sender.id, sender.created
      from public.users as u
      where private.phone_match_key(u.phone_number) = private.phone_match_key(phone_as_stored)
        and u.phone_number = phone_as_stored
        and u.whatsapp_user_id = receive_whatsapp_message.whatsapp_user_id
        and (u.full_name is not null or nullif(btrim(receive_whatsapp_message.profile_name), '') is null)
      for key share of u;
    end if;
  end if;
  if sender.id is null then
    -- Everyone else: whatsapp_user validates phone and BSUID (22023 before anything is
    -- written), creates, fills in and merges.
    sender := private.whatsapp_user(
      receive_whatsapp_message.phone,
      receive_whatsapp_message.profile_name,
      receive_whatsapp_message.whatsapp_user_id,
      lock_found => true
    );
  end if;

  -- link codes: a body shaped like a link code or a confirmation word (a regular expression,
  -- no lookup) is handled by private.handle_link_code, in this transaction and before the
  -- message is stored, so that it tells a redelivery (the MessageSid already stored) apart.
  if upper(btrim(receive_whatsapp_message.body)) ~ '^(LINK-[A-Z0-9]{6}|YES|SIM|SÍ|Sí)$' then
    select h.outcome, h.account into link_code, link_account
    from private.handle_link_code(sender.id, receive_whatsapp_message.body, sid) as h;
  end if;

  insert into public.whatsapp_messages as m (message_sid, user_id, body, media, profile_name, user_created)
  values (
    sid,
    sender.id,
    coalesce(receive_whatsapp_message.body, ''),
    attachments,
    nullif(btrim(receive_whatsapp_message.profile_name), ''),
    sender.created
  )
  on conflict (message_sid) do nothing
  returning m.user_id, m.id, m.user_created, false into user_id, message_id, user_created, duplicate;
  stored := found;
  -- A consent keyword is a whole message of a few words; longer messages skip the lookup.
  if length(receive_whatsapp_message.body) <= 24 then
    select * into consent from public.whatsapp_consent_keywords as k
    where k.keyword = upper(btrim(regexp_replace(receive_whatsapp_message.body, '[[:space:][:punct:]]+$', '')));
    consent_reply := consent.reply;
  end if;
  if stored then
    if consent.keyword is not null then
      perform private.set_whatsapp_consent(sender.id, consent.effect, consent.keyword);
    end if;
    return next;
    return;
  end if;

  -- A redelivery: the first delivery stored it (perhaps concurrently, just now), and set
  -- the consent its keyword asked for; the reply confirms it again.
  select m.user_id, m.id, m.user_created, true into user_id, message_id, user_created, duplicate
  from public.whatsapp_messages as m
  where m.message_sid = sid;
  if not found then
    -- forget_user erased the first delivery between the insert and this read. Delivered
    -- again, the message belongs to whoever writes from the number now.
    raise exception using
      errcode = '40001',
      message = format('message_sid %s was erased while it was delivered again; retry', sid);
  end if;
  return next;
end;
$$;
comment on function public.receive_whatsapp_message(text, text, text, text, jsonb, text) is
  'Stores an inbound WhatsApp message once per MessageSid and returns the sender''s profile id, found by phone and/or BSUID (whatsapp_user_id); duplicate = true for redeliveries. A message that is a consent keyword (public.whatsapp_consent_keywords) opts the sender out or in, and consent_reply is its confirmation. A body that is a link code or its confirmation (YES) is acted on: link_code says what happened, link_account names the account masked. Service role only.';
revoke execute on function public.receive_whatsapp_message(text, text, text, text, jsonb, text) from public, anon, authenticated;  -- noqa: LT05
grant execute on function public.receive_whatsapp_message(text, text, text, text, jsonb, text) to service_role;
