"""A local stand-in for Twilio's Programmable Messaging API (2010-04-01), for tests, demos
and benchmarks.

It speaks Twilio's documented shapes: form-encoded requests with HTTP Basic auth, the
message, account and IncomingPhoneNumber resources, the list page, and the error body
`{code, message, more_info, status}` (401 / 20003, 400 / 21xxx, 404 / 20404,
429 / 20429). The test-credentials magic numbers give their documented errors (From
+15005550001 21212, +15005550007 21606, +15005550008 21611; To +15005550001 21211,
+15005550002 21612, +15005550003 21408, +15005550004 21610, +15005550009 21614).

It posts what Twilio posts, signed as Twilio signs (`X-Twilio-Signature`: base64
HMAC-SHA1 with the auth token over the URL and the sorted form parameters): inbound
messages to a webhook URL, status callbacks to a message's `StatusCallback`. The
unauthenticated control API lives under `/_sim/` (listed at `GET /_sim/`).

The parts: `shapes` (Twilio's resources, errors and signature), `simulator` (the account,
its API and its posts to a gateway) and `controls` (`/_sim/`).
"""

from pbxsms.sim.twilio.shapes import FaultKind, sign
from pbxsms.sim.twilio.simulator import (
    DEFAULT_ACCOUNT_SID,
    PushResult,
    RecordedRequest,
    TwilioSimulator,
    serve_forever,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "FaultKind",
    "PushResult",
    "RecordedRequest",
    "TwilioSimulator",
    "serve_forever",
    "sign",
]
