// The whatsapp-webhook Edge Function: Twilio's inbound WhatsApp webhook, relayed to
// public.receive_whatsapp_message. All behaviour lives in handler.ts (tests call it without a listener);
// deploy with `supabase functions deploy whatsapp-webhook --no-verify-jwt` (see README.md, "The relay as a Supabase Edge Function").
import { createRelay } from "./handler.ts";

const relay = createRelay(Deno.env.toObject());

Deno.serve((request) => relay.fetch(request));
