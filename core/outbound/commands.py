"""`pbxsms send`: a client of the running gateway's `POST /api/v1/messages`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

# Where --wait stops: the provider took it, or it will not go out.
SETTLED = frozenset({"accepted", "sent", "delivered", "failed", "unknown", "unroutable"})
FAILED = frozenset({"failed", "unknown", "unroutable"})


class SendFailed(Exception):
    """The gateway refused or could not take the message; the text says why."""


async def send_via_api(base: str, token: str, request: dict[str, Any], wait: bool,
                       timeout: float, echo: Callable[[str], Any]) -> None:
    """Post `request`; print its id, and with `wait` its state until settled."""
    headers = {"Authorization": f"Bearer {token}"}
    async with ClientSession(headers=headers, timeout=ClientTimeout(total=30)) as http:
        try:
            async with http.post(f"{base}/api/v1/messages", json=request) as response:
                answer = _json(response.status, await response.text())
                if response.status != 202:
                    raise SendFailed(_error(response.status, answer))
            echo(f"queued {answer['id']} ({answer.get('segments')} SMS part(s), "
                 f"{answer.get('encoding')})")
            if wait:
                await _wait(http, f"{base}/api/v1/messages/{answer['id']}", timeout, echo)
        except ClientError as error:
            raise SendFailed(f"cannot reach the gateway at {base}: {error} "
                             "(is `pbxsms serve` running? see --url)") from error


async def _wait(http: ClientSession, url: str, timeout: float,
                echo: Callable[[str], Any]) -> None:
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        async with http.get(url) as response:
            record = _json(response.status, await response.text())
        state = str(record.get("state", "")) if response.status == 200 else ""
        if state and state != shown:
            shown = state
            last = (record.get("history") or [{}])[-1]
            extra = record.get("provider_message_id") or last.get("reason") or ""
            echo(f"{state}{f': {extra}' if extra else ''}")
        if state in FAILED:
            raise SendFailed(f"the message {state}")
        if state in SETTLED:
            return
        if time.monotonic() >= deadline:
            raise SendFailed(f"no outcome within {timeout:.0f}s; last state: "
                             f"{shown or 'not recorded yet'}")
        await asyncio.sleep(0.5)


def _json(status: int, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"error": f"HTTP {status}: {text[:200]}"}
    return value if isinstance(value, dict) else {"error": f"HTTP {status}"}


def _error(status: int, answer: dict[str, Any]) -> str:
    field = f" ({answer['field']})" if answer.get("field") else ""
    return f"refused with HTTP {status}: {answer.get('error', '')}{field}"
