"""ClickSend MMS: `POST /v3/uploads?convert=mms`, `POST /v3/mms/send`, and the media files
ClickSend hosts (its signed S3 links, here under `/_private/` on the simulator's origin).

Shapes follow the v3 OpenAPI (the `send-mms` and `mms` schemas): one `media_file` URL per
request for every message in it, a required `subject` of at most 20 characters, per-message
statuses. An upload's URL lives 10 minutes ("All files will expire 10 minutes after being
uploaded"); a send naming an expired one gets `INVALID_MEDIA_FILE`. The upload answer's
`data._url` is what third-party clients read (undocumented schema).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import phonenumbers
from aiohttp import web
from yarl import URL

from pbxsms.sim.clicksend.api import bad_request, success
from pbxsms.sim.clicksend.state import Account, ClickSendState, RecordedRequest
from pbxsms.sim.server import JsonDict, json_response

MMS_SEND_PATH = "/v3/mms/send"
UPLOADS_PATH = "/v3/uploads"
MEDIA_PREFIX = "/_private/"
UPLOAD_LIFETIME = 600.0
SUBJECT_LIMIT = 20
MMS_PRICE = Decimal("0.2420")
# ClickSend sends jpg and gif as they are; other pictures must be converted by an upload.
SENDABLE = {"jpg": "image/jpeg", "gif": "image/gif"}
_EXTENSIONS = {"image/jpeg": "jpg", "image/gif": "gif", "image/png": "png",
               "image/bmp": "bmp", "text/html": "html"}


@dataclass
class MediaFile:
    """A file on the simulated media host, with how it misbehaves when asked."""

    content_type: str
    data: bytes
    expires: float | None = None  # uploads: 10 minutes
    redirect_to: str | None = None
    chunked: bool = False
    delay: float = 0.0  # a slow media host
    fetches: list[float] = field(default_factory=list)


class Mms:
    """The MMS endpoints and the media host of one simulator."""

    def __init__(self, state: ClickSendState, base_url: Any) -> None:
        self.state = state
        self._base_url = base_url  # a callable: the simulator knows its URL once started
        self.files: dict[str, MediaFile] = {}
        self.uploads: list[str] = []

    def reset(self) -> None:
        self.uploads.clear()

    # ---- the media host ----------------------------------------------------------------

    def add_media(self, data: bytes, content_type: str = "image/jpeg", *,
                  redirect_to: str | None = None, chunked: bool = False,
                  expires: float | None = None, delay: float = 0.0) -> str:
        """Host `data`; its URL, shaped like ClickSend's signed download links."""
        ext = _EXTENSIONS.get(content_type, "bin")
        name = f"{uuid.uuid4()}.{ext}"
        self.files[name] = MediaFile(content_type, data, expires, redirect_to, chunked,
                                     delay)
        signature = uuid.uuid4().hex
        return f"{self._base_url()}{MEDIA_PREFIX}{name}?X-Amz-Expires=604800" \
               f"&X-Amz-Signature={signature}"

    def file_of(self, url: str) -> MediaFile | None:
        try:
            parsed = URL(url)
        except ValueError:
            return None
        if not parsed.path.startswith(MEDIA_PREFIX):
            return None
        return self.files.get(parsed.path[len(MEDIA_PREFIX):])

    async def serve_media(self, request: web.Request) -> web.StreamResponse:
        """`GET /_private/<name>`: the file, as S3 answers (no ClickSend auth)."""
        found = self.files.get(request.path[len(MEDIA_PREFIX):])
        if found is None or (found.expires is not None and time.time() > found.expires):
            return web.Response(status=403, content_type="application/xml",
                                text="<Error><Code>AccessDenied</Code></Error>")
        found.fetches.append(time.time())
        if found.delay:
            await asyncio.sleep(found.delay)
        if found.redirect_to:
            raise web.HTTPFound(found.redirect_to)
        if not found.chunked:
            return web.Response(body=found.data, content_type=found.content_type)
        response = web.StreamResponse(headers={"Content-Type": found.content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(found.data), 4096):
            await response.write(found.data[start:start + 4096])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    # ---- /v3/uploads -------------------------------------------------------------------

    async def upload(self, request: web.Request, account: Account,
                     rec: RecordedRequest) -> web.Response:
        """`POST /v3/uploads?convert=mms` with `{"content": "<base64>"}`."""
        if request.query.get("convert") not in ("fax", "mms", "csv", "post", "postcard"):
            return json_response(400, bad_request({"convert": "The convert field is "
                                                              "required."}))
        body = rec.body
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            return json_response(400, bad_request({"content": "The content field is "
                                                              "required."}))
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return json_response(400, bad_request({"content": "The content must be "
                                                              "base64."}))
        kind = _picture(data)
        if kind is None:
            return json_response(400, bad_request({"content": "Unsupported file type."}))
        # Converted for MMS: served as a jpg (a gif stays a gif).
        served = "image/gif" if kind == "image/gif" else "image/jpeg"
        url = self.add_media(data, served, expires=time.time() + UPLOAD_LIFETIME)
        self.uploads.append(url)
        return success("Upload successful.", {"_url": url, "url": url,
                                              "date_added": int(time.time())})

    # ---- /v3/mms/send ------------------------------------------------------------------

    async def send(self, request: web.Request, account: Account,
                   rec: RecordedRequest) -> web.Response:
        """`POST /v3/mms/send`: `media_file` and `messages[]`, each with a `subject`."""
        body = rec.body
        if not isinstance(body, dict):
            return json_response(400, bad_request(None))
        media_file, messages = body.get("media_file"), body.get("messages")
        if not isinstance(media_file, str) or not media_file:
            return json_response(400, bad_request({"media_file": "The media file field is "
                                                                 "required."}))
        if not isinstance(messages, list) or not messages:
            return json_response(400, bad_request({"messages": "The messages field is "
                                                               "required."}))
        media_ok = self._media_ok(media_file)
        now = int(time.time())
        results = [self._one(m, account, media_file, media_ok, now) for m in messages]
        rec.messages = results
        queued = [r for r in results if r["status"] == "SUCCESS"]
        self.state.sent_messages.extend(queued)
        total = sum((Decimal(r["message_price"]) for r in queued), Decimal(0))
        return success("Messages queued for delivery.", {
            "total_price": float(total), "total_count": len(results),
            "queued_count": len(queued), "messages": results})

    def _media_ok(self, url: str) -> bool:
        hosted = self.file_of(url)
        if hosted is not None:
            expired = hosted.expires is not None and time.time() > hosted.expires
            return not expired and hosted.content_type in SENDABLE.values()
        # Elsewhere: ClickSend fetches it; only the extension rule is checked here.
        return URL(url).path.lower().rsplit(".", 1)[-1] in SENDABLE

    def _one(self, msg: Any, account: Account, media_file: str, media_ok: bool,
             now: int) -> JsonDict:
        message_id = str(uuid.uuid4()).upper()
        if not isinstance(msg, dict):
            msg = {}
        subject = msg.get("subject")
        base: JsonDict = {
            "to": str(msg.get("to") or ""), "from": str(msg.get("from") or ""),
            "subject": "" if subject is None else str(subject)[:SUBJECT_LIMIT],
            "body": str(msg.get("body") or ""), "message_id": message_id,
            "custom_string": "" if msg.get("custom_string") is None
            else str(msg["custom_string"]),
            "schedule": "", "_media_file_url": media_file, "list_id": None,
            "contact_id": None,
        }
        if not isinstance(subject, str) or not subject.strip():
            return {**base, "status": "SUBJECT_REQUIRED"}
        if not base["body"]:
            return {**base, "status": "EMPTY_MESSAGE"}
        if not media_ok:
            return {**base, "status": "INVALID_MEDIA_FILE"}
        to = _e164(base["to"], self.state.settings.default_country)
        if to is None:
            return {**base, "status": "INVALID_RECIPIENT"}
        return {**base, "to": to, "date": now, "direction": "out", "message_parts": 1,
                "message_price": f"{MMS_PRICE:.4f}", "country": _region(to),
                "user_id": account.user_id, "subaccount_id": account.subaccount_id,
                "message_type": "mms", "status": "SUCCESS"}


def _picture(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"BM"):
        return "image/bmp"
    return None


def _e164(raw: str, country: str) -> str | None:
    try:
        parsed = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _region(number: str) -> str | None:
    return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
