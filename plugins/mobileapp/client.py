"""Pushing one message into an extension's app inbox (Ringotel-style `message` method).

Only an answer carrying `result.messageid` is a success. Everything else is sorted into
what a later attempt may fix (`Retry`: timeouts, 5xx, 429, internal errors) and what it
cannot (`Permanent`: our request or its target is wrong).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from pbxsms.core.plugin_api import Permanent, Retry
from pbxsms.plugins.mobileapp.settings import MobileAppSettings

# JSON-RPC codes that describe our request (parse error, invalid request, unknown method,
# invalid params such as an unknown organisation or user): repeating it cannot help.
PERMANENT_RPC_CODES = frozenset({-32700, -32600, -32601, -32602})
# HTTP answers that are worth another attempt; other 4xx are permanent.
RETRYABLE_HTTP = frozenset({408, 425, 429})
# Message types of the app API: text, and a media link shown as the picture.
TEXT = 1
MEDIA = 7


async def push_message(http: ClientSession, settings: MobileAppSettings, orgid: str,
                       sender: str, extension: str, content: str, kind: int = TEXT) -> str:
    """POST the message (`kind` TEXT, or MEDIA with a link as `content`); return the app's
    `result.messageid` or raise Retry/Permanent."""
    assert settings.api_url is not None and settings.api_token is not None
    payload = {"method": "message",
               "params": {"orgid": orgid, "from": sender, "to": extension,
                          "content": content, "type": kind}}
    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
    try:
        async with http.post(settings.api_url, json=payload, headers=headers,
                             timeout=ClientTimeout(total=settings.timeout)) as response:
            status = response.status
            retry_after = response.headers.get("Retry-After")
            text = await response.text(errors="replace")
    except TimeoutError as error:
        raise Retry(f"app API did not answer within {settings.timeout:g}s") from error
    except ClientError as error:
        raise Retry(f"app API unreachable: {type(error).__name__}: {error}") from error
    return _result(status, text, retry_after)


def _result(status: int, text: str, retry_after: str | None) -> str:
    body = _json(text)
    if status >= 500:
        raise Retry(f"app API answered HTTP {status}{_error_text(body)}")
    if status in RETRYABLE_HTTP:
        raise Retry(f"app API answered HTTP {status}{_error_text(body)}",
                    delay=_seconds(retry_after))
    if status in (401, 403):
        raise Permanent(f"app API refused the token (HTTP {status}): check RINGOTEL_API_TOKEN")
    if status >= 400:
        raise Permanent(f"app API answered HTTP {status}{_error_text(body)}")
    if isinstance(body, dict):
        error = body.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            reason = f"app API error{_error_text(body)}"
            if isinstance(code, int) and code in PERMANENT_RPC_CODES:
                raise Permanent(reason)
            raise Retry(reason)
        result = body.get("result")
        messageid = result.get("messageid") if isinstance(result, dict) else None
        if isinstance(messageid, str | int) and not isinstance(messageid, bool) \
                and str(messageid):
            return str(messageid)
    raise Retry(f"app API answered HTTP {status} without result.messageid")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_text(body: Any) -> str:
    """`: <message> (code <n>)` from an `error` body, or nothing; never more than a line."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", ""))[:200]
        code = error.get("code")
        return f": {message}" + (f" (code {code})" if code is not None else "")
    if isinstance(error, str):
        return f": {error[:200]}"
    return ""


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds, at most 10 minutes (an HTTP date: our own backoff)."""
    try:
        return min(max(float(value), 0.0), 600.0) if value is not None else None
    except ValueError:
        return None
