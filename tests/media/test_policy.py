"""Which links of an inbound ClickSend message are media, and the policy the core asks the
provider plugin for (the `media_policy` hook)."""

from __future__ import annotations

from pathlib import Path

from pbxsms.core.model.events import InboundMessage
from pbxsms.plugins.clicksend.mms import attach_media
from pbxsms.plugins.clicksend.settings import ClickSendSettings
from tests.helpers import make_config

S3 = "https://clicksend-api-downloads.s3.ap-southeast-2.amazonaws.com/_private/a.jpg?X=1"


def test_hook_media_policy(tmp_path: Path) -> None:
    config, plugins = make_config(tmp_path, env={
        "CLICKSEND_MEDIA_HOSTS": '["media.example.com", ".cdn.example.net"]',
        "CLICKSEND_MEDIA_SIMULATOR": "http://127.0.0.1:8070"})
    policy = plugins.media_policy(config, "clicksend")
    assert policy is not None
    assert policy.host_allowed("media.example.com")
    assert policy.host_allowed("a.cdn.example.net")
    assert not policy.host_allowed("evil.example.com")
    assert policy.simulator == "http://127.0.0.1:8070"
    assert plugins.media_policy(config, "telnyx") is None  # nobody answers for it


def message(body: str) -> InboundMessage:
    return InboundMessage(provider="clicksend", to="+61411111111", body=body,
                          **{"from": "+61422222222"})


def test_only_links_on_the_allow_list_become_media() -> None:
    settings = ClickSendSettings()
    sms = message("see https://example.com/menu.jpg for the menu")
    attach_media(sms, {}, settings)
    assert sms.media_urls == [] and sms.body == "see https://example.com/menu.jpg for the menu"

    mms = message(f"Caption here\n{S3}")
    attach_media(mms, {}, settings)
    assert mms.media_urls == [S3]
    assert mms.body == "Caption here"
    assert mms.extra["text_with_links"] == f"Caption here\n{S3}"


def test_explicit_media_fields_are_media_whatever_their_host() -> None:
    mms = message("")
    attach_media(mms, {"media_file": "https://10.0.0.1/a.jpg",
                       "media": ["https://x.example/b.gif", "https://x.example/s.smil"]},
                 ClickSendSettings())
    assert mms.media_urls == ["https://10.0.0.1/a.jpg", "https://x.example/b.gif"]
