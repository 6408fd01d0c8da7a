"""The mobile-app API's inbox: the JSON-RPC `method=message` call checked and stored as a
push, the error answers it gives, the records the simulator keeps of its calls and the
faults it can be told to show."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from aiohttp import web

from pbxsms.sim.server import JsonDict, json_response

FaultKind = Literal["500", "error", "delay", "drop"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

# JSON-RPC 2.0 codes; Ringotel's own codes are undocumented.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


def rpc_error(code: int, message: str) -> web.Response:
    return json_response(200, {"error": {"code": code, "message": message}})


@dataclass
class Push:
    """One message accepted into an app user's inbox."""

    messageid: str
    orgid: str
    from_: str
    to: str
    content: str
    type: int
    received_at: float = field(default_factory=time.time)

    def as_json(self) -> JsonDict:
        data = asdict(self)
        data["from"] = data.pop("from_")
        return data


@dataclass
class RecordedRequest:
    """Every API call, accepted or not; `status` is None when the connection was dropped."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    status: int | None = None
    fault: str | None = None
    response: Any = None
    received_at: float = field(default_factory=time.time)


@dataclass
class Fault:
    """One misbehaviour: HTTP 500, an `error` answer, a delay or a dropped connection."""

    kind: FaultKind
    delay: float = 0.0
    message: str = "Internal error"


def accept_call(
    body: Any, parsed: bool, users: set[tuple[str, str]], pushes: list[Push]
) -> web.Response:
    """Answer one API call, JSON-RPC style; a valid `method=message` lands in `pushes`.

    With no users registered any orgid/extension is accepted; with some, unknown ones get an
    `error` answer, which is how a misconfigured org looks from the gateway.
    """
    if not parsed:
        return rpc_error(PARSE_ERROR, "Parse error")
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        return rpc_error(INVALID_REQUEST, "Invalid request: 'method' is required")
    if body["method"] != "message":
        return rpc_error(METHOD_NOT_FOUND, f"Method not found: {body['method']}")
    params = body.get("params")
    if not isinstance(params, dict):
        return rpc_error(INVALID_PARAMS, "Invalid params: 'params' must be an object")
    for name in ("orgid", "from", "to", "content"):
        value = params.get(name)
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            return rpc_error(INVALID_PARAMS, f"Invalid params: '{name}' is required")
    kind = params.get("type", 1)
    if not isinstance(kind, int) or isinstance(kind, bool):
        return rpc_error(INVALID_PARAMS, "Invalid params: 'type' must be an integer")
    orgid, to = str(params["orgid"]), str(params["to"])
    if users and not any(org == orgid for org, _ in users):
        return rpc_error(INVALID_PARAMS, f"Organization not found: {orgid}")
    if users and (orgid, to) not in users:
        return rpc_error(INVALID_PARAMS, f"User not found: {to}")
    push = Push(
        messageid=uuid.uuid4().hex,
        orgid=orgid,
        from_=str(params["from"]),
        to=to,
        content=str(params["content"]),
        type=kind,
    )
    pushes.append(push)
    return json_response(200, {"result": {"messageid": push.messageid}})
