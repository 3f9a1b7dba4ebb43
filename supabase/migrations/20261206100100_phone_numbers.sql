-- One phone-normalising function, used by every RPC and trigger.
-- WhatsApp sends 'whatsapp:+14155550123', Supabase Auth stores '14155550123', people
-- type '+1 (415) 555-0123' or '0014155550123': all become E.164 '+14155550123'.
-- private.phone_match_key compares the forms of one mobile number that WhatsApp and
-- Supabase Auth write differently; private.normalize_whatsapp_user_id checks a BSUID.

-- helper functions ------------------------------------------------------------
create or replace function private.normalize_phone(raw text, field text default 'phone')
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  cleaned text;
  digits text;
  trunk text[];
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

  if cleaned ~ '\(\s*0\s*\)' then
    -- '+<country code> (0) <national number>', or the same after the 00 call prefix.
    trunk := regexp_match(cleaned, '^(\+|00) *([1-9][0-9]{0,2})[ .\-/]*\(\s*0\s*\)(.*)$');
    if trunk is null then
      raise exception using
        errcode = '22023',
        message = format('%s %s has a (0) that does not follow the country code', field, quote_literal(left(raw, 40))),
        hint = 'A (0) is a trunk prefix only right after the country code, e.g. +44 (0)20 7946 0958; otherwise write the number without it.';
    end if;
    -- Country codes whose numbering plan dials a trunk 0 before national numbers
    -- (ITU-T E.164 national plans as notified to the ITU Operational Bulletin).
    if not trunk[2] = any (array[
      '20', '27', '31', '32', '33', '40', '41', '43', '44', '46', '49', '51', '54', '55', '58',
      '60', '61', '62', '63', '64', '66', '81', '82', '84', '86', '90', '91', '92', '94', '98',
      '212', '234', '254', '353', '358', '359', '380', '381', '385', '386', '421', '880', '886',
      '966', '971', '972'
    ]) then
      raise exception using
        errcode = '22023',
        message = format('%s %s writes a trunk prefix (0) that country code +%s does not use',
          field, quote_literal(left(raw, 40)), trunk[2]),
        hint = 'Write the number without (0): a + and the country code, then the national number, e.g. +14155550123.';
    end if;
    cleaned := trunk[1] || trunk[2] || ' ' || trunk[3];
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
  'Returns the E.164 form of a phone number written in any accepted form (a trunk prefix written as (0) after the country code dropped where the plan has one); raises 22023 naming the field otherwise.';
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

-- private.phone_match_key: one key for the forms of one mobile number that WhatsApp and
-- Supabase Auth write differently. The stored phone_number keeps WhatsApp's form (the
-- one replies go to); lookups and uniqueness compare keys.
--
-- Equivalences (national numbering plans and WhatsApp's own ids):
--   Brazil    +55 DD 9XXXXXXXX  <->  +55 DD XXXXXXXX   Anatel added the ninth digit to mobiles
--             (2012-2016); WhatsApp ids of older accounts lack it. Only 8-digit numbers starting
--             6-9 were mobiles; 8-digit numbers starting 2-5 are landlines and stay apart.
--             Key: the nine-digit form.
--   Mexico    +52 1 XXXXXXXXXX  <->  +52 XXXXXXXXXX    IFT dropped the mobile '1' in 2019; WhatsApp
--             ids keep 521. No Mexican area code starts with 1. Key: without the 1.
--   Argentina +54 9 XXXXXXXXXX  <->  +54 XXXXXXXXXX    the '9' marks a mobile in international
--             form; people and some systems omit it. Mobile and fixed blocks never share a
--             10-digit number. Key: without the 9.
-- Every other number is its own key.
-- plpgsql rather than sql: a sql function with a set clause is never inlined, and
-- PostgreSQL 15 parses and plans its body on every call, which made this key the largest
-- single cost of a sender lookup (it is also computed for the unique index on every
-- insert). plpgsql keeps the expression's plan for the session: ~30 us less per call.
create or replace function private.phone_match_key(phone text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
begin
  -- Every other country's number is its own key: no regex match for it, on every lookup
  -- and every index insert. private.whatsapp_user repeats this test inline: change both.
  if left(phone, 3) not in ('+55', '+52', '+54') then
    return phone;
  end if;
  return case
    when phone ~ '^\+55[1-9][1-9][6-9][0-9]{7}$' then '+55' || substr(phone, 4, 2) || '9' || substr(phone, 6)
    when phone ~ '^\+521[0-9]{10}$' then '+52' || substr(phone, 5)
    when phone ~ '^\+549[0-9]{10}$' then '+54' || substr(phone, 5)
    else phone
  end;
end;
$$;
comment on function private.phone_match_key(text) is
  'The key under which equivalent forms of one E.164 number (Brazil ninth digit, Mexico +521, Argentina +549) compare equal.';
revoke execute on function private.phone_match_key(text) from public, anon, authenticated;

create or replace function private.normalize_whatsapp_user_id(raw text, field text default 'whatsapp_user_id')
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  cleaned text := btrim(regexp_replace(raw, '^\s*whatsapp:', '', 'i'));
begin
  if cleaned ~ '^[A-Z]{2}(\.[A-Z]{2,8})?\.[A-Za-z0-9]+$'
     and length(split_part(cleaned, '.', -1)) <= 128 then
    return cleaned;
  end if;
  raise exception using
    errcode = '22023',
    message = format('%s %s is not a WhatsApp business-scoped user id', field, quote_literal(left(raw, 40))),
    hint = 'Pass ExternalUserId as Twilio sends it: a country code, a dot and up to 128 letters or digits, e.g. US.13491208655302741918.';
end;
$$;
comment on function private.normalize_whatsapp_user_id(text, text) is
  'Returns the BSUID without a whatsapp: prefix; raises 22023 naming the field when it is not shaped like one.';
revoke execute on function private.normalize_whatsapp_user_id(text, text) from public, anon, authenticated;
