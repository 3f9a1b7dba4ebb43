-- Account linking: an app user whose phone Supabase Auth has verified becomes one
-- profile with the WhatsApp profile of that number.
-- The phone is read from auth.users (phone, phone_confirmed_at), never from the
-- client: only Supabase Auth's own verification (updateUser({ phone }) then
-- verifyOtp({ type: 'phone_change' })) counts as proof, and only when
-- [auth.sms] enable_confirmations = true.
--
-- The WhatsApp profile W survives (messages reference its id); the app profile P is
-- absorbed. Lock order, everywhere: the auth.users row, then the profiles by id.
--
-- Errors (PostgREST maps SQLSTATE PTxyz to HTTP status xyz):
--   PT412  the account has no confirmed phone: verify it first      (HTTP 412)
--   PT409  the phone's profile is linked to another account         (HTTP 409)
--   23505  a move would break a unique constraint; nothing changed  (HTTP 409)
--   42501  no signed-in user                                        (HTTP 401/403)

-- helper functions ------------------------------------------------------------
create or replace function private.link_verified_phone(auth_user_id uuid, triggered_by text)
returns public.users
language plpgsql
set search_path = ''
as $$
declare
  account record;
  verified_phone text;
  caller public.users;
  holder public.users;
  fresh_caller public.users;
  fresh_holder public.users;
  result public.users;
  moved jsonb;
begin
  -- Waits for an update of this auth user in flight (a phone confirmation) and keeps
  -- the user from being deleted under us.
  select u.phone, u.phone_confirmed_at, u.email into account
  from auth.users as u
  where u.id = link_verified_phone.auth_user_id
  for key share;
  if not found or account.phone_confirmed_at is null or coalesce(account.phone, '') = '' then
    raise exception using
      errcode = 'PT412',
      message = 'phone must be verified before linking: this account has no confirmed phone',
      hint = 'Call auth.updateUser({ phone }), then auth.verifyOtp({ phone, token, type: ''phone_change'' }), then link again.';
  end if;
  verified_phone := private.normalize_phone(account.phone, 'auth.users.phone');

  for attempt in 1..3 loop
    select * into caller from public.users as u where u.auth_id = link_verified_phone.auth_user_id;
    select * into holder from public.users as u where u.phone_number = verified_phone;

    if holder.auth_id = link_verified_phone.auth_user_id then
      return holder;  -- already linked: nothing to do
    end if;
    if holder.auth_id is not null then
      raise exception using
        errcode = 'PT409',
        message = format('phone %s is linked to another account', verified_phone),
        hint = 'Sign in with the account that owns this number, or ask support to unlink it.';
    end if;

    -- Lock what we found, in id order, then check nothing moved before we got the locks.
    perform 1 from public.users as u
    where u.id in (caller.id, holder.id)
    order by u.id
    for update;
    select * into fresh_caller from public.users as u where u.auth_id = link_verified_phone.auth_user_id;
    select * into fresh_holder from public.users as u where u.phone_number = verified_phone;
    if fresh_caller.id is distinct from caller.id
       or fresh_holder.id is distinct from holder.id
       or fresh_holder.auth_id is distinct from holder.auth_id then
      continue;  -- a concurrent link or erasure got there first: decide again
    end if;

    if holder.id is null then
      -- Nobody has written from this number yet: the number goes onto the app profile
      -- (or a profile is made, for an auth user that predates the profile trigger).
      begin
        if caller.id is null then
          insert into public.users (auth_id, phone_number, email)
          values (link_verified_phone.auth_user_id, verified_phone, nullif(account.email, ''))
          returning * into result;
        else
          update public.users as u
          set phone_number = verified_phone
          where u.id = caller.id
          returning * into result;
        end if;
      exception
        when unique_violation then
          continue;  -- a first WhatsApp message created the number's profile meanwhile: merge with it
      end;
      insert into public.user_merges (survivor_id, auth_id, phone_number, outcome, triggered_by)
      values (result.id, link_verified_phone.auth_user_id, verified_phone, 'phone_attached', link_verified_phone.triggered_by);
      return result;
    end if;

    if caller.id is null then
      -- An auth user without a profile (it predates the profile trigger) takes the
      -- WhatsApp profile over, with its email unless another profile holds that address.
      update public.users as u
      set auth_id = link_verified_phone.auth_user_id,
          email = coalesce(u.email, (
            select nullif(account.email, '')
            where not exists (select from public.users as o where lower(o.email) = lower(account.email))
          ))
      where u.id = holder.id;
      moved := '{}'::jsonb;
    else
      moved := private.merge_profiles(holder.id, caller.id);
    end if;
    select * into result from public.users as u where u.id = holder.id;
    insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, moved, outcome, triggered_by)
    values (result.id, caller.id, link_verified_phone.auth_user_id, verified_phone, moved, 'merged', link_verified_phone.triggered_by);
    return result;
  end loop;

  raise exception using
    errcode = '40001',
    message = format('could not settle the profile of phone %s; retry', verified_phone),
    hint = 'Concurrent changes to these profiles kept moving; call link_whatsapp_account again.';
end;
$$;

comment on function private.link_verified_phone(uuid, text) is
  'Links the auth user''s confirmed phone: merges the unlinked WhatsApp profile of that number with the user''s profile, or writes the number onto it; audited in public.user_merges. Raises PT412 (no confirmed phone) or PT409 (number linked to another account).';
revoke execute on function private.link_verified_phone(uuid, text) from public, anon, authenticated;

-- public rpc ------------------------------------------------------------------
create or replace function public.link_whatsapp_account()
returns public.users
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_id uuid := (select auth.uid());
begin
  if caller_id is null then
    raise exception using
      errcode = '42501',
      message = 'link_whatsapp_account needs a signed-in user',
      hint = 'Call it with the user''s session (supabase.rpc after sign-in), not with the anon or service key.';
  end if;
  return private.link_verified_phone(caller_id, 'rpc');
end;
$$;

comment on function public.link_whatsapp_account() is
  'Makes the signed-in user and the WhatsApp profile of their verified phone one profile, and returns it. No arguments: the phone is read from auth.users. PT412 when the phone is not verified, PT409 when its profile belongs to another account. Authenticated only.';
-- service_role too: Supabase's default privileges grant it every new function, and a
-- link is only ever made for the signed-in user.
revoke execute on function public.link_whatsapp_account() from public, anon, authenticated, service_role;
grant execute on function public.link_whatsapp_account() to authenticated;
