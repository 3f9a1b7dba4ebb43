"""glue: the Twilio WhatsApp relay and the local Supabase-shaped platform for the identity layer."""

__version__ = "0.1.0"
