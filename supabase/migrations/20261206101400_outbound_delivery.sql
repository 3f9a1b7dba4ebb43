-- Delivery of the outbox: what the worker (glue worker) and Twilio's status callbacks call.
-- A worker claims queued messages with FOR UPDATE SKIP LOCKED (any number of workers, each
-- message claimed once), sends each through Twilio's Messages API and settles it: sent
-- with its SID, failed with Twilio's code, or unknown when the call timed out or Twilio
-- answered 5xx. An unknown message is never sent again blindly: reconciliation claims it,
-- asks Twilio what happened, and only a message Twilio never saw is queued again.
-- Status callbacks move a message forward only: read beats delivered beats failed and
-- undelivered beat sent, so duplicates and late callbacks change nothing.

-- helper functions ------------------------------------------------------------
create or replace function private.outbound_status_rank(status text)
returns integer
language sql
immutable
set search_path = ''
as $$
  select case outbound_status_rank.status
    when 'queued' then 0
    when 'sending' then 1
    when 'unknown' then 1
    when 'sent' then 2
    when 'failed' then 3
    when 'undelivered' then 3
    when 'delivered' then 4
    when 'read' then 5
  end;
$$;
comment on function private.outbound_status_rank(text) is
  'How far a status is along: a status callback only ever moves a message to a higher rank. Delivered and read outrank failed and undelivered: Twilio moved on.';
revoke execute on function private.outbound_status_rank(text) from public, anon, authenticated;

-- public rpc ------------------------------------------------------------------
create or replace function public.claim_outbound_messages(
  max_messages integer default 10,
  lease_seconds integer default 60
)
returns setof public.outbound_messages
language sql
security definer
set search_path = ''
as $$
  -- A person may have opted out between queuing and now: their message fails here, unsent.
  with picked as (
    select o.id, public.whatsapp_opted_out(o.user_id) as opted_out
    from public.outbound_messages as o
    where o.status = 'queued'
    order by o.queued_at
    limit greatest(1, least(claim_outbound_messages.max_messages, 1000))
    for update skip locked
  ),

  claimed as (
    update public.outbound_messages as o
    set status = case when p.opted_out then 'failed' else 'sending' end,
        attempts = o.attempts + 1,
        sending_at = now(),
        failed_at = case when p.opted_out then now() end,
        error_message = case when p.opted_out then 'the person opted out before the message was sent' end,
        claimed_until = now() + make_interval(secs => greatest(1, claim_outbound_messages.lease_seconds))
    from picked as p
    where o.id = p.id
    returning o.*
  )

  select c.* from claimed as c where c.status = 'sending' order by c.queued_at;
$$;
comment on function public.claim_outbound_messages(integer, integer) is
  'Claims up to max_messages queued messages for one worker (status sending, attempts + 1, held for lease_seconds) without waiting for rows other workers hold; a message to a person who opted out meanwhile fails instead. Service role only.';
revoke execute on function public.claim_outbound_messages(integer, integer) from public, anon, authenticated;
grant execute on function public.claim_outbound_messages(integer, integer) to service_role;

create or replace function public.claim_unsettled_outbound_messages(
  max_messages integer default 10,
  lease_seconds integer default 60
)
returns setof public.outbound_messages
language sql
security definer
set search_path = ''
as $$
  -- Sending past its lease: the worker died or hung mid-call, so the outcome is unknown too.
  with picked as (
    select o.id
    from public.outbound_messages as o
    where o.status in ('sending', 'unknown') and o.claimed_until < now()
    order by o.claimed_until
    limit greatest(1, least(claim_unsettled_outbound_messages.max_messages, 1000))
    for update skip locked
  )

  update public.outbound_messages as o
  set status = 'unknown',
      unknown_at = coalesce(o.unknown_at, now()),
      claimed_until = now() + make_interval(secs => greatest(1, claim_unsettled_outbound_messages.lease_seconds))
  from picked as p
  where o.id = p.id
  returning o.*;
$$;
comment on function public.claim_unsettled_outbound_messages(integer, integer) is
  'Claims messages whose send outcome is unknown (or whose worker''s lease ran out) for reconciliation, held for lease_seconds. Service role only.';
revoke execute on function public.claim_unsettled_outbound_messages(integer, integer) from public, anon, authenticated;
grant execute on function public.claim_unsettled_outbound_messages(integer, integer) to service_role;

create or replace function public.settle_outbound_message(
  outbound_message_id uuid,
  attempt integer,
  outcome text,
  message_sid text default null,
  error_code integer default null,
  error_message text default null,
  recheck_after_seconds integer default 0
)
returns setof public.outbound_messages
language plpgsql
security definer
set search_path = ''
as $$
begin
  if settle_outbound_message.outcome is null or settle_outbound_message.outcome not in ('sent', 'failed', 'unknown', 'queued') then
    raise exception using
      errcode = '22023',
      message = format('outcome %s is not one of sent, failed, unknown, queued', quote_literal(settle_outbound_message.outcome)),
      hint = 'sent with message_sid, failed with error_code, unknown when the call''s outcome is not known, queued to send again.';
  end if;
  if settle_outbound_message.outcome = 'sent' and settle_outbound_message.message_sid !~ '^(SM|MM)[0-9a-fA-F]{32}$' then
    raise exception using
      errcode = '22023',
      message = format('message_sid %s is not a Twilio MessageSid', quote_literal(left(settle_outbound_message.message_sid, 40))),
      hint = 'Pass the sid of the message Twilio created.';
  end if;

  -- Only the claim that is still current may settle: attempt fences off a worker whose
  -- lease ran out, and a message no longer sending or unknown (a callback moved it) stays.
  -- Queued again only from unknown: reconciliation found that Twilio never saw it.
  return query
    update public.outbound_messages as o
    set status = settle_outbound_message.outcome,
        message_sid = case
          when settle_outbound_message.outcome = 'sent' then settle_outbound_message.message_sid
          else o.message_sid
        end,
        error_code = case
          when settle_outbound_message.outcome in ('failed', 'unknown') then settle_outbound_message.error_code
          else o.error_code
        end,
        error_message = settle_outbound_message.error_message,
        sent_at = case when settle_outbound_message.outcome = 'sent' then coalesce(o.sent_at, now()) else o.sent_at end,
        failed_at = case when settle_outbound_message.outcome = 'failed' then now() else o.failed_at end,
        unknown_at = case
          when settle_outbound_message.outcome = 'unknown' then coalesce(o.unknown_at, now())
          else o.unknown_at
        end,
        claimed_until = case
          when settle_outbound_message.outcome = 'unknown'
            then now() + make_interval(secs => greatest(0, settle_outbound_message.recheck_after_seconds))
        end
    where o.id = settle_outbound_message.outbound_message_id
      and o.attempts = settle_outbound_message.attempt
      and o.status in ('sending', 'unknown')
      and (settle_outbound_message.outcome <> 'queued' or o.status = 'unknown')
    returning o.*;
end;
$$;
comment on function public.settle_outbound_message(uuid, integer, text, text, integer, text, integer) is
  'Records a worker''s outcome for the attempt it claimed: sent (with the MessageSid), failed (Twilio''s code), unknown (reconciled after recheck_after_seconds), or queued again (only from unknown). No row when the claim is no longer current. Service role only.';
revoke execute on function public.settle_outbound_message(uuid, integer, text, text, integer, text, integer) from public, anon, authenticated;  -- noqa: LT05
grant execute on function public.settle_outbound_message(uuid, integer, text, text, integer, text, integer) to service_role;  -- noqa: LT05

create or replace function public.record_whatsapp_status(
  message_sid text,
  message_status text,
  error_code integer default null,
  outbound_message_id uuid default null
)
returns table (id uuid, status text, changed boolean)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  -- Twilio's statuses in ours: Twilio holding the message (accepted, queued, sending) is
  -- what we call sent; an unknown status changes nothing.
  reported text := case lower(btrim(record_whatsapp_status.message_status))
    when 'accepted' then 'sent'
    when 'scheduled' then 'sent'
    when 'queued' then 'sent'
    when 'sending' then 'sent'
    when 'sent' then 'sent'
    when 'delivered' then 'delivered'
    when 'read' then 'read'
    when 'undelivered' then 'undelivered'
    when 'failed' then 'failed'
    when 'canceled' then 'failed'
  end;
begin
  if record_whatsapp_status.message_sid is null or record_whatsapp_status.message_sid !~ '^[A-Za-z0-9]{2,64}$' then
    raise exception using
      errcode = '22023',
      message = format('message_sid %s is not a Twilio MessageSid', coalesce(quote_literal(left(record_whatsapp_status.message_sid, 40)), 'null')),
      hint = 'Pass the MessageSid parameter of the status callback.';
  end if;

  -- One statement: the row lock (taken before the old status is read) orders concurrent callbacks of one message, and each
  -- compares against the status the one before it left. outbound_message_id (from the
  -- callback URL the worker set) finds a message whose send outcome is still unknown.
  return query
    with target as (
      select o.id, o.status as before
      from public.outbound_messages as o
      where reported is not null
        and (
          o.message_sid = record_whatsapp_status.message_sid
          or (o.message_sid is null and o.id = record_whatsapp_status.outbound_message_id)
        )
      for update
    )

    update public.outbound_messages as o
    set status = case
          when private.outbound_status_rank(reported) > private.outbound_status_rank(o.status) then reported
          else o.status
        end,
        message_sid = coalesce(o.message_sid, record_whatsapp_status.message_sid),
        error_code = case
          when reported in ('failed', 'undelivered')
               and private.outbound_status_rank(reported) > private.outbound_status_rank(o.status)
            then record_whatsapp_status.error_code
          else o.error_code
        end,
        sent_at = case when reported = 'sent' then coalesce(o.sent_at, now()) else o.sent_at end,
        delivered_at = case when reported = 'delivered' then coalesce(o.delivered_at, now()) else o.delivered_at end,
        read_at = case when reported = 'read' then coalesce(o.read_at, now()) else o.read_at end,
        failed_at = case when reported = 'failed' then coalesce(o.failed_at, now()) else o.failed_at end,
        undelivered_at = case when reported = 'undelivered' then coalesce(o.undelivered_at, now()) else o.undelivered_at end
    from target as t
    where o.id = t.id
    returning o.id, o.status, o.status <> t.before;
end;
$$;
comment on function public.record_whatsapp_status(text, text, integer, uuid) is
  'Applies a Twilio status callback to its outbound message, moving the status only forward (read > delivered > failed, undelivered > sent) and stamping the reported status''s time once; returns the message''s status now, or no row for a message not in the outbox. Service role only.';
revoke execute on function public.record_whatsapp_status(text, text, integer, uuid) from public, anon, authenticated;
grant execute on function public.record_whatsapp_status(text, text, integer, uuid) to service_role;
