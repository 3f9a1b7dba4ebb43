-- public.user_merges: the audit trail of account linking.
-- One row per link that changed something (a WhatsApp profile merged into an app
-- profile, a verified phone attached to an app profile) and per automatic link that
-- was refused. Plain uuid columns, no foreign keys: the rows must outlive the merge
-- that deletes the absorbed profile, the deletion of the auth user and the profiles
-- themselves (forget_user erases a person's rows here explicitly).

-- tables ----------------------------------------------------------------------
create table public.user_merges (
  id uuid primary key default gen_random_uuid(),
  survivor_id uuid,
  absorbed_id uuid,
  auth_id uuid,
  phone_number text,
  moved jsonb not null default '{}'::jsonb,
  outcome text not null,
  reason text,
  triggered_by text not null,
  created_at timestamptz not null default now(),
  constraint user_merges_outcome_known check (outcome in ('merged', 'phone_attached', 'refused')),
  constraint user_merges_refusal_has_reason check ((outcome = 'refused') = (reason is not null)),
  constraint user_merges_triggered_by_known check (triggered_by in ('rpc', 'auth_trigger')),
  constraint user_merges_moved_is_object check (jsonb_typeof(moved) = 'object')
);

comment on table public.user_merges is
  'Audit trail of account linking: every merge of a WhatsApp profile into an app account, every phone attached, every automatic link refused.';
comment on column public.user_merges.id is 'The audit row id.';
comment on column public.user_merges.survivor_id is
  'The profile that remains: the WhatsApp profile that absorbed the app profile, or the app profile that got the phone. No foreign key: it may be erased later.';
comment on column public.user_merges.absorbed_id is
  'The app profile merged into the survivor and deleted; null when nothing was absorbed.';
comment on column public.user_merges.auth_id is 'The Supabase Auth user whose verified phone was linked.';
comment on column public.user_merges.phone_number is 'The verified phone in E.164.';
comment on column public.user_merges.moved is
  'What the merge moved from the absorbed profile to the survivor, as {"schema.table": rows}.';
comment on column public.user_merges.outcome is
  'merged (two profiles became one), phone_attached (no profile had the phone: it was written onto the app profile) or refused.';
comment on column public.user_merges.reason is 'Why a link was refused, as "SQLSTATE: message"; null otherwise.';
comment on column public.user_merges.triggered_by is
  'rpc (public.link_whatsapp_account) or auth_trigger (Supabase Auth confirmed the phone).';
comment on column public.user_merges.created_at is 'When the link happened or was refused.';

create index user_merges_survivor_id_idx on public.user_merges (survivor_id);
create index user_merges_absorbed_id_idx on public.user_merges (absorbed_id);
create index user_merges_auth_id_idx on public.user_merges (auth_id);

alter table public.user_merges enable row level security;

revoke all on table public.user_merges from anon, authenticated;
grant select on table public.user_merges to authenticated;
grant select, insert, update, delete on table public.user_merges to service_role;

-- policies --------------------------------------------------------------------
create policy "users read own merges"
on public.user_merges
for select
to authenticated
using (auth_id = (select auth.uid()));
