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
--
-- The automatic path of account linking: when Supabase Auth confirms a phone
-- (phone_confirmed_at becomes set, or the phone changes while confirmed), the same
-- link as public.link_whatsapp_account runs inside Auth's transaction, so an app that
-- never calls the RPC still ends with one profile.
-- It must never make Supabase Auth's update fail: a refused link (the number belongs
-- to another account, a unique conflict in a moved table, anything else) is rolled
-- back to the trigger's savepoint and recorded in public.user_merges as 'refused'.

-- helper functions ------------------------------------------------------------
create or replace function private.link_verified_phone(auth_user_id uuid, triggered_by text)
returns public.users
language plpgsql
set search_path = ''
as $$
declare
  account record;
  proof private.phone_proofs;
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
  select u.phone, u.phone_confirmed_at,
         case when u.email_confirmed_at is not null then nullif(u.email, '') end as email
  into account
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

  -- The confirmation must prove that this account controls the number now.
  select * into proof from private.phone_proofs as p where p.auth_id = link_verified_phone.auth_user_id;
  if proof.auth_id is null or proof.proven_by is null or proof.phone is distinct from account.phone then
    raise exception using
      errcode = 'PT412',
      message = format('phone %s on this account was not confirmed with a code sent to it', verified_phone),
      hint = 'Sign in with a code sent to the number (auth.signInWithOtp({ phone }), then auth.verifyOtp({ phone, token, type: ''sms'' })), then link again.';
  end if;
  if proof.held then
    raise exception using
      errcode = 'PT403',
      message = format('phone %s was on this account before a code proved it: whoever signed it up may know its password', verified_phone),
      hint = 'Your backend can vouch for the number after its own checks: auth.admin.updateUserById(id, { phone_confirm: true }).';
  end if;
  if proof.refusal = 'contested' then
    raise exception using
      errcode = 'PT412',
      message = format('the confirmation of phone %s is disputed: another account had a change to the same number pending', verified_phone),
      hint = 'Sign in with a code sent to the number (auth.signInWithOtp({ phone }), then auth.verifyOtp({ phone, token, type: ''sms'' })), then link again.';
  end if;

  for attempt in 1..3 loop
    select * into caller from public.users as u where u.auth_id = link_verified_phone.auth_user_id;
    select * into holder from public.users as u
    where private.phone_match_key(u.phone_number) = private.phone_match_key(verified_phone);

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
    select * into fresh_holder from public.users as u
    where private.phone_match_key(u.phone_number) = private.phone_match_key(verified_phone);
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
          values (link_verified_phone.auth_user_id, verified_phone, account.email)
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
            select account.email
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
  'Links the auth user''s phone when its latest confirmation proves control now (private.phone_proofs): merges the unlinked WhatsApp profile of that number with the user''s profile, or writes the number onto it; audited in public.user_merges. Raises PT412 (no confirmed phone, a phone not confirmed with a code, a disputed confirmation), PT403 (a phone sign-up someone else may hold the password of) or PT409 (number linked to another account).';
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

-- triggers --------------------------------------------------------------------
create or replace function private.link_confirmed_phone()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  proof private.phone_proofs;
  proven_by text;
  failed_state text;
  failed_message text;
  phone text;
begin
  if new.phone_confirmed_at is distinct from old.phone_confirmed_at then
    if coalesce(old.phone_change, '') <> '' and new.phone is not distinct from old.phone_change
       and coalesce(new.phone_change, '') = '' then
      proven_by := 'phone_change';
    elsif new.phone is not distinct from old.phone and coalesce(old.confirmation_token, '') <> ''
          and coalesce(new.confirmation_token, '') = '' then
      proven_by := 'code';
    else
      proven_by := 'backend';
      -- adminUserUpdate confirms before it writes the phone: the phone written next, in
      -- this transaction, is the one vouched for.
      perform set_config('glue.phone_vouched_for', new.id::text, true);
    end if;
  elsif current_setting('glue.phone_vouched_for', true) = new.id::text then
    proven_by := 'backend';
  end if;
  if coalesce(new.phone, '') = '' then
    return null;
  end if;

  begin
    select * into proof from private.phone_proofs as p where p.auth_id = new.id;
    insert into private.phone_proofs as p (auth_id, phone, proven_by, refusal, held)
    values (
      new.id,
      new.phone,
      proven_by,
      case when proven_by = 'phone_change' and private.phone_change_pending_elsewhere(new.id, new.phone) then 'contested' end,
      case
        when proven_by = 'backend' then false
        when proven_by = 'code' and old.phone_confirmed_at is null and coalesce(proof.code_resent, false)
             and coalesce(old.encrypted_password, '') <> '' then true
        else coalesce(proof.held, false)
      end
    )
    on conflict (auth_id) do update
    set phone = excluded.phone,
        proven_by = excluded.proven_by,
        refusal = excluded.refusal,
        held = excluded.held,
        updated_at = now();
  exception
    when others then
      -- Unrecorded, the link below finds no proof for this phone and refuses.
      raise warning 'phone proof of auth user % not recorded: %', new.id, sqlerrm;
  end;

  begin
    perform private.link_verified_phone(new.id, 'auth_trigger');
  exception
    when others then
      get stacked diagnostics failed_state = returned_sqlstate, failed_message = message_text;
      begin
        phone := private.try_normalize_phone(new.phone);
        insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, outcome, reason, triggered_by)
        values (
          (select u.id from public.users as u where private.phone_match_key(u.phone_number) = private.phone_match_key(phone)),
          (select u.id from public.users as u where u.auth_id = new.id),
          new.id,
          phone,
          'refused',
          format('%s: %s', failed_state, failed_message),
          'auth_trigger'
        );
      exception
        when others then
          raise warning 'link of auth user % refused (%: %) and not recorded: %', new.id, failed_state, failed_message, sqlerrm;
      end;
  end;
  return null;
end;
$$;
comment on function private.link_confirmed_phone() is
  'After Supabase Auth writes phone or phone_confirmed_at: records what the write proved (private.phone_proofs), then links as link_whatsapp_account does; a refusal is recorded in public.user_merges, never raised.';
revoke execute on function private.link_confirmed_phone() from public, anon, authenticated;

-- On a confirmation, on a renewal of an unchanged phone (a code sign-in, the admin API's
-- phone_confirm) and on a phone written without one, so each is judged.
create or replace trigger on_auth_user_phone_confirmed
after update of phone, phone_confirmed_at on auth.users
for each row
when (
  new.phone_confirmed_at is not null
  and (old.phone is distinct from new.phone or old.phone_confirmed_at is distinct from new.phone_confirmed_at)
)
execute function private.link_confirmed_phone();
