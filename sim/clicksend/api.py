"""The shape of ClickSend's answers: its paths, the response envelope, its stock errors and
the Laravel paginator of its list endpoints."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from pbxsms.sim.server import JsonDict, json_response

SEND_PATH = "/v3/sms/send"
HISTORY_PATH = "/v3/sms/history"
ACCOUNT_PATH = "/v3/account"
SUBACCOUNTS_PATH = "/v3/subaccounts"
NUMBERS_PATH = "/v3/numbers"
MAX_MESSAGES_PER_REQUEST = 1000

USD = {
    "currency_name_short": "USD",
    "currency_prefix_d": "$",
    "currency_prefix_c": "¢",
    "currency_name_long": "US Dollars",
}


def envelope(http_code: int, response_code: str, response_msg: str, data: Any = None) -> JsonDict:
    return {
        "http_code": http_code,
        "response_code": response_code,
        "response_msg": response_msg,
        "data": data,
    }


def success(message: str, data: Any) -> web.Response:
    """A 200 answer in the envelope, as every successful v3 call gets."""
    return json_response(200, envelope(200, "SUCCESS", message, data))


def unauthorized() -> JsonDict:
    return envelope(401, "UNAUTHORIZED", "Authorization failed.")


def not_found() -> JsonDict:
    return envelope(404, "NOT_FOUND", "Invalid endpoint. Please try again.")


def too_many() -> JsonDict:
    # Live probes saw HTTP_TOO_MANY_REQUESTS, not the documented TOO_MANY_REQUESTS.
    return envelope(429, "HTTP_TOO_MANY_REQUESTS", "Too many attempts.")


def server_error() -> JsonDict:
    return envelope(500, "INTERNAL_SERVER_ERROR", "Something is broken.")


def bad_request(errors: JsonDict | None) -> JsonDict:
    # Validation wording is undocumented; the shape matches the SDK's Model400Error.
    return envelope(400, "BAD_REQUEST", "Invalid input.", errors)


def int_arg(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def paginate(request: web.Request, items: list[JsonDict]) -> JsonDict:
    """Laravel-style paginator; limit is clamped to 15..100 as the docs state."""
    page = max(int_arg(request.query.get("page"), 1), 1)
    limit = min(max(int_arg(request.query.get("limit"), 15), 15), 100)
    total = len(items)
    last_page = math.ceil(total / limit)  # 0 for an empty list, as probes saw
    start = (page - 1) * limit
    chunk = items[start : start + limit]

    def page_url(number: int) -> str:
        # Other filters (e.g. the history's dates) stay in the links, as Laravel's appends().
        query = {**request.query, "page": str(number)}
        if "limit" in request.query:
            query["limit"] = str(limit)
        return str(request.url.with_query(query))

    return {
        "total": total,
        "per_page": limit,
        "current_page": page,
        "last_page": last_page,
        "next_page_url": page_url(page + 1) if page < last_page else None,
        "prev_page_url": page_url(page - 1) if page > 1 else None,
        "from": start + 1 if chunk else None,
        "to": start + len(chunk) if chunk else None,
        "data": chunk,
    }
