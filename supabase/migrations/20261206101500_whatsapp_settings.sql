-- public.whatsapp_settings: the business's own WhatsApp settings, kept where the database
-- can read them. One row at most. The link-code RPC builds its https://wa.me/<number>
-- link from business_number, so the number lives here rather than in code. The service
-- role (a backend, the dashboard's SQL editor as postgres) writes it; apps never read it
-- directly: the RPC hands out the link.

-- tables ----------------------------------------------------------------------
create table public.whatsapp_settings (
  id boolean primary key default true,
  business_number text not null,
  updated_at timestamptz not null default now(),
  constraint whatsapp_settings_one_row check (id),
  constraint whatsapp_settings_business_number_e164 check (business_number ~ '^\+[1-9][0-9]{6,14}$')
);

comment on table public.whatsapp_settings is
  'The business''s WhatsApp settings, one row: the number people write to. Service role only; apps get what they need through RPCs.';
comment on column public.whatsapp_settings.id is 'Always true: the table holds one row.';
comment on column public.whatsapp_settings.business_number is
  'The business''s WhatsApp number in E.164 (+14155238886), used to build https://wa.me/<number> links.';
comment on column public.whatsapp_settings.updated_at is 'When the row was written.';

alter table public.whatsapp_settings enable row level security;

revoke all on table public.whatsapp_settings from anon, authenticated;
grant select, insert, update, delete on table public.whatsapp_settings to service_role;
