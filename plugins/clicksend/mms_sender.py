"""ClickSend MMS, outbound side: each picture uploaded (`/v3/uploads?convert=mms`) and sent
with `/v3/mms/send` right after, within the upload's 10-minute life.

ClickSend takes one `media_file` per MMS, so a message with several pictures goes as
several MMS, one per picture, the text on the first and `(2/3)`-style captions on the
others; none is dropped. Every part carries our id as `custom_string`, so receipts of any
part find the message. Once a part is accepted the message is not sent again (a person
would get the pictures twice): a later part that fails is reported in the `accepted`
status's details and logged. A retry uploads again: an upload's URL is never reused.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from pbxsms.core.plugin_api import (
    CarrierError,
    NoAnswer,
    NotSent,
    OutboundMessage,
    Outcome,
    Runtime,
    SendResult,
    media_store,
)
from pbxsms.plugins.clicksend.client import SOURCE, ClickSendClient, HTTPError
from pbxsms.plugins.clicksend.settings import ClickSendSettings

log = logging.getLogger("pbxsms.clicksend")

MMS_SEND_PATH = "/v3/mms/send"
UPLOADS_PATH = "/v3/uploads"
SUBJECT_LIMIT = 20


def subject_of(message: OutboundMessage, settings: ClickSendSettings) -> str:
    """The MMS subject: the request's, else CLICKSEND_MMS_SUBJECT; never empty, at most 20."""
    subject = (message.subject or "").strip() or settings.mms_subject
    return subject[:SUBJECT_LIMIT]


async def upload(client: ClickSendClient, data: bytes) -> str:
    """The URL ClickSend gives an uploaded file converted for MMS (valid 10 minutes)."""
    answer = await client.request("POST", UPLOADS_PATH,
                                  body={"content": base64.b64encode(data).decode()},
                                  query={"convert": "mms"})
    url = answer.get("_url") or answer.get("url") if isinstance(answer, dict) else None
    if not isinstance(url, str) or not url:
        raise NoAnswer("ClickSend's upload answer has no data._url")
    return url


async def send_mms(runtime: Runtime, client: ClickSendClient, settings: ClickSendSettings,
                   message: OutboundMessage) -> SendResult:
    """One message's MMS, a part per picture; one verdict for the message."""
    parts: list[dict[str, Any]] = []
    count = len(message.media)
    for index, item in enumerate(message.media):
        found = await media_store(runtime).get(item.id)
        if found is None:
            return _partial(parts, SendResult(Outcome.FAILED, code="MEDIA_EXPIRED",
                                              reason=f"picture {index + 1} of {count} is no "
                                                     "longer stored"))
        body = message.body if index == 0 and message.body.strip() else \
            f"({index + 1}/{count})"
        try:
            media_file = await upload(client, found[1])
            answer = await client.request("POST", MMS_SEND_PATH, body={
                "media_file": media_file,
                "messages": [{"source": SOURCE, "from": message.from_, "to": message.to,
                              "subject": subject_of(message, settings), "body": body,
                              "custom_string": message.id}]})
        except CarrierError as error:
            return _partial(parts, _error(error))
        result = _judge(answer, message.id)
        if result.outcome != Outcome.ACCEPTED:
            return _partial(parts, result)
        parts.append({"message_id": result.provider_message_id, **result.details})
    first = parts[0]
    return SendResult(Outcome.ACCEPTED, provider_message_id=first["message_id"],
                      details={"mms_parts": parts, "subject": subject_of(message, settings)})


def _partial(parts: list[dict[str, Any]], failure: SendResult) -> SendResult:
    """`failure` when nothing went out yet; once a part has, the message counts as
    accepted (sending it again would repeat that part) and the failure is recorded."""
    if not parts:
        return failure
    log.warning("MMS partly sent: %d part(s) accepted, then %s: %s", len(parts),
                failure.code or failure.outcome.value, failure.reason)
    return SendResult(Outcome.ACCEPTED, provider_message_id=parts[0]["message_id"],
                      details={"mms_parts": parts, "unsent_parts": {
                          "outcome": failure.outcome.value, "code": failure.code,
                          "reason": failure.reason}})


def _judge(answer: Any, message_id: str) -> SendResult:
    messages = answer.get("messages") if isinstance(answer, dict) else None
    item = next((m for m in messages or [] if isinstance(m, dict)
                 and str(m.get("custom_string")) == message_id), None)
    if item is None:
        return SendResult(Outcome.AMBIGUOUS, code="NO_RESULT",
                          reason="ambiguous: ClickSend's answer does not mention the MMS")
    status = str(item.get("status") or "NO_STATUS")
    if status == "SUCCESS" and isinstance(item.get("message_id"), str):
        details = {key: item[key] for key in ("message_price", "_media_file_url", "country")
                   if item.get(key)}
        return SendResult(Outcome.ACCEPTED, provider_message_id=item["message_id"],
                          details=details)
    if status in ("THROTTLED", "INTERNAL_ERROR", "SOMETHING_IS_WRONG"):
        return SendResult(Outcome.RETRY, code=status, reason=f"ClickSend: {status}")
    return SendResult(Outcome.FAILED, code=status[:40], reason=f"ClickSend refused the MMS: "
                                                               f"{status}")


def _error(error: CarrierError) -> SendResult:
    if isinstance(error, NotSent):
        return SendResult(Outcome.RETRY, code="NOT_SENT", reason=str(error))
    if isinstance(error, HTTPError):
        if error.status in (401, 403):
            return SendResult(Outcome.PAUSED, code=f"HTTP_{error.status}", reason=str(error))
        if error.status == 429:
            return SendResult(Outcome.RETRY, code="HTTP_429", reason=str(error),
                              retry_after=error.retry_after)
        if error.status < 500 and error.status != 408:
            return SendResult(Outcome.FAILED, code=error.response_code or
                              f"HTTP_{error.status}", reason=f"ClickSend refused it: {error}")
    return SendResult(Outcome.AMBIGUOUS, code="NO_ANSWER", reason=f"ambiguous: {error}")
