-- public.get_or_create_whatsapp_user: the WhatsApp sender's profile, found or created.
-- Race-free without locks: the unique index on phone_number arbitrates through
-- insert ... on conflict do nothing, so concurrent first messages from one number
-- create one profile and every caller gets its id. An existing sender costs one
-- index lookup and writes nothing.

create or replace function private.whatsapp_user(phone text, profile_name text default null)
returns table (profile public.users, created boolean)
language plpgsql
set search_path = ''
as $$
declare
  normalized_phone text := private.normalize_phone(whatsapp_user.phone, 'phone');
  display_name text := nullif(btrim(whatsapp_user.profile_name), '');
  found_profile public.users;
begin
  for attempt in 1..3 loop
    select * into found_profile from public.users as u where u.phone_number = normalized_phone;
    if found then
      if found_profile.full_name is null and display_name is not null then
        update public.users as u
        set full_name = display_name
        where u.id = found_profile.id and u.full_name is null
        returning * into found_profile;
      end if;
      return query select found_profile, false;
      return;
    end if;

    insert into public.users (phone_number, full_name)
    values (normalized_phone, display_name)
    on conflict (phone_number) do nothing
    returning * into found_profile;
    if found_profile.id is not null then
      return query select found_profile, true;
      return;
    end if;
    -- Another transaction inserted the number first and has committed (on conflict
    -- waited for it): the next lookup sees its row, unless it was erased meanwhile.
  end loop;
  raise exception using
    errcode = '40001',
    message = format('could not settle the profile of phone %s; retry', normalized_phone);
end;
$$;

comment on function private.whatsapp_user(text, text) is
  'Finds or creates the profile of a WhatsApp number; created is true only for the call that inserted it.';
revoke execute on function private.whatsapp_user(text, text) from public, anon, authenticated;

create or replace function public.get_or_create_whatsapp_user(phone text, profile_name text default null)
returns table (
  id uuid,
  auth_id uuid,
  phone_number text,
  email text,
  full_name text,
  created_at timestamptz,
  updated_at timestamptz,
  created boolean
)
language sql
security definer
set search_path = ''
as $$
  select (w.profile).id, (w.profile).auth_id, (w.profile).phone_number, (w.profile).email,
         (w.profile).full_name, (w.profile).created_at, (w.profile).updated_at, w.created
  from private.whatsapp_user(get_or_create_whatsapp_user.phone, get_or_create_whatsapp_user.profile_name) as w
$$;

comment on function public.get_or_create_whatsapp_user(text, text) is
  'The profile of a WhatsApp sender, created on first contact (created = true for that call only). Service role only.';
revoke execute on function public.get_or_create_whatsapp_user(text, text) from public, anon, authenticated;
grant execute on function public.get_or_create_whatsapp_user(text, text) to service_role;
