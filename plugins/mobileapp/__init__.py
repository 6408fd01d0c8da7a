"""Mobile app: push inbound SMS to the extension's app (Ringotel-style API), take replies."""
