-- The automatic path of account linking: when Supabase Auth confirms a phone
-- (phone_confirmed_at becomes set, or the phone changes while confirmed), the same
-- link as public.link_whatsapp_account runs inside Auth's transaction, so an app that
-- never calls the RPC still ends with one profile.
-- It must never make Supabase Auth's update fail: a refused link (the number belongs
-- to another account, a unique conflict in a moved table, anything else) is rolled
-- back to the trigger's savepoint and recorded in public.user_merges as 'refused'.

-- triggers --------------------------------------------------------------------
create or replace function private.link_confirmed_phone()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  failed_state text;
  failed_message text;
  phone text;
begin
  begin
    perform private.link_verified_phone(new.id, 'auth_trigger');
  exception
    when others then
      get stacked diagnostics failed_state = returned_sqlstate, failed_message = message_text;
      begin
        phone := private.try_normalize_phone(new.phone);
        insert into public.user_merges (survivor_id, absorbed_id, auth_id, phone_number, outcome, reason, triggered_by)
        values (
          (select u.id from public.users as u where u.phone_number = phone),
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
  'After Supabase Auth confirms a phone: links it as link_whatsapp_account does; a refusal is recorded in public.user_merges, never raised.';
revoke execute on function private.link_confirmed_phone() from public, anon, authenticated;

create trigger on_auth_user_phone_confirmed
after update of phone, phone_confirmed_at on auth.users
for each row
when (
  new.phone_confirmed_at is not null
  and coalesce(new.phone, '') <> ''
  and (old.phone_confirmed_at is null or old.phone is distinct from new.phone)
)
execute function private.link_confirmed_phone();
