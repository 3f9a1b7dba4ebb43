-- WhatsApp consent: who opted out, and the keywords that opt out and back in.
-- An opt-out belongs to an address, not a profile: it is stored under a SHA-256 hash of
-- the number's match key (every equivalent form of a number has one) or of the BSUID.
-- So forget_user, which erases what references a profile, leaves it (erasure never
-- re-enables messaging, and no number is kept in clear), and a merge needs nothing: the
-- surviving profile holds the numbers and BSUIDs whose opt-outs apply to it.

-- tables ----------------------------------------------------------------------
create table public.whatsapp_opt_outs (
  address_hash bytea primary key,
  opted_out boolean not null,
  keyword text,
  changed_at timestamptz not null default now(),
  constraint whatsapp_opt_outs_hash_length check (length(address_hash) = 32)
);

comment on table public.whatsapp_opt_outs is
  'The consent state of WhatsApp addresses, by SHA-256 hash of the number''s match key or of the BSUID; survives erasure of the profile.';
comment on column public.whatsapp_opt_outs.address_hash is
  'sha256 of ''phone:'' || the number''s match key, or of ''bsuid:'' || the BSUID (private.whatsapp_address_hashes).';
comment on column public.whatsapp_opt_outs.opted_out is 'True after an opt-out keyword, false after an opt-in keyword.';
comment on column public.whatsapp_opt_outs.keyword is 'The keyword that set the state, as the person wrote it (upper-cased).';
comment on column public.whatsapp_opt_outs.changed_at is 'When the state last changed.';

alter table public.whatsapp_opt_outs enable row level security;

revoke all on table public.whatsapp_opt_outs from anon, authenticated;
grant select, insert, update, delete on table public.whatsapp_opt_outs to service_role;

create table public.whatsapp_consent_keywords (
  keyword text primary key,
  effect text not null,
  reply text not null,
  constraint whatsapp_consent_keywords_effect check (effect in ('opt_out', 'opt_in')),
  constraint whatsapp_consent_keywords_upper check (keyword = upper(btrim(keyword)) and keyword <> '')
);

comment on table public.whatsapp_consent_keywords is
  'Inbound messages that consist of one of these words (any case, trailing punctuation ignored) opt the sender out or back in; the reply confirms it. Edit the rows to configure.';
comment on column public.whatsapp_consent_keywords.keyword is 'The keyword, upper-case.';
comment on column public.whatsapp_consent_keywords.effect is 'opt_out or opt_in.';
comment on column public.whatsapp_consent_keywords.reply is 'The confirmation the relay sends back, in the keyword''s language.';

alter table public.whatsapp_consent_keywords enable row level security;

revoke all on table public.whatsapp_consent_keywords from anon, authenticated;
grant select, insert, update, delete on table public.whatsapp_consent_keywords to service_role;

-- data ------------------------------------------------------------------------
insert into public.whatsapp_consent_keywords (keyword, effect, reply)
select
  k.keyword,
  d.effect,
  d.reply
from (
  values
  ('opt_out', 'You will get no more WhatsApp messages from us. Reply START to opt back in.',
    array['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'OPTOUT', 'OPT OUT']),
  ('opt_in', 'You will get WhatsApp messages from us again. Reply STOP to opt out.',
    array['START', 'UNSTOP', 'SUBSCRIBE', 'OPTIN', 'OPT IN']),
  ('opt_out', 'Você não receberá mais mensagens nossas no WhatsApp. Responda VOLTAR para voltar a receber.',
    array['PARAR', 'SAIR', 'CANCELAR', 'DESCADASTRAR']),
  ('opt_in', 'Você voltará a receber nossas mensagens no WhatsApp. Responda PARAR para sair.',
    array['VOLTAR', 'INICIAR', 'RETOMAR']),
  ('opt_out', 'No recibirás más mensajes nuestros por WhatsApp. Responde ALTA para volver a recibirlos.',
    array['BAJA', 'DETENER', 'ALTO', 'DESUSCRIBIR']),
  ('opt_in', 'Volverás a recibir nuestros mensajes por WhatsApp. Responde BAJA para dejar de recibirlos.',
    array['ALTA', 'REANUDAR', 'SUSCRIBIR'])
) as d (effect, reply, keywords)
cross join lateral unnest(d.keywords) as k (keyword);

-- helper functions ------------------------------------------------------------
create or replace function private.whatsapp_address_hashes(phone text, whatsapp_user_id text)
returns bytea[]
language sql
immutable
set search_path = ''
as $$
  select array_remove(
    array[
      case when whatsapp_address_hashes.phone is not null
        then pg_catalog.sha256(convert_to('phone:' || private.phone_match_key(whatsapp_address_hashes.phone), 'UTF8'))
      end,
      case when whatsapp_address_hashes.whatsapp_user_id is not null
        then pg_catalog.sha256(convert_to('bsuid:' || whatsapp_address_hashes.whatsapp_user_id, 'UTF8'))
      end
    ],
    null
  );
$$;
comment on function private.whatsapp_address_hashes(text, text) is
  'The consent keys of a profile''s addresses: the hash of its number''s match key and of its BSUID (nulls left out).';
revoke execute on function private.whatsapp_address_hashes(text, text) from public, anon, authenticated;

create or replace function private.set_whatsapp_consent(user_id uuid, effect text, keyword text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- Every address of the profile: an opt-out sent with the number also covers the BSUID
  -- the person may later write (or be merged) from, and an opt-in lifts both.
  insert into public.whatsapp_opt_outs as o (address_hash, opted_out, keyword, changed_at)
  select h.hash, set_whatsapp_consent.effect = 'opt_out', set_whatsapp_consent.keyword, now()
  from public.users as u
  cross join lateral unnest(private.whatsapp_address_hashes(u.phone_number, u.whatsapp_user_id)) as h (hash)
  where u.id = set_whatsapp_consent.user_id
  on conflict (address_hash) do update
  set opted_out = excluded.opted_out, keyword = excluded.keyword, changed_at = excluded.changed_at;
end;
$$;
comment on function private.set_whatsapp_consent(uuid, text, text) is
  'Opts every address of a profile out (effect opt_out) or back in (opt_in), recording the keyword.';
revoke execute on function private.set_whatsapp_consent(uuid, text, text) from public, anon, authenticated;

-- public rpc ------------------------------------------------------------------
create or replace function public.whatsapp_opted_out(user_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select
    from public.users as u
    join public.whatsapp_opt_outs as o
      on o.address_hash = any (private.whatsapp_address_hashes(u.phone_number, u.whatsapp_user_id))
    where u.id = whatsapp_opted_out.user_id and o.opted_out
  );
$$;
comment on function public.whatsapp_opted_out(uuid) is
  'Whether the profile opted out of WhatsApp messages (by any of its numbers or BSUIDs). Service role only.';
revoke execute on function public.whatsapp_opted_out(uuid) from public, anon, authenticated;
grant execute on function public.whatsapp_opted_out(uuid) to service_role;
