/**
 * The Twilio WhatsApp webhook relay as a Supabase Edge Function: the same behaviour as glue's Python relay
 * (glue/app.py), held to the same contract (tests/contract/cases/*.json).
 *
 * A webhook is answered in this order, and nothing touches the database before step 3:
 * 1. read the body (413 over MAX_BODY_BYTES) and the form (415 if it is not a form, 400 if not UTF-8);
 * 2. check X-Twilio-Signature against the function's public URL (403), then the AccountSid/To
 *    allow-lists (403);
 * 3. read the message (400 without From or MessageSid; an SMS, From without whatsapp:, gets an empty 200
 *    and is not stored), one call of public.receive_whatsapp_message
 *    (400 when the database refuses an argument, 503 with Retry-After when it is unreachable or late);
 * 4. 200 with TwiML: the welcome reply when this MessageSid created the user, then what a link code or its
 *    YES did, or else the hook's reply (first delivery only).
 *
 * The database is reached with postgres.js over SUPABASE_DB_URL (or DATABASE_URL), one statement per
 * webhook, never a prepared statement, so Supabase's transaction pooler (port 6543) works too.
 *
 * A POST whose path ends in /status (`.../functions/v1/whatsapp-webhook/status`, Twilio's StatusCallback
 * for outbound messages) is a status callback, answered as glue's POST /twilio/status: the same steps 1
 * and 2 (signed URL: the function's URL + /status, query string included; AccountSid allow-list only),
 * 400 naming a missing or malformed field, one call of public.record_whatsapp_status, 200 "ok".
 */

import postgres from "postgres";

export const FORM_TYPE = "application/x-www-form-urlencoded";
export const SIGNATURE_HEADER = "x-twilio-signature";
const MAX_MEDIA = 20; // WhatsApp allows one attachment, MMS ten; anything above is not Twilio.
const BAD_ARGUMENT = "22023";
const TEXT_TYPE = "text/plain; charset=utf-8";
const TWIML_TYPE = "text/xml; charset=utf-8";

/** Environment variables, as Deno.env.toObject() gives them. */
export type Env = Record<string, string | undefined>;

/** Every key and value of a form body, in order, repeated keys included (they are part of the signature). */
export type Form = Array<[string, string]>;

/** One attachment: Twilio's URL for it and its content type. */
export interface Media {
  url: string;
  content_type: string;
}

/** An inbound WhatsApp (or SMS) message as Twilio described it. Body and ProfileName are hostile input. */
export interface InboundMessage {
  messageSid: string;
  sender: string;
  body: string;
  to: string | null;
  accountSid: string | null;
  waId: string | null;
  profileName: string | null;
  media: Media[];
  params: Form;
  /** ExternalUserId: WhatsApp's business-scoped user id (BSUID), when Twilio sent one. */
  externalUserId: string | null;
}

// A business-scoped user id ("US.1349..."): Twilio puts it in From when WhatsApp withheld the phone.
const BSUID_PREFIX = /^[A-Z]{2}\./;
// Twilio's channel prefix: only a From that carries it is a WhatsApp sender.
const WHATSAPP = "whatsapp:";

function bareSender(message: InboundMessage): string {
  return message.sender.startsWith(WHATSAPP) ? message.sender.slice(WHATSAPP.length) : message.sender;
}

/** True when From is a WhatsApp address; anything else (an SMS to the same number) is not stored. */
export function isWhatsapp(message: InboundMessage): boolean {
  return message.sender.startsWith(WHATSAPP);
}

/** The sender's number as Twilio wrote it (the database normalises it), or null for a BSUID sender. */
export function senderPhone(message: InboundMessage): string | null {
  return BSUID_PREFIX.test(bareSender(message)) ? null : message.sender;
}

/** The sender's BSUID: ExternalUserId, else a BSUID in From. */
export function whatsappUserId(message: InboundMessage): string | null {
  if (message.externalUserId) return message.externalUserId;
  return BSUID_PREFIX.test(bareSender(message)) ? bareSender(message) : null;
}

/** What the database did with one delivery; for a redelivery, what the first delivery did. */
export interface Receipt {
  userId: string;
  messageId: string;
  userCreated: boolean;
  duplicate: boolean;
  /** The confirmation of a consent keyword (STOP, START ...), to send back; null otherwise. */
  consentReply?: string | null;
  /** What a link code or its YES did (code_held, linked, code_expired, ...); null for any other message. */
  linkCode: string | null;
  /** The account the code links to, masked (a***@example.com). */
  linkAccount: string | null;
}

/** The sender as a reply hook sees it. */
export interface Sender {
  userId: string;
  created: boolean;
  phone: string;
  profileName: string | null;
}

/** An application's answer to a first delivery: reply text, or null to stay silent. */
export type ReplyHook = (sender: Sender, message: InboundMessage) => Promise<string | null> | string | null;

/** The way to the database: one call of receive_whatsapp_message. */
export interface Gateway {
  receive(message: InboundMessage): Promise<Receipt>;
  /**
   * One call of record_whatsapp_status: the message's status now, or null when it is not in the outbox.
   * A gateway without it answers status callbacks 503.
   */
  recordStatus?(report: StatusReport): Promise<string | null>;
  close(): Promise<void>;
}

/** One status callback: which message, the status Twilio reports, its error code, the outbound id in the URL. */
export interface StatusReport {
  messageSid: string;
  status: string;
  errorCode: number | null;
  outboundMessageId: string | null;
}

/** The relay's settings, read from environment variables with glue's names. */
export interface Settings {
  authTokens: string[];
  functionUrl: string | null;
  publicBaseUrl: string | null;
  supabaseUrl: string | null;
  /** Local use only: check signatures against the URL the request arrived on. */
  trustHostHeader: boolean;
  accountSids: string[];
  toNumbers: string[];
  welcomeReply: string | null;
  maxBodyBytes: number;
  retryAfterSeconds: number;
  dbTimeout: number;
  hookTimeout: number;
  dbPoolSize: number;
  databaseUrl: string | null;
}

// --- errors: each carries the HTTP status and the short text Twilio gets back -----------------------

export class RelayError extends Error {
  constructor(readonly status: number, message: string, readonly reason: string) {
    super(message);
  }
}

const badRequest = (message: string) => new RelayError(400, message, "bad_request");
const forbidden = () => new RelayError(403, "forbidden", "forbidden");
const tooLarge = () => new RelayError(413, "request body too large", "too_large");
const unsupported = () => new RelayError(415, `expected ${FORM_TYPE}`, "unsupported_media_type");

/** The database could not be reached or did not answer within DB_TIMEOUT: Twilio should retry. */
export class DatabaseUnavailable extends RelayError {
  constructor() {
    super(503, "database unavailable", "db_unavailable");
  }
}

/** The database refused an argument (SQLSTATE 22023); the relay answers 400 with its message. */
export class InputRejected extends Error {}

// --- settings ----------------------------------------------------------------------------------

function optional(env: Env, name: string): string | null {
  const value = env[name];
  return value === undefined || value.trim() === "" ? null : value;
}

function list(env: Env, name: string): string[] {
  return (env[name] ?? "").split(",").map((item) => item.trim()).filter((item) => item !== "");
}

function number(env: Env, name: string, fallback: number, min: number, integer: boolean): number {
  const raw = optional(env, name);
  if (raw === null) return fallback;
  const value = Number(raw.trim());
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new Error(`${name} must be ${integer ? "a whole number" : "a number"} >= ${min}, not ${raw}`);
  }
  return value;
}

// The values pydantic reads as a boolean, so one environment means the same to both relays.
const TRUE = ["1", "true", "t", "yes", "y", "on"];
const FALSE = ["0", "false", "f", "no", "n", "off"];

function flag(env: Env, name: string): boolean {
  const raw = optional(env, name);
  if (raw === null) return false;
  const value = raw.trim().toLowerCase();
  if (!TRUE.includes(value) && !FALSE.includes(value)) {
    throw new Error(`${name} must be true or false, not ${raw}`);
  }
  return TRUE.includes(value);
}

function baseUrl(env: Env, name: string): string | null {
  const value = optional(env, name);
  if (value === null) return null;
  if (!/^https?:\/\//.test(value)) {
    throw new Error(`${name} must start with https:// (or http:// for local tests)`);
  }
  return value.replace(/\/+$/, "");
}

/** The settings in `env`; throws when a value is malformed or no Twilio auth token is set. */
export function readSettings(env: Env): Settings {
  const authTokens = [optional(env, "TWILIO_AUTH_TOKEN"), optional(env, "TWILIO_AUTH_TOKEN_SECONDARY")]
    .filter((token): token is string => token !== null);
  if (authTokens.length === 0) {
    throw new Error("TWILIO_AUTH_TOKEN is not set: every request would be refused");
  }
  const settings: Settings = {
    authTokens,
    functionUrl: baseUrl(env, "FUNCTION_URL"),
    publicBaseUrl: baseUrl(env, "PUBLIC_BASE_URL"),
    supabaseUrl: baseUrl(env, "SUPABASE_URL"),
    trustHostHeader: flag(env, "TRUST_HOST_HEADER"),
    accountSids: list(env, "TWILIO_ACCOUNT_SIDS"),
    toNumbers: list(env, "TWILIO_TO_NUMBERS"),
    welcomeReply: optional(env, "WELCOME_REPLY"),
    maxBodyBytes: number(env, "MAX_BODY_BYTES", 65536, 1024, true),
    retryAfterSeconds: number(env, "RETRY_AFTER_SECONDS", 5, 0, true),
    dbTimeout: number(env, "DB_TIMEOUT", 5, Number.MIN_VALUE, false),
    hookTimeout: number(env, "HOOK_TIMEOUT", 5, Number.MIN_VALUE, false),
    dbPoolSize: number(env, "DB_POOL_SIZE", 5, 1, true),
    databaseUrl: optional(env, "DATABASE_URL") ?? optional(env, "SUPABASE_DB_URL"),
  };
  const { functionUrl, publicBaseUrl, supabaseUrl, trustHostHeader } = settings;
  if (functionUrl === null && publicBaseUrl === null && supabaseUrl === null && !trustHostHeader) {
    // The URL the request arrived on would let a signature made for another deployment sharing the
    // token pass here; on Supabase the platform always sets SUPABASE_URL.
    throw new Error(
      "no public URL: set FUNCTION_URL, PUBLIC_BASE_URL or SUPABASE_URL, or TRUST_HOST_HEADER=true for local use",
    );
  }
  return settings;
}

// --- the body and the form -----------------------------------------------------------------------

/** The request body, or 413 as soon as it is known to be over `limit` bytes. */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length") ?? "";
  if (/^[0-9]+$/.test(declared) && Number(declared) > limit) throw tooLarge();
  if (request.body === null) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const HEX = /^[0-9A-Fa-f]{2}$/;

/** Python's urllib.parse.unquote with errors="strict": each ASCII run is percent-decoded as UTF-8. */
function unquote(text: string): string {
  if (!text.includes("%")) return text;
  let result = "";
  // deno-lint-ignore no-control-regex
  for (const run of text.match(/[\x00-\x7f]+|[^\x00-\x7f]+/g) ?? []) {
    if (run.charCodeAt(0) > 0x7f) {
      result += run;
      continue;
    }
    const bytes: number[] = [];
    const parts = run.split("%");
    for (const char of parts[0]) bytes.push(char.charCodeAt(0));
    for (const part of parts.slice(1)) {
      const escaped = HEX.test(part.slice(0, 2));
      if (escaped) bytes.push(parseInt(part.slice(0, 2), 16));
      for (const char of escaped ? part.slice(2) : "%" + part) bytes.push(char.charCodeAt(0));
    }
    result += strictUtf8.decode(new Uint8Array(bytes));
  }
  return result;
}

/** Every pair of a form body, as Python's parse_qsl(keep_blank_values=True) reads it; 415 or 400 otherwise. */
export function parseForm(body: Uint8Array, contentType: string | null): Form {
  const mediaType = (contentType || FORM_TYPE).split(";", 1)[0].trim().toLowerCase();
  if (mediaType !== FORM_TYPE) throw unsupported();
  try {
    const pairs: Form = [];
    for (const field of strictUtf8.decode(body).split("&")) {
      if (field === "") continue;
      const at = field.indexOf("=");
      const [name, value] = at < 0 ? [field, ""] : [field.slice(0, at), field.slice(at + 1)];
      pairs.push([unquote(name.replaceAll("+", " ")), unquote(value.replaceAll("+", " "))]);
    }
    return pairs;
  } catch (error) {
    if (error instanceof TypeError) throw badRequest("the form is not valid UTF-8 form encoding");
    throw error;
  }
}

const values = (form: Form, name: string) => form.filter(([key]) => key === name).map(([, value]) => value);
const last = (form: Form, name: string) => values(form, name).at(-1) ?? null;

// --- the signature ---------------------------------------------------------------------------------

/**
 * The URL Twilio called: FUNCTION_URL, else PUBLIC_BASE_URL + path, else SUPABASE_URL's functions URL, else
 * (TRUST_HOST_HEADER=true only) the URL the request arrived on.
 */
export function publicUrl(requestUrl: string, settings: Settings): string {
  const url = new URL(requestUrl);
  if (settings.functionUrl) return settings.functionUrl + url.search;
  if (settings.publicBaseUrl) return settings.publicBaseUrl + url.pathname + url.search;
  if (settings.supabaseUrl) return `${settings.supabaseUrl}/functions/v1${url.pathname}${url.search}`;
  return requestUrl;
}

/** `url` with and without its port, as twilio's RequestValidator tries it (Twilio is inconsistent). */
function portVariants(url: string): string[] {
  const match = /^([^:/?#]+):\/\/([^/?#]*)(.*)$/s.exec(url);
  if (match === null) return [url];
  const [, scheme, netloc, rest] = match;
  const port = /:([0-9]+)$/.exec(netloc)?.[1];
  if (port !== undefined && Number(port) !== 0) {
    return [`${scheme}://${netloc.split(":")[0]}${rest}`, url];
  }
  return [url, `${scheme}://${netloc}:${scheme === "https" ? 443 : 80}${rest}`];
}

/** Sorts strings by code point, as Python does (JavaScript's default compares UTF-16 units). */
function byCodePoint(a: string, b: string): number {
  const [x, y] = [Array.from(a), Array.from(b)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Twilio's string to sign: the URL, then each parameter name (sorted) followed by its sorted values. */
export function signedText(url: string, form: Form): string {
  let text = url;
  for (const name of [...new Set(form.map(([key]) => key))].sort(byCodePoint)) {
    for (const value of [...new Set(values(form, name))].sort(byCodePoint)) text += name + value;
  }
  return text;
}

const encoder = new TextEncoder();

/** HMAC-SHA1 of Twilio's string to sign with `token`, base64-encoded: the X-Twilio-Signature value. */
export async function computeSignature(token: string, url: string, form: Form): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(token),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(signedText(url, form))));
  return btoa(String.fromCharCode(...mac));
}

/** Compares in time that depends only on the length of `expected`, never on where the strings differ. */
export function constantTimeEqual(expected: string, given: string): boolean {
  const a = encoder.encode(expected);
  const b = encoder.encode(given);
  const other = a.length === b.length ? b : a; // a length mismatch still walks all of `expected`
  let difference = a.length === b.length ? 0 : 1;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ other[i];
  return difference === 0;
}

/** Throws 403 unless one of the tokens (primary, secondary) signed this URL and these parameters. */
export async function checkSignature(
  tokens: string[],
  url: string,
  form: Form,
  signature: string | null,
): Promise<void> {
  if (!signature) throw forbidden();
  let valid = false;
  for (const token of tokens) {
    for (const candidate of portVariants(url)) {
      valid = constantTimeEqual(await computeSignature(token, candidate, form), signature) || valid;
    }
  }
  if (!valid) throw forbidden();
}

/** Throws 403 when an allow-list is configured and the AccountSid or To is not on it. */
export function checkAllowed(form: Form, accountSids: string[], toNumbers: string[]): void {
  if (accountSids.length > 0 && !accountSids.includes(last(form, "AccountSid") as string)) throw forbidden();
  if (toNumbers.length > 0) {
    const to = last(form, "To") ?? "";
    const bare = to.startsWith("whatsapp:") ? to.slice("whatsapp:".length) : to;
    if (!toNumbers.includes(to) && !toNumbers.includes(bare)) throw forbidden();
  }
}

// --- the message -----------------------------------------------------------------------------------

// What Python's str.strip() removes: str.isspace() characters (JavaScript's trim() differs on a few).
const PY_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" +
  "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

function pyStrip(text: string): string {
  let [start, end] = [0, text.length];
  while (start < end && PY_SPACE.includes(text[start])) start++;
  while (end > start && PY_SPACE.includes(text[end - 1])) end--;
  return text.slice(start, end);
}

function single(form: Form, name: string, required: boolean): string | null {
  const found = values(form, name);
  if (found.length > 1) throw badRequest(`${name} given more than once`);
  if (found.length > 0 && found[0].includes("\0")) {
    throw badRequest(`${name} contains a NUL character`); // PostgreSQL text cannot hold one
  }
  const value = found.length > 0 ? pyStrip(found[0]) : "";
  if (required && !value) throw badRequest(`${name} is required`);
  return value || null;
}

// The two shapes Twilio writes a WhatsApp From in (the database checks the rest: length, country code).
const PHONE_SENDER = /^\+[0-9]+$/;
// Sender fields as they appear in the signed text (name immediately followed by value, see checkSender).
const FROM_PHONE_RUN = /From(?:whatsapp:)?\+([0-9]+)/g;
const WA_ID_RUN = /WaId\+?([0-9]+)/g;
const BSUID_RUN_NAMES = ["ExternalUserId", "Fromwhatsapp:"];
const PARENT_BSUID = /^[A-Z]{2}\.[A-Z]{2,8}\./; // ParentExternalUserId: US.ENT.…
const NOT_SENDER = "the sender fields (From, WaId, ExternalUserId) name more than one WhatsApp user";

/** private.phone_match_key: one key for the forms of one E.164 number WhatsApp and Supabase Auth write differently. */
export function phoneMatchKey(phone: string): string {
  if (/^\+55[1-9][1-9][6-9][0-9]{7}$/.test(phone)) return "+55" + phone.slice(3, 5) + "9" + phone.slice(5);
  if (/^\+521[0-9]{10}$/.test(phone)) return "+52" + phone.slice(4); // Mexico: the old mobile 1
  if (/^\+549[0-9]{10}$/.test(phone)) return "+54" + phone.slice(4); // Argentina: the mobile 9
  return phone;
}

function sameBsuid(text: string, at: number, bsuid: string | null): boolean {
  // Nothing separates a value from the next name in the signed text, so the id ends where the next
  // name (an upper-case letter) or the text does.
  if (bsuid === null) return false;
  const follows = text.slice(at, at + bsuid.length + 1);
  return follows.startsWith(bsuid) && /^[A-Z]?$/.test(follows.slice(bsuid.length));
}

/**
 * Throws 400 unless every sender field in the signed text names the one sender this message is stored under.
 *
 * Twilio signs the URL plus every name and value joined without separators, so one signed request can be
 * re-split into another form (a longer Body swallowing forged fields, an invented parameter swallowing the
 * real ones). The real fields are still in the signed text, so they are read back from it: every From and
 * WaId written there must be the message's number (as the identity layer compares numbers), every
 * ExternalUserId and BSUID From the message's BSUID.
 */
export function checkSender(form: Form, message: InboundMessage): void {
  const bare = bareSender(message);
  const phone = PHONE_SENDER.test(bare) ? bare : null;
  if (phone === null && !BSUID_PREFIX.test(bare)) {
    throw badRequest(
      `From '${
        Array.from(message.sender).slice(0, 40).join("")
      }' is not a WhatsApp sender: Twilio writes whatsapp:+<number> or whatsapp:<BSUID>`,
    );
  }
  let bsuid = whatsappUserId(message);
  if (bsuid !== null) bsuid = bsuid.replace(/^\s*whatsapp:/i, "").replace(/^ +| +$/g, "");
  if (phone === null && bsuid !== bare) throw badRequest(NOT_SENDER); // From and ExternalUserId: two users
  const text = signedText("", form);
  const digits = [...text.matchAll(FROM_PHONE_RUN)].map((run) => run[1]);
  if (phone !== null) {
    digits.push(...[...text.matchAll(WA_ID_RUN)].map((run) => run[1]));
    const waId = (message.waId ?? "").replace(/^\+/, "");
    if (/^[0-9]+$/.test(waId)) digits.push(waId);
  }
  const expected = phone === null ? null : phoneMatchKey(phone);
  if (digits.some((run) => phoneMatchKey("+" + run) !== expected)) throw badRequest(NOT_SENDER);
  for (const name of BSUID_RUN_NAMES) {
    for (let start = text.indexOf(name); start >= 0; start = text.indexOf(name, start + 1)) {
      const at = start + name.length;
      if (!BSUID_PREFIX.test(text.slice(at, at + 3))) continue;
      if (text.slice(0, start).endsWith("Parent") && PARENT_BSUID.test(text.slice(at, at + 12))) {
        continue; // ParentExternalUserId: the business portfolio's id, not a user's
      }
      if (!sameBsuid(text, at, bsuid)) throw badRequest(NOT_SENDER);
    }
  }
}

/** The message in a signed form, or 400 when it lacks what a message needs. */
export function readMessage(form: Form): InboundMessage {
  const messageSid = single(form, "MessageSid", true)!;
  const sender = single(form, "From", true)!;
  const bodies = values(form, "Body");
  if (bodies.length > 1) throw badRequest("Body given more than once");
  if (bodies.length > 0 && bodies[0].includes("\0")) throw badRequest("Body contains a NUL character");
  const rawCount = single(form, "NumMedia", false) ?? "0";
  if (!/^[0-9]+$/.test(rawCount) || Number(rawCount) > MAX_MEDIA) {
    throw badRequest("NumMedia is not a small whole number");
  }
  const media: Media[] = [];
  for (let index = 0; index < Number(rawCount); index++) {
    const url = single(form, `MediaUrl${index}`, true)!;
    const contentType = single(form, `MediaContentType${index}`, false);
    media.push({ url, content_type: contentType ?? "application/octet-stream" });
  }
  const message: InboundMessage = {
    messageSid,
    sender,
    body: bodies[0] ?? "",
    to: single(form, "To", false),
    accountSid: single(form, "AccountSid", false),
    waId: single(form, "WaId", false),
    profileName: single(form, "ProfileName", false),
    media,
    params: form,
    externalUserId: single(form, "ExternalUserId", false),
  };
  if (isWhatsapp(message)) checkSender(form, message);
  return message;
}

// --- status callbacks --------------------------------------------------------------------------------

/** The end of a status callback's path: Supabase routes `/functions/v1/whatsapp-webhook/*` to this function. */
export const STATUS_SUFFIX = "/status";
// ASCII digits, few enough for the database's integer (Twilio's codes have five); glue's rule.
const ERROR_CODE = /^[0-9]{1,9}$/;
// The form the worker writes the outbound id in.
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** True for a request to the status callback route (a path ending in /status). */
export function isStatusPath(requestUrl: string): boolean {
  return new URL(requestUrl).pathname.replace(/\/+$/, "").endsWith(STATUS_SUFFIX);
}

/** The URL Twilio called for a status callback: FUNCTION_URL + /status, else as publicUrl() builds it. */
export function publicStatusUrl(requestUrl: string, settings: Settings): string {
  if (settings.functionUrl) return settings.functionUrl + STATUS_SUFFIX + new URL(requestUrl).search;
  return publicUrl(requestUrl, settings);
}

/** The callback's fields (the last of a repeated one, as glue reads them), or 400 naming the one at fault. */
export function readStatus(form: Form, requestUrl: string): StatusReport {
  for (const name of ["MessageSid", "MessageStatus"]) {
    if ((last(form, name) ?? "").includes("\0")) throw badRequest(`${name} contains a NUL character`);
  }
  const messageSid = pyStrip(last(form, "MessageSid") ?? "");
  const status = pyStrip(last(form, "MessageStatus") ?? "");
  if (!messageSid) throw badRequest("MessageSid is required");
  if (!status) throw badRequest("MessageStatus is required");
  const code = pyStrip(last(form, "ErrorCode") ?? "");
  if (code && !ERROR_CODE.test(code)) throw badRequest("ErrorCode must be a number of at most 9 digits");
  const outbound = new URL(requestUrl).searchParams.getAll("outbound_message_id").at(-1) || null;
  if (outbound !== null && !UUID.test(outbound)) throw badRequest("outbound_message_id must be a uuid");
  return {
    messageSid,
    status,
    errorCode: code ? Number(code) : null,
    outboundMessageId: outbound === null ? null : outbound.toLowerCase(),
  };
}

// --- TwiML ---------------------------------------------------------------------------------------------

// Characters XML 1.0 cannot carry at all (a reply holding one would be invalid TwiML, Twilio error 12100).
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Text for an XML element: &, < and > escaped as twilio's MessagingResponse does; characters XML cannot carry dropped. */
export function escapeXml(text: string): string {
  return text.replace(CONTROL, "").replace(LONE_SURROGATE, "").replaceAll("&", "&amp;").replaceAll(
    "<",
    "&lt;",
  ).replaceAll(">", "&gt;");
}

/** TwiML with one <Message> per reply; `<Response />` when there is nothing to say. */
export function twiml(replies: string[]): string {
  const declaration = '<?xml version="1.0" encoding="UTF-8"?>';
  if (replies.length === 0) return `${declaration}<Response />`;
  return `${declaration}<Response>${
    replies.map((r) => `<Message>${escapeXml(r)}</Message>`).join("")
  }</Response>`;
}

// --- the database ----------------------------------------------------------------------------------

/** The RPC's arguments by name, as glue passes them. */
export function rpcArguments(message: InboundMessage) {
  return {
    message_sid: message.messageSid,
    phone: senderPhone(message),
    body: message.body,
    profile_name: message.profileName,
    media: message.media,
    whatsapp_user_id: whatsappUserId(message),
  };
}

function isPostgresError(error: unknown): error is { code: string; message: string } {
  return error instanceof postgres.PostgresError;
}

// Connection failures as the server reports them (57P0x: shut down, starting up).
const CONNECTION_LOST = ["57P01", "57P02", "57P03"];

/**
 * True for a failure a second call may not meet: a rolled-back transaction (class 40: a serialization
 * failure, a deadlock) or a lost connection (any error that is not the database's answer). glue's rule.
 */
export function worthAnotherTry(error: unknown): boolean {
  if (!isPostgresError(error)) return true;
  return ["08", "40"].includes(error.code.slice(0, 2)) || CONNECTION_LOST.includes(error.code);
}

// --- link codes ----------------------------------------------------------------------------------------

const LINK_REPLIES: Record<string, string> = {
  code_expired: "That link code has expired. Make a new one in the app and send it again.",
  code_unknown: "That link code is not valid. Check it in the app, or make a new one.",
  linked_elsewhere: "This WhatsApp is already linked to another account, so nothing was changed.",
  account_has_whatsapp: "That app account is already linked to another WhatsApp, so nothing was changed.",
  too_many_tries: "Too many link codes were tried from this WhatsApp. Please try again in an hour.",
  refused: "The link could not be made, and nothing was changed. Please contact support.",
};

/** The reply for a link-code outcome (the receipt's link_code), as glue/link_codes.py words it. */
export function linkReply(outcome: string, account: string | null): string {
  if (outcome === "code_held") {
    return `This links your WhatsApp to the app account ${account}. Reply YES within 5 minutes to confirm.` +
      " If you did not ask for this, do not reply.";
  }
  if (outcome === "linked") return `Done: your WhatsApp is linked to the app account ${account}.`;
  return LINK_REPLIES[outcome] ?? LINK_REPLIES.refused;
}

/** receive_whatsapp_message over postgres.js: one statement per call, no prepared statements. */
export function postgresGateway(url: string, options: { poolSize?: number; timeout?: number } = {}): Gateway {
  const timeout = options.timeout ?? 5;
  const sql = postgres(url, {
    prepare: false, // Supabase's transaction pooler (port 6543) cannot keep prepared statements
    max: options.poolSize ?? 5,
    connect_timeout: Math.max(1, Math.ceil(timeout)),
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: "whatsapp-webhook" },
  });

  function call(message: InboundMessage) {
    const args = rpcArguments(message);
    return sql<
      {
        user_id: string;
        message_id: string;
        user_created: boolean;
        duplicate: boolean;
        consent_reply: string | null;
        link_code: string | null;
        link_account: string | null;
      }[]
    >`
      select user_id, message_id, user_created, duplicate, consent_reply, link_code, link_account
      from public.receive_whatsapp_message(
        message_sid => ${args.message_sid}, phone => ${args.phone}, body => ${args.body},
        profile_name => ${args.profile_name}, media => ${
      sql.json(args.media as unknown as postgres.JSONValue)
    },
        whatsapp_user_id => ${args.whatsapp_user_id})`;
  }

  async function withTimeout<T>(work: (track: (q: { cancel(): void }) => void) => Promise<T>): Promise<T> {
    const running: { query: { cancel(): void } | null } = { query: null };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DatabaseUnavailable()), timeout * 1000);
    });
    try {
      return await Promise.race([work((query) => (running.query = query)), late]);
    } catch (error) {
      if (error instanceof DatabaseUnavailable) running.query?.cancel(); // late: free the connection
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  function callStatus(report: StatusReport) {
    // Always one row, so that a callback for a message outside the outbox reads as null.
    return sql<{ status: string | null }[]>`
      select (select status from public.record_whatsapp_status(
        message_sid => ${report.messageSid}, message_status => ${report.status},
        error_code => ${report.errorCode}::integer, outbound_message_id => ${report.outboundMessageId}::uuid
      )) as status`;
  }

  // One call, run once more when worthAnotherTry says so: a pooled connection that died with a
  // restarted server, or the database asking for the transaction to be run again (40001, 40P01).
  function withOneRetry<T>(start: () => { cancel(): void } & Promise<T>): Promise<T> {
    return withTimeout(async (track) => {
      try {
        const query = start();
        track(query);
        return await query;
      } catch (error) {
        if (!worthAnotherTry(error)) throw error;
        const query = start();
        track(query);
        return await query;
      }
    });
  }

  return {
    async recordStatus(report) {
      let rows;
      try {
        // Status only ever moves forward, so applying a callback twice is harmless.
        rows = await withOneRetry(() => callStatus(report));
      } catch (error) {
        if (error instanceof DatabaseUnavailable) throw error;
        if (isPostgresError(error) && error.code === BAD_ARGUMENT) {
          throw new InputRejected(error.message || "bad argument");
        }
        throw new DatabaseUnavailable();
      }
      return rows[0]?.status ?? null;
    },
    async receive(message) {
      let rows;
      try {
        // The RPC is idempotent by MessageSid, so one more try is safe.
        rows = await withOneRetry(() => call(message));
      } catch (error) {
        if (error instanceof DatabaseUnavailable) throw error;
        if (isPostgresError(error)) {
          if (error.code === BAD_ARGUMENT) throw new InputRejected(error.message || "bad argument");
          // Anything else the database says (a second deadlock, a trigger the application added, an
          // outage) is 503, as in glue: Twilio delivers again and the RPC makes that harmless.
          throw new DatabaseUnavailable();
        }
        throw new DatabaseUnavailable(); // connection refused, reset, timed out ...
      }
      const row = rows[0];
      return {
        userId: row.user_id,
        messageId: row.message_id,
        userCreated: row.user_created,
        duplicate: row.duplicate,
        consentReply: row.consent_reply,
        linkCode: row.link_code ?? null,
        linkAccount: row.link_account ?? null,
      };
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}

// --- the relay -----------------------------------------------------------------------------------------

function text(message: string, status: number, headers: Record<string, string> = {}): Response {
  return new Response(message, { status, headers: { "content-type": TEXT_TYPE, ...headers } });
}

async function runHook(hook: ReplyHook, sender: Sender, message: InboundMessage, seconds: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"timeout">((
    resolve,
  ) => (timer = setTimeout(() => resolve("timeout"), seconds * 1000)));
  try {
    return await Promise.race([Promise.resolve().then(() => hook(sender, message)), late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Relay {
  /** Answers one request: what Deno.serve calls. */
  fetch(request: Request): Promise<Response>;
  /** Closes the database connections. */
  close(): Promise<void>;
}

export interface RelayOptions {
  /** Overrides the gateway built from DATABASE_URL / SUPABASE_DB_URL (tests and embedding code). */
  gateway?: Gateway;
  /** Answers first deliveries (the Python relay's REPLY_HOOK). */
  hook?: ReplyHook;
  /** Receives the one structured line per request; console.log by default. */
  log?: (line: Record<string, unknown>) => void;
}

/** The relay, built from environment variables (glue's names) and, optionally, its parts. */
export function createRelay(env: Env, options: RelayOptions = {}): Relay {
  const settings = readSettings(env);
  let gateway = options.gateway;
  if (gateway === undefined) {
    if (settings.databaseUrl === null) {
      throw new Error("set SUPABASE_DB_URL (the Edge Runtime provides it) or DATABASE_URL");
    }
    gateway = postgresGateway(settings.databaseUrl, {
      poolSize: settings.dbPoolSize,
      timeout: settings.dbTimeout,
    });
  }
  const db = gateway;
  const hook = options.hook;
  const log = options.log ?? ((line) => console.log(JSON.stringify(line)));

  // The form Twilio signed for `url`, read within the size limit; a bad signature or a sender outside
  // the allow-lists throws (403) before anything touches the database.
  async function verifiedForm(
    request: Request,
    fields: Record<string, unknown>,
    url: string,
    toNumbers: string[],
  ): Promise<Form> {
    const body = await readBody(request, settings.maxBodyBytes);
    const form = parseForm(body, request.headers.get("content-type"));
    try {
      await checkSignature(settings.authTokens, url, form, request.headers.get(SIGNATURE_HEADER));
    } catch (error) {
      fields.reason = "bad_signature";
      throw error;
    }
    try {
      checkAllowed(form, settings.accountSids, toNumbers);
    } catch (error) {
      fields.reason = "not_allowed";
      throw error;
    }
    return form;
  }

  async function webhook(request: Request, fields: Record<string, unknown>): Promise<Response> {
    const form = await verifiedForm(request, fields, publicUrl(request.url, settings), settings.toNumbers);
    const message = readMessage(form);
    fields.message_sid = message.messageSid;
    if (!isWhatsapp(message)) {
      // An SMS to the same number: its sender id can be spoofed on some routes, so it never stands
      // for the WhatsApp user. Twilio gets an empty answer (no retry, no fallback call).
      fields.reason = "not_whatsapp";
      return new Response(twiml([]), { status: 200, headers: { "content-type": TWIML_TYPE } });
    }
    let receipt: Receipt;
    try {
      receipt = await db.receive(message);
    } catch (error) {
      if (error instanceof InputRejected) {
        fields.reason = "rejected_by_database";
        throw badRequest(Array.from(error.message).slice(0, 200).join(""));
      }
      throw error;
    }
    Object.assign(fields, {
      user_id: receipt.userId,
      user_created: receipt.userCreated,
      duplicate: receipt.duplicate,
    });
    const replies: string[] = [];
    if (receipt.userCreated && settings.welcomeReply) replies.push(settings.welcomeReply);
    if (receipt.consentReply) replies.push(receipt.consentReply);
    if (receipt.linkCode !== null) {
      // A link code or its YES: the database has acted on it, the reply says what happened, and the
      // hook (the application's conversation) does not see it.
      fields.link_code = receipt.linkCode;
      replies.push(linkReply(receipt.linkCode, receipt.linkAccount));
    } else if (hook !== undefined && !receipt.duplicate && !receipt.consentReply) {
      // A consent keyword is answered by its confirmation alone: nothing else after a STOP.
      const sender = {
        userId: receipt.userId,
        created: receipt.userCreated,
        phone: message.sender,
        profileName: message.profileName,
      };
      try {
        const reply = await runHook(hook, sender, message, settings.hookTimeout);
        if (reply === "timeout") {
          fields.hook = "timeout";
        } else {
          fields.hook = reply ? "replied" : "silent";
          if (reply) replies.push(reply);
        }
      } catch (error) {
        fields.hook = "failed";
        fields.hook_error = error instanceof Error ? error.name : typeof error;
      }
    }
    return new Response(twiml(replies), { status: 200, headers: { "content-type": TWIML_TYPE } });
  }

  async function statusCallback(request: Request, fields: Record<string, unknown>): Promise<Response> {
    // To is the recipient here, not our number: only the account is checked.
    const form = await verifiedForm(request, fields, publicStatusUrl(request.url, settings), []);
    const report = readStatus(form, request.url);
    Object.assign(fields, { message_sid: report.messageSid, message_status: report.status });
    if (db.recordStatus === undefined) throw new DatabaseUnavailable();
    let now: string | null;
    try {
      now = await db.recordStatus(report);
    } catch (error) {
      if (error instanceof InputRejected) {
        fields.reason = "rejected_by_database";
        throw badRequest(Array.from(error.message).slice(0, 200).join(""));
      }
      throw error;
    }
    fields.outbound_status = now ?? "not_in_outbox";
    return text("ok", 200);
  }

  return {
    async fetch(request) {
      const started = performance.now();
      const fields: Record<string, unknown> = { method: request.method, path: new URL(request.url).pathname };
      let response: Response;
      if (request.method !== "POST") {
        response = text("Method Not Allowed", 405, { allow: "POST" });
      } else {
        try {
          const route = isStatusPath(request.url) ? statusCallback : webhook;
          response = await route(request, fields);
        } catch (error) {
          if (error instanceof RelayError) {
            fields.reason ??= error.reason;
            const headers: Record<string, string> = error instanceof DatabaseUnavailable
              ? { "retry-after": String(settings.retryAfterSeconds) }
              : {};
            response = text(error.message, error.status, headers);
          } else {
            fields.reason = "internal_error";
            fields.error = error instanceof Error ? error.name : typeof error;
            response = text("Internal Server Error", 500);
          }
        }
      }
      fields.status = response.status;
      fields.ms = Math.round((performance.now() - started) * 10) / 10;
      log(fields);
      return response;
    },
    close: () => db.close(),
  };
}
