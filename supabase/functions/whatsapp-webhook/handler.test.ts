// The handler's own parts, without a database: the signature against Twilio's documented values and the
// twilio npm library, the public URL, settings, TwiML escaping, and the reply hook (a stand-in gateway).
// The behaviour shared with glue's relay is in contract.test.ts.
import assert from "node:assert/strict";
import twilio from "twilio";
import {
  computeSignature,
  createRelay,
  escapeXml,
  type Form,
  type Gateway,
  isStatusPath,
  publicStatusUrl,
  publicUrl,
  readSettings,
  readStatus,
  type Receipt,
  type StatusReport,
  twiml,
} from "./handler.ts";

const SETTINGS = JSON.parse(
  await Deno.readTextFile(new URL("../../../tests/contract/settings.json", import.meta.url)),
);
const TOKEN = SETTINGS.tokens.primary as string;
const URL_ = "https://wa.example.com/twilio/webhook";

Deno.test("signature vectors from Twilio's documentation are reproduced", async () => {
  for (const vector of SETTINGS.signature_vectors) {
    assert.equal(
      await computeSignature(vector.token, vector.url, vector.params),
      vector.signature,
      vector.source,
    );
  }
});

Deno.test("signatures agree with the twilio library on hostile unicode parameters", async () => {
  const alphabet = ["a", "Z", "0", " ", "&", "=", "+", "%", "é", "字", "🚀", "\n", "'", '"', "<"];
  let seed = 7;
  const pick = () => alphabet[(seed = (seed * 1103515245 + 12345) % 2147483648) % alphabet.length];
  for (let round = 0; round < 200; round++) {
    const form: Form = [];
    for (let i = 0; i < 1 + (round % 6); i++) {
      form.push([`P${i}${pick()}`, Array.from({ length: round % 9 }, pick).join("")]);
    }
    const expected = twilio.getExpectedTwilioSignature(TOKEN, URL_, Object.fromEntries(form));
    assert.equal(await computeSignature(TOKEN, URL_, form), expected, JSON.stringify(form));
  }
});

Deno.test("the public URL: FUNCTION_URL, else PUBLIC_BASE_URL + path, else SUPABASE_URL's functions URL", () => {
  const seen = "http://localhost:9999/whatsapp-webhook?a=1";
  const settings = (env: Record<string, string>) => readSettings({ TWILIO_AUTH_TOKEN: TOKEN, ...env });
  assert.deepStrictEqual(
    [
      publicUrl(
        seen,
        settings({ FUNCTION_URL: "https://x.example/hook/", PUBLIC_BASE_URL: "https://y.example" }),
      ),
      publicUrl(
        seen,
        settings({ PUBLIC_BASE_URL: "https://y.example/", SUPABASE_URL: "https://ref.supabase.co" }),
      ),
      publicUrl(seen, settings({ SUPABASE_URL: "https://ref.supabase.co" })),
      publicUrl(seen, settings({ TRUST_HOST_HEADER: "true" })),
    ],
    [
      "https://x.example/hook?a=1",
      "https://y.example/whatsapp-webhook?a=1",
      "https://ref.supabase.co/functions/v1/whatsapp-webhook?a=1",
      seen,
    ],
  );
});

Deno.test("settings: no token, no database, or a malformed number refuse to start", () => {
  assert.throws(() => createRelay({ SUPABASE_DB_URL: "postgresql://x" }), /TWILIO_AUTH_TOKEN is not set/);
  assert.throws(() => createRelay({ TWILIO_AUTH_TOKEN: TOKEN, FUNCTION_URL: URL_ }), /SUPABASE_DB_URL/);
  assert.throws(() => readSettings({ TWILIO_AUTH_TOKEN: TOKEN, MAX_BODY_BYTES: "lots" }), /MAX_BODY_BYTES/);
  assert.throws(() => readSettings({ TWILIO_AUTH_TOKEN: TOKEN, MAX_BODY_BYTES: "100" }), /MAX_BODY_BYTES/);
  assert.throws(() => readSettings({ TWILIO_AUTH_TOKEN: TOKEN, FUNCTION_URL: "ftp://x" }), /FUNCTION_URL/);
});

Deno.test("settings: without a public URL the function refuses to start unless told to trust the Host", () => {
  // The URL the request arrived on would let a signature made for another deployment sharing the token pass.
  assert.throws(
    () => readSettings({ TWILIO_AUTH_TOKEN: TOKEN }),
    /set FUNCTION_URL, PUBLIC_BASE_URL or SUPABASE_URL, or TRUST_HOST_HEADER=true/,
  );
  assert.throws(
    () => readSettings({ TWILIO_AUTH_TOKEN: TOKEN, TRUST_HOST_HEADER: "maybe" }),
    /TRUST_HOST_HEADER must be true or false/,
  );
  assert.equal(readSettings({ TWILIO_AUTH_TOKEN: TOKEN, TRUST_HOST_HEADER: "true" }).trustHostHeader, true);
});

Deno.test("TwiML escapes &, < and > and drops characters XML cannot carry", () => {
  assert.equal(escapeXml("a<b>&c \"q\" 'é' \x01\x1f\t\n\ud800🚀"), "a&lt;b&gt;&amp;c \"q\" 'é' \t\n🚀");
  assert.equal(twiml([]), '<?xml version="1.0" encoding="UTF-8"?><Response />');
});

/** A stand-in database: the first delivery of a sid creates, later ones are duplicates. */
function fakeGateway(): Gateway & { calls: number } {
  const seen = new Set<string>();
  return {
    calls: 0,
    receive(message): Promise<Receipt> {
      this.calls++;
      const duplicate = seen.has(message.messageSid);
      seen.add(message.messageSid);
      return Promise.resolve({
        userId: "u1",
        messageId: "m1",
        userCreated: true,
        duplicate,
        linkCode: null,
        linkAccount: null,
      });
    },
    close: () => Promise.resolve(),
  };
}

async function signedRequest(params: Form): Promise<Request> {
  const body = new URLSearchParams(params).toString();
  return new Request("http://internal:9000/whatsapp-webhook", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": await computeSignature(TOKEN, URL_, params),
    },
    body,
  });
}

const MESSAGE: Form = [["MessageSid", "SM1"], ["From", "whatsapp:+14155550123"], ["Body", "a <b>"]];
const ENV = { TWILIO_AUTH_TOKEN: TOKEN, FUNCTION_URL: URL_, WELCOME_REPLY: "Hi", HOOK_TIMEOUT: "0.2" };

Deno.test("the reply hook answers first deliveries only, after the welcome, escaped", async () => {
  const gateway = fakeGateway();
  const calls: string[] = [];
  const relay = createRelay(ENV, {
    gateway,
    log: () => {},
    hook: (sender, message) => (calls.push(`${sender.userId} ${message.body}`), `echo: ${message.body}`),
  });
  const first = await (await relay.fetch(await signedRequest(MESSAGE))).text();
  const again = await (await relay.fetch(await signedRequest(MESSAGE))).text();
  assert.deepStrictEqual([first, again, calls], [
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hi</Message><Message>echo: a &lt;b&gt;</Message></Response>',
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hi</Message></Response>',
    ["u1 a <b>"],
  ]);
});

Deno.test("a failing or late hook costs only its own reply", async () => {
  const lines: Record<string, unknown>[] = [];
  for (
    const hook of [
      () => {
        throw new RangeError("bug");
      },
      () => new Promise<string>((resolve) => setTimeout(() => resolve("too late"), 400)),
    ]
  ) {
    const relay = createRelay(ENV, { gateway: fakeGateway(), hook, log: (line) => lines.push(line) });
    const response = await relay.fetch(await signedRequest(MESSAGE));
    assert.deepStrictEqual([response.status, await response.text()], [
      200,
      '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hi</Message></Response>',
    ]);
  }
  await new Promise((resolve) => setTimeout(resolve, 300)); // let the late hook finish
  assert.deepStrictEqual(lines.map((l) => [l.hook, l.hook_error]), [["failed", "RangeError"], [
    "timeout",
    undefined,
  ]]);
});

// --- status callbacks (the behaviour shared with glue's POST /twilio/status is in the contract's status_* cases)

Deno.test("a path ending in /status is the status route; its signed URL is the function's URL + /status", () => {
  const seen = "http://localhost:9999/whatsapp-webhook/status?outbound_message_id=x";
  const settings = (env: Record<string, string>) => readSettings({ TWILIO_AUTH_TOKEN: TOKEN, ...env });
  assert.deepStrictEqual(
    [
      isStatusPath(seen),
      isStatusPath("http://localhost:9999/whatsapp-webhook/status/"),
      isStatusPath("http://localhost:9999/whatsapp-webhook"),
      isStatusPath("http://localhost:9999/whatsapp-webhook?next=/status"),
      publicStatusUrl(seen, settings({ FUNCTION_URL: "https://x.example/functions/v1/whatsapp-webhook" })),
      publicStatusUrl(seen, settings({ SUPABASE_URL: "https://ref.supabase.co" })),
    ],
    [
      true,
      true,
      false,
      false,
      "https://x.example/functions/v1/whatsapp-webhook/status?outbound_message_id=x",
      "https://ref.supabase.co/functions/v1/whatsapp-webhook/status?outbound_message_id=x",
    ],
  );
});

Deno.test("a status callback reads the last of repeated fields, trims them and lower-cases the outbound id", () => {
  const form: Form = [
    ["MessageSid", "SM1"],
    ["MessageStatus", "sent"],
    ["MessageStatus", " delivered "],
    ["ErrorCode", "63016"],
  ];
  const url =
    "http://internal/whatsapp-webhook/status?outbound_message_id=A0000000-0000-4000-8000-0000000000A1";
  assert.deepStrictEqual(readStatus(form, url), {
    messageSid: "SM1",
    status: "delivered",
    errorCode: 63016,
    outboundMessageId: "a0000000-0000-4000-8000-0000000000a1",
  });
});

async function signedStatus(params: Form): Promise<Request> {
  const publicStatus = URL_ + "/status";
  return new Request("http://internal:9000/whatsapp-webhook/status", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": await computeSignature(TOKEN, publicStatus, params),
    },
    body: new URLSearchParams(params).toString(),
  });
}

const CALLBACK: Form = [["MessageSid", "SM1"], ["MessageStatus", "delivered"]];

Deno.test("a status callback makes one recordStatus call and never reaches the webhook's RPC", async () => {
  const gateway = fakeGateway();
  const reports: StatusReport[] = [];
  const lines: Record<string, unknown>[] = [];
  // The same object, so that a call of receive() would show in gateway.calls.
  gateway.recordStatus = (report) => (reports.push(report), Promise.resolve("delivered"));
  const relay = createRelay(ENV, { gateway, log: (line) => lines.push(line) });
  const response = await relay.fetch(await signedStatus(CALLBACK));
  assert.deepStrictEqual([response.status, await response.text(), gateway.calls], [200, "ok", 0]);
  assert.deepStrictEqual(reports, [
    { messageSid: "SM1", status: "delivered", errorCode: null, outboundMessageId: null },
  ]);
  assert.deepStrictEqual(
    [lines[0].path, lines[0].message_status, lines[0].outbound_status],
    ["/whatsapp-webhook/status", "delivered", "delivered"],
  );
});

Deno.test("a status callback signed for the webhook's URL (without /status) is 403", async () => {
  const relay = createRelay(ENV, {
    gateway: { ...fakeGateway(), recordStatus: () => Promise.resolve("delivered") },
    log: () => {},
  });
  const request = new Request("http://internal:9000/whatsapp-webhook/status", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": await computeSignature(TOKEN, URL_, CALLBACK),
    },
    body: new URLSearchParams(CALLBACK).toString(),
  });
  assert.equal((await relay.fetch(request)).status, 403);
});

Deno.test("a gateway without recordStatus answers status callbacks 503 with Retry-After", async () => {
  const relay = createRelay(ENV, { gateway: fakeGateway(), log: () => {} });
  const response = await relay.fetch(await signedStatus(CALLBACK));
  assert.deepStrictEqual(
    [response.status, response.headers.get("retry-after"), await response.text()],
    [503, "5", "database unavailable"],
  );
});
