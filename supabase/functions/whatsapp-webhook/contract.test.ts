// The relay contract (tests/contract/cases/*.json) against the Edge Function's handler, called without a
// network listener, with the real database: one fresh database per case, made by tests/test_edge_function.py
// and passed as CONTRACT_DATABASES ({"<case>": "postgresql://..."}). tests/test_contract.py runs the same
// cases against glue's Python relay. Requests are signed with the twilio npm library, not with our code.
import assert from "node:assert/strict";
import postgres from "postgres";
import twilio from "twilio";
import { createRelay } from "./handler.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;
type Pairs = Array<[string, string]>;

const CONTRACT = new URL("../../../tests/contract/", import.meta.url);
const SETTINGS: Json = JSON.parse(await Deno.readTextFile(new URL("settings.json", CONTRACT)));
const PUBLIC_URL: string = SETTINGS.public_url;
// What the function sees behind Supabase's gateway: not the URL Twilio called.
const INTERNAL_URL = "http://edge-runtime.internal:9000/whatsapp-webhook";
// A case's request with "route": "status" is a status callback, to the function's URL + /status.
const STATUS_SUFFIX = "/status";
const ORDER: Record<string, string> = {
  users: "created_at, phone_number",
  whatsapp_messages: "received_at, message_sid",
  whatsapp_number_reassignments: "created_at, phone_number",
  user_merges: "created_at, outcome",
  outbound_messages: "queued_at, id",
};

const databasesJson = Deno.env.get("CONTRACT_DATABASES");
if (!databasesJson) {
  throw new Error("CONTRACT_DATABASES is not set: run `scripts/test tests/test_edge_function.py`");
}
const DATABASES: Record<string, string> = JSON.parse(databasesJson);

const CASES = [...Deno.readDirSync(new URL("cases/", CONTRACT))]
  .filter((entry) => entry.name.endsWith(".json"))
  .map((entry) => entry.name.slice(0, -".json".length))
  .sort();

/** A parameter value: a string, or {"repeat": s, "times": n} for long ones. */
function value(raw: unknown): string {
  if (typeof raw === "object" && raw !== null) {
    const { repeat, times } = raw as { repeat: string; times: number };
    return repeat.repeat(times);
  }
  return String(raw);
}

/** A case's parameters, an object or a list of [name, value] pairs (for repeated names), as pairs. */
function pairs(params: unknown): Pairs {
  const items = Array.isArray(params) ? params : Object.entries(params as Json);
  return items.map(([name, raw]) => [String(name), value(raw)]);
}

/** The X-Twilio-Signature the case asks for, computed by the twilio library as Twilio signs. */
function signatureHeaders(request: Json, sent: Pairs): Record<string, string> {
  const spec = "signature" in request ? request.signature : {};
  if (spec === null) return {};
  if ("header" in spec) return { "x-twilio-signature": spec.header };
  const query = request.query ? `?${request.query}` : "";
  const suffix = request.route === "status" ? STATUS_SUFFIX : "";
  const urls: Record<string, string> = {
    public: PUBLIC_URL + suffix + query,
    public_without_query: PUBLIC_URL + suffix,
    internal: INTERNAL_URL + suffix + query,
  };
  const where = spec.url ?? "public";
  const url = urls[where] ?? where;
  const params: Record<string, string | string[]> = {};
  for (const [name, val] of "params" in spec ? pairs(spec.params) : sent) {
    const seen = params[name];
    params[name] = seen === undefined ? val : [...(Array.isArray(seen) ? seen : [seen]), val];
  }
  const token = SETTINGS.tokens[spec.token ?? "primary"];
  return { "x-twilio-signature": twilio.getExpectedTwilioSignature(token, url, params) };
}

/** One request of a case as the function receives it: at its internal URL, with Content-Length when sized. */
function build(request: Json): Request {
  const method = request.method ?? "POST";
  const sent = pairs(request.params ?? []);
  const bytes = new TextEncoder().encode(
    "raw_body" in request ? request.raw_body : new URLSearchParams(sent).toString(),
  );
  const headers = new Headers(signatureHeaders(request, sent));
  const contentType = "content_type" in request ? request.content_type : "application/x-www-form-urlencoded";
  if (contentType !== null) headers.set("content-type", contentType);
  const suffix = request.route === "status" ? STATUS_SUFFIX : "";
  const url = INTERNAL_URL + suffix + (request.query ? `?${request.query}` : "");
  if (method !== "POST") return new Request(url, { method, headers });
  if (!request.chunked) {
    headers.set("content-length", String(bytes.byteLength));
    return new Request(url, { method, headers, body: bytes });
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  return new Request(url, { method, headers, body });
}

async function checkResponse(response: Response, expect: Json, where: string): Promise<void> {
  const actual: Json = { where, status: response.status };
  const wanted: Json = { where, status: expect.status };
  if ("content_type" in expect) {
    [actual.content_type, wanted.content_type] = [response.headers.get("content-type"), expect.content_type];
  }
  const text = await response.text();
  if ("body" in expect) [actual.body, wanted.body] = [text, expect.body];
  for (const [name, expected] of Object.entries(expect.headers ?? {})) {
    [actual[name], wanted[name]] = [response.headers.get(name), expected];
  }
  assert.deepStrictEqual(actual, wanted);
}

/** The rows of each table the case names, each cut down to the columns the case lists for it. */
async function stored(sql: postgres.Sql, expected: Record<string, Json[]>): Promise<Record<string, Json[]>> {
  const found: Record<string, Json[]> = {};
  for (const [table, rows] of Object.entries(expected)) {
    const actual =
      (await sql.unsafe(`select to_jsonb(t) as row from public.${table} as t order by ${ORDER[table]}`))
        .map((r) => r.row as Json);
    found[table] = [
      ...actual.slice(0, rows.length).map((a, i) =>
        Object.fromEntries(Object.keys(rows[i]).map((k) => [k, a[k] ?? null]))
      ),
      ...actual.slice(rows.length), // rows nobody expected, in full
    ];
  }
  return found;
}

function unreachableUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
}

for (const name of CASES) {
  Deno.test(name, async () => {
    const contract: Json = JSON.parse(await Deno.readTextFile(new URL(`cases/${name}.json`, CONTRACT)));
    const dbUrl = DATABASES[name];
    assert.ok(dbUrl, `no database for case ${name} in CONTRACT_DATABASES`);
    const lines: Json[] = [];
    const relay = createRelay({
      ...SETTINGS.env,
      ...contract.env,
      FUNCTION_URL: PUBLIC_URL,
      SUPABASE_DB_URL: contract.database === "unreachable" ? unreachableUrl() : dbUrl,
    }, { log: (line) => lines.push(line) });
    const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
    try {
      for (const statement of (contract.setup_sql ?? []) as string[]) await sql.unsafe(statement);
      for (const [index, request] of (contract.requests as Json[]).entries()) {
        const where = `${name}, request ${index}`;
        let response: Response;
        if (request.lock_messages_table) {
          const locker = await sql.reserve();
          try {
            await locker`begin`;
            await locker`lock table public.whatsapp_messages in access exclusive mode`;
            response = await relay.fetch(build(request));
            await locker`rollback`;
          } finally {
            locker.release();
          }
        } else {
          response = await relay.fetch(build(request));
        }
        await checkResponse(response, request.expect, where);
      }
      if (contract.stored) assert.deepStrictEqual(await stored(sql, contract.stored), contract.stored);
      // One structured line per request, never a token or a message body.
      assert.equal(lines.length, contract.requests.length);
      const logged = JSON.stringify(lines);
      for (const secret of Object.values(SETTINGS.tokens) as string[]) assert.ok(!logged.includes(secret));
      for (const request of contract.requests as Json[]) {
        for (const [key, val] of pairs(request.params ?? [])) {
          if (key === "Body" && val.length >= 4) assert.ok(!logged.includes(val), `${name}: Body logged`);
        }
      }
    } finally {
      await relay.close();
      await sql.end();
    }
  });
}
