"""ClickSend: inbound webhooks, delivery receipts and outbound sending."""
