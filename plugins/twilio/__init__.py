"""The Twilio provider plugin (Programmable Messaging, API 2010-04-01)."""
