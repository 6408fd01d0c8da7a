"""Pages and fragments from the Jinja2 templates (autoescaped), and the static files."""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from pbxsms.plugins.console.auth import SECURITY_HEADERS

_STATE_WORDS = {
    "queued": "queued", "sending": "sending", "accepted": "sent", "sent": "sent",
    "delivered": "delivered", "retrying": "retrying", "failed": "failed",
    "unknown": "unknown", "unroutable": "not routed", "skipped": "skipped",
    "received": "received",
}


def state_word(state: str) -> str:
    """A state as the pages say it: the carrier accepting a message is `sent`."""
    return _STATE_WORDS.get(state, state)


def plain_reason(reason: str | None) -> str:
    """A reason in plain words: the first sentence a person needs, without codes' noise."""
    if not reason:
        return ""
    text = reason.strip()
    return text[:1].upper() + text[1:]


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def short_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%d %b %H:%M")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pbxsms.plugins.console", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)
    env.filters.update(state_word=state_word, plain_reason=plain_reason, ago=ago,
                       short_time=short_time)
    return env


ENV = _environment()


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


def fragment(template: str, **context: Any) -> Markup:
    return Markup(render(template, **context))  # noqa: S704 (rendered with autoescape)


def page(template: str, status: int = 200, **context: Any) -> web.Response:
    response = web.Response(text=render(template, static=STATIC_URLS, **context),
                            status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


def _load_static() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("pbxsms.plugins.console") / "static"
    found = {}
    for item in folder.iterdir():
        if item.is_file():
            kind = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
            found[item.name] = (item.read_bytes(), kind)
    return found


STATIC = _load_static()
# Each file's URL names its content, so browsers may keep it for a year.
STATIC_URLS = {name: f"/console/static/{name}?v={hashlib.sha256(data).hexdigest()[:10]}"
               for name, (data, _) in STATIC.items()}


async def static_file(request: web.Request) -> web.StreamResponse:
    found = STATIC.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    data, kind = found
    response = web.Response(body=data, content_type=kind)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
