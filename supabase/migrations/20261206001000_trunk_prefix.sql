-- A national trunk prefix written inside an international number: '+44 (0) 7400 123456',
-- '+49 (0)1512 3456789'. The '(0)' is how many countries print a number for readers at
-- home and abroad at once: dial the 0 at home, leave it out from abroad. Read as a digit,
-- it made '+4407400123456', another number and so a second profile for one person.
-- normalize_phone now drops '(0)' right after the country code of a numbering plan whose
-- trunk prefix is 0 (those plans have no national number starting with 0, so the digit
-- can only be the prefix), and refuses it anywhere else: after a country code whose plan
-- has no trunk 0 (in Italy the 0 is part of the number), or elsewhere in the number. The
-- shortcut for Twilio's own E.164 form is unchanged, so private.whatsapp_user's inline
-- copy of it stays the same.

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
