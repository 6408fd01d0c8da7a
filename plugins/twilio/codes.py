"""Twilio's error codes, as pbxsms judges them: at send time (the create call's `code`)
and in status callbacks (`ErrorCode`). Sources: providers.md §2 and twilio.com/docs/api/errors.
"""

from __future__ import annotations

# The account is refused: sending pauses until the credentials change.
ACCOUNT = frozenset({20003, 20005})
# Not taken now, worth sending again later.
RATE_LIMITED = 20429
QUEUE_FULL = 21611
# The recipient replied STOP (or another opt-out keyword): Twilio refuses every message
# to them from this sender until they reply START.
OPTED_OUT = 21610
# The operator must change something (the number, its registration, the account's
# geographic permissions): `pbxsms doctor` and docs/twilio-setup.md say what.
CONFIGURATION = frozenset({21606, 21212, 21408, 30034, 21659, 21660})

DESCRIPTIONS = {
    20003: "authentication failed: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
    20005: "the Twilio account is not active",
    20429: "too many requests",
    21211: "invalid To number",
    21212: "invalid From number",
    21408: "sending to this region is not enabled (Messaging Geographic Permissions)",
    21606: "the From number is not a Twilio number of this account able to send SMS",
    21610: "the recipient opted out (replied STOP); Twilio blocks messages to them from "
           "this sender until they reply START",
    21611: "the From number's queue at Twilio is full",
    21612: "Twilio cannot route to this number",
    21614: "the To number cannot receive SMS",
    21659: "the From number is not a Twilio number of this account",
    21660: "the From number does not belong to this account",
    30001: "queue overflow",
    30002: "account suspended",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "carrier filtering (do not resend the same content)",
    30008: "unknown error",
    30034: "the From number is not registered for US A2P 10DLC",
}


def describe(code: int, message: str = "") -> str:
    """What `code` means, with Twilio's own message when it gave one."""
    known = DESCRIPTIONS.get(code)
    parts = [f"Twilio error {code}"]
    if known:
        parts.append(known)
    if message and message != known:
        parts.append(f"({message})")
    return " ".join([parts[0] + (":" if len(parts) > 1 else ""), *parts[1:]])
