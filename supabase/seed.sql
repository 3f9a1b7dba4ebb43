-- Demo data for `supabase db reset` and `glue dev`: three WhatsApp-only senders with
-- messages, one app-only user, and one person who chatted on WhatsApp, signed up in
-- the app and verified their phone, so their two profiles were merged (see
-- public.user_merges). Rows are written the way production writes them: messages
-- through receive_whatsapp_message, auth users as Supabase Auth stores them, the
-- phone confirmation as one update that the link trigger turns into a merge.

-- WhatsApp-only senders --------------------------------------------------------
select public.receive_whatsapp_message(
  'SM00000000000000000000000000000a01', 'whatsapp:+14155550101', 'Hi! Is the shop open on Sunday?', 'Amara'
);
select public.receive_whatsapp_message(
  'SM00000000000000000000000000000a02', 'whatsapp:+14155550101', 'And do you deliver to Oakland?', 'Amara'
);
select public.receive_whatsapp_message(
  'SM00000000000000000000000000000b01', 'whatsapp:+5511987650102', 'Olá, quero remarcar minha consulta', 'Bruno'
);
select public.receive_whatsapp_message(
  'MM00000000000000000000000000000c01',
  'whatsapp:+447700900103',
  '',
  'Chloe',
  jsonb_build_array(jsonb_build_object(
    'url', 'https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/'
    || 'MM00000000000000000000000000000c01/Media/ME00000000000000000000000000000c01',
    'content_type', 'image/jpeg'
  ))
);

-- The person who will link: WhatsApp first --------------------------------------
select public.receive_whatsapp_message(
  'SM00000000000000000000000000000d01', 'whatsapp:+14155550104', 'Hello, I ordered a lamp last week', 'Dev'
);
select public.receive_whatsapp_message(
  'SM00000000000000000000000000000d02', 'whatsapp:+14155550104', 'Order #1042, thanks!', 'Dev'
);

-- App users, written as Supabase Auth writes them -------------------------------
insert into auth.users (
  instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
  confirmation_token, recovery_token, email_change_token_new, email_change,
  raw_app_meta_data, raw_user_meta_data, created_at, updated_at
)
values
  (
    '00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000001', 'authenticated',
    'authenticated', 'erin@example.com', extensions.crypt('password', extensions.gen_salt('bf')), now(),
    '', '', '', '', '{"provider": "email", "providers": ["email"]}', '{"full_name": "Erin App-Only"}', now(), now()
  ),
  (
    '00000000-0000-0000-0000-000000000000', 'a0000000-0000-4000-8000-000000000002', 'authenticated',
    'authenticated', 'dev@example.com', extensions.crypt('password', extensions.gen_salt('bf')), now(),
    '', '', '', '', '{"provider": "email", "providers": ["email"]}', '{"full_name": "Dev Patel"}', now(), now()
  );

insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
select
  u.id::text as provider_id,
  u.id as user_id,
  jsonb_build_object('sub', u.id::text, 'email', u.email) as identity_data,
  'email' as provider,  -- noqa: RF04
  now() as last_sign_in_at,
  now() as created_at,
  now() as updated_at
from auth.users as u
where u.id in ('a0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000002');

-- Dev verifies +1 415 555 0104 in the app (verifyOtp type 'phone_change'): the link
-- trigger merges the app profile into Dev's WhatsApp profile and audits it.
update auth.users
set phone = '14155550104', phone_confirmed_at = now(), phone_change = '', phone_change_token = ''
where id = 'a0000000-0000-4000-8000-000000000002';
