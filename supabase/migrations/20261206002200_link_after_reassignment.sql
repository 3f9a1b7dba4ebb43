-- A phone verification older than the number's last move proves nothing about its owner.
-- Supabase Auth keeps an account's phone confirmed after the carrier gave the number to
-- someone else. When a message shows that the number moved to another WhatsApp account
-- (public.whatsapp_number_reassignments), an account whose confirmation predates the move
-- must not link the number: it would take the new owner's profile and messages, and its
-- own history would move onto them. link_whatsapp_account refuses it with PT410 until the
-- account proves the number again (a fresh phone sign-in sets phone_confirmed_at anew).
-- The automatic link needs no such check: Supabase Auth runs it only as it confirms a
-- phone, which is proof of the moment.
--
-- Errors (PostgREST maps SQLSTATE PTxyz to HTTP status xyz), besides link_verified_phone's:
--   PT410  the number moved to another WhatsApp account after this account verified it

-- public rpcs -----------------------------------------------------------------
create or replace function public.link_whatsapp_account()
returns public.users
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_id uuid := (select auth.uid());
  account record;
  verified_key text;
  moved_at timestamptz;
begin
  if caller_id is null then
    raise exception using
      errcode = '42501',
      message = 'link_whatsapp_account needs a signed-in user',
      hint = 'Call it with the user''s session (supabase.rpc after sign-in), not with the anon or service key.';
  end if;

  select u.phone, u.phone_confirmed_at into account
  from auth.users as u
  where u.id = caller_id
  for key share;
  if account.phone_confirmed_at is not null then
    verified_key := private.phone_match_key(private.try_normalize_phone(account.phone));
    -- Lock order, as everywhere: the auth.users row, then the profiles by id (the caller's
    -- and the number's, which link_verified_phone locks again). A move takes the number's
    -- profile for update, so it either waits for this link or is seen by the next read.
    perform 1 from public.users as u
    where u.auth_id = caller_id or private.phone_match_key(u.phone_number) = verified_key
    order by u.id
    for update;
    select max(r.created_at) into moved_at
    from public.whatsapp_number_reassignments as r
    where private.phone_match_key(r.phone_number) = verified_key;
    if moved_at > account.phone_confirmed_at then
      raise exception using
        errcode = 'PT410',
        message = format(
          'phone %s moved to another WhatsApp account on %s, after this account verified it',
          private.try_normalize_phone(account.phone), moved_at),
        hint = 'If the number is still the user''s, have them prove it again: auth.signInWithOtp({ phone }), then auth.verifyOtp({ phone, token, type: ''sms'' }), then link again. Otherwise verify their current number with auth.updateUser({ phone }).';
    end if;
  end if;
  return private.link_verified_phone(caller_id, 'rpc');
end;
$$;

comment on function public.link_whatsapp_account() is
  'Makes the signed-in user and the WhatsApp profile of their verified phone one profile, and returns it. No arguments: the phone is read from auth.users. PT412 when the phone is not verified, PT410 when the number moved to another WhatsApp account after it was verified, PT409 when its profile belongs to another account. Authenticated only.';
-- service_role too: Supabase's default privileges grant it every new function, and a
-- link is only ever made for the signed-in user.
revoke execute on function public.link_whatsapp_account() from public, anon, authenticated, service_role;
grant execute on function public.link_whatsapp_account() to authenticated;
