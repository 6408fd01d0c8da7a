"""The operator console: conversations, replies, numbers and problems in a browser."""
