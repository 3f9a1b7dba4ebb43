-- One phone-normalising function, used by every RPC and trigger.
-- WhatsApp sends 'whatsapp:+14155550123', Supabase Auth stores '14155550123', people
-- type '+1 (415) 555-0123' or '0014155550123': all become E.164 '+14155550123'.

create or replace function private.normalize_phone(raw text, field text default 'phone')
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  cleaned text;
  digits text;
begin
  -- What Twilio sends ('whatsapp:+<E.164>') and E.164 itself take one match instead of the
  -- clean-up below, which gives them the same result: every RPC call and trigger runs this.
  -- private.whatsapp_user repeats this test inline: change both.
  if raw ~ '^(whatsapp:)?\+[1-9][0-9]{6,14}$' then
    return substr(raw, strpos(raw, '+'));
  end if;

  cleaned := btrim(regexp_replace(raw, '^\s*whatsapp:', '', 'i'));
  if cleaned is null or cleaned = '' then
    raise exception using
      errcode = '22023',
      message = format('%s is required', field),
      hint = 'Send the number in international form, e.g. +14155550123.';
  end if;

  if cleaned ~ '^\+?[0-9 ().\-/]+$' then
    digits := regexp_replace(cleaned, '[^0-9]', '', 'g');
    if left(cleaned, 1) <> '+' then
      if left(digits, 2) = '00' then
        digits := substr(digits, 3);  -- international call prefix
      elsif left(digits, 1) = '0' then
        digits := null;               -- a national number: no country code
      end if;
    end if;
    if digits ~ '^[1-9][0-9]{6,14}$' then
      return '+' || digits;
    end if;
  end if;

  raise exception using
    errcode = '22023',
    message = format('%s %s is not a valid international phone number', field, quote_literal(left(raw, 40))),
    hint = 'Use E.164: a + and the country code, then 7 to 15 digits in all, e.g. +14155550123.';
end;
$$;

comment on function private.normalize_phone(text, text) is
  'Returns the E.164 form of a phone number written in any accepted form; raises 22023 naming the field otherwise.';
revoke execute on function private.normalize_phone(text, text) from public, anon, authenticated;

create or replace function private.try_normalize_phone(raw text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return private.normalize_phone(raw);
exception
  when invalid_parameter_value then
    return null;
end;
$$;

comment on function private.try_normalize_phone(text) is
  'normalize_phone, or null for a number it refuses: for triggers that must not fail Supabase Auth.';
revoke execute on function private.try_normalize_phone(text) from public, anon, authenticated;
