"""Messages as the operator sees them: read, list, resend and redeliver (API and CLI)."""
