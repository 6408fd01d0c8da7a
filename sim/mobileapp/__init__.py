"""A local stand-in for a Ringotel-style mobile-app messaging API, for tests and demos.

The gateway pushes an inbound SMS into an extension's app with
``POST <api url>`` + ``Authorization: Bearer <token>`` and the JSON-RPC-style body
``{"method":"message","params":{"orgid","from","to","content","type"}}``; success is
``{"result":{"messageid":...}}`` and failures come back as ``{"error":{"code","message"}}``
with HTTP 200 (FS PBX only looks at ``result.messageid`` / ``error.message``).

The app side is simulated too: `reply()` and `delivered()` post what Ringotel posts to the
PBX webhook. The unauthenticated control API lives under ``/_sim/`` (listed at
``GET /_sim/``).

The parts: `inbox` (the API call checked and stored, the records and faults), `controls`
(`/_sim/`) and `simulator` (them put together, and the app's posts to the gateway).
"""

from pbxsms.sim.mobileapp.inbox import FaultKind, Push, RecordedRequest
from pbxsms.sim.mobileapp.simulator import (
    MobileAppSimulator,
    WebhookResult,
    create_app,
    serve_forever,
)

__all__ = [
    "FaultKind",
    "MobileAppSimulator",
    "Push",
    "RecordedRequest",
    "WebhookResult",
    "create_app",
    "serve_forever",
]
