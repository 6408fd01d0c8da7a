"""A local stand-in for ClickSend's REST API v3, for tests, demos and benchmarks.

Shapes follow the project's ClickSend research notes (the real send response, the Laravel
paginator, the error bodies seen by live probes). Where ClickSend documents nothing, the choice
made here is marked "undocumented" so nobody mistakes it for observed behaviour.

Besides ``/v3/*`` the server offers an unauthenticated control API under ``/_sim/`` (listed at
``GET /_sim/``) to inject faults, inspect what was sent and push inbound SMS and delivery
receipts to a gateway. The parts: `state` (accounts, numbers, recorded traffic), `gate`
(recording, faults, authentication, rate limits), `sending` (`/v3/sms/send` and pricing),
`directory` (account, subaccounts, numbers, history), `webhooks` (inbound and receipt pushes),
`controls` (`/_sim/`) and `simulator` (them put together).
"""

from pbxsms.sim.clicksend.api import HISTORY_PATH, MAX_MESSAGES_PER_REQUEST, SEND_PATH
from pbxsms.sim.clicksend.gate import Fault, FaultKind
from pbxsms.sim.clicksend.sending import TEST_NUMBERS, message_parts
from pbxsms.sim.clicksend.simulator import ClickSendSimulator, create_app, serve_forever
from pbxsms.sim.clicksend.state import TEST_ACCOUNT_KEY, Account, RecordedRequest
from pbxsms.sim.clicksend.webhooks import PushResult, ReceiptFormat, WebhookType

__all__ = [
    "HISTORY_PATH",
    "MAX_MESSAGES_PER_REQUEST",
    "SEND_PATH",
    "TEST_ACCOUNT_KEY",
    "TEST_NUMBERS",
    "Account",
    "ClickSendSimulator",
    "Fault",
    "FaultKind",
    "PushResult",
    "ReceiptFormat",
    "RecordedRequest",
    "WebhookType",
    "create_app",
    "message_parts",
    "serve_forever",
]
