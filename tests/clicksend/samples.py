"""ClickSend's published webhook payloads (docs reference §3 and §4) and stream readers."""

from __future__ import annotations

import json
import time
from typing import Any

from nats.js.errors import NotFoundError

from tests.support.gateway import Gateway

# The samples' own `timestamp` (April 2026) is older than the gateway keeps messages
# (`[bus] max_age`), and such a webhook is refused: the samples are sent as of now.
SAMPLE_TIMESTAMP = int(time.time()) - 60

# §3(a): webhook_type=json, from ClickSend's own n8n trigger.
INBOUND_JSON = """{
  "originalsenderid": "+61477485926",
  "body": "trigger reply",
  "message": "trigger reply",
  "sms": "+61429912603",
  "from": "+61429912603",
  "to": "+61477485926",
  "timestamp": TIMESTAMP,
  "message_id": "1F12D781-99C1-6D94-96FE-F5A311C8997D",
  "original_message_id": "1F12D717-947A-6FBC-BBFE-D14C2927CEEF",
  "original_body": "TESTING TRIGGER",
  "user_id": 304497,
  "subaccount_id": 745158,
  "custom_string": ""
}""".replace("TIMESTAMP", str(SAMPLE_TIMESTAMP))

# §3(b): webhook_type=post, the form version (also sent as the GET query, §3(c)).
INBOUND_FORM = (
    "originalsenderid=%2B61477485926&body=trigger+reply&message=trigger+reply"
    "&sms=%2B61429912603&from=%2B61429912603&to=%2B61477485926&timestamp="
    + str(SAMPLE_TIMESTAMP) + "&message_id=1F12D781-99C1-6D94-96FE-F5A311C8997D"
    "&original_message_id=1F12D717-947A-6FBC-BBFE-D14C2927CEEF"
    "&originalmessageid=1F12D717-947A-6FBC-BBFE-D14C2927CEEF&original_body=TESTING+TRIGGER"
    "&originalmessage=TESTING+TRIGGER&user_id=304497&subaccount_id=745158&custom_string="
    "&customstring="
)
SAMPLE_MESSAGE_ID = "1F12D781-99C1-6D94-96FE-F5A311C8997D"
SAMPLE_SUBACCOUNT = "745158"

# §4: a delivery receipt, as in the v6 SmsReceipt model and the Go spec's example.
RECEIPT_JSON = """{
  "timestamp_send": 1722565661,
  "timestamp": 1722565661,
  "message_id": "D6D16B28-46AC-484A-AB0A-A08CD08EF75C",
  "status_code": "201",
  "status_text": "Success: Message received on handset.",
  "error_code": null,
  "error_text": null,
  "custom_string": null,
  "subaccount_id": 123456,
  "message_type": "sms",
  "digits": null
}"""

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def receipt(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECEIPT_JSON)
    data.update(changes)
    return data


async def stored(gw: Gateway, prefix: str = "sms.") -> list[tuple[str, dict[str, Any], str]]:
    """Every event on the stream whose subject starts with `prefix`: (subject, JSON, msg id)."""
    js = gw.runtime.js
    state = (await js.stream_info(gw.runtime.stream)).state
    found: list[tuple[str, dict[str, Any], str]] = []
    if not state.messages:
        return found
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            msg = await js.get_msg(gw.runtime.stream, seq)
        except NotFoundError:
            continue
        subject = msg.subject or ""
        if subject.startswith(prefix):
            msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
            found.append((subject, json.loads(msg.data or b"{}"), msg_id))
    return found


async def last_seq(gw: Gateway) -> int:
    return int((await gw.runtime.js.stream_info(gw.runtime.stream)).state.last_seq)
