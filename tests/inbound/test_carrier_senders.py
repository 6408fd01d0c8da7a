"""Every carrier's parser keeps a short code or a sender name as sent, typed, and never reads
vanity text as a phone number (a reply would reach a stranger)."""

from __future__ import annotations

import pytest

from pbxsms.core.plugin_api import InboundMessage, Refusal
from pbxsms.plugins.bandwidth.inbound import InboundSms, parse_event
from pbxsms.plugins.telnyx.inbound import Envelope
from pbxsms.plugins.telnyx.inbound import parse_inbound as parse_telnyx
from pbxsms.plugins.twilio.inbound import parse_inbound as parse_twilio

OURS = "+14155550100"
SENDERS = [("72345", "short_code"), ("GOOGLE", "alphanumeric"),
           ("202FLOWERS", "alphanumeric"), ("+14155550199", "e164")]


def twilio(sender: str) -> InboundMessage:
    return parse_twilio({"MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "b" * 32,
                         "From": sender, "To": OURS, "Body": "hi"}, "US").message


def telnyx(sender: str) -> InboundMessage:
    payload = {"id": "b0c7e8cb-6227-4c74-9f32-c7f80c30934b", "direction": "inbound",
               "from": {"phone_number": sender}, "to": [{"phone_number": OURS}], "text": "hi"}
    return parse_telnyx(Envelope("message.received", "e1", None, payload, 1), "US").message


def bandwidth(sender: str) -> InboundMessage:
    event = parse_event({"type": "message-received", "to": OURS, "message": {
        "id": "14762070468292kw2fuqty55yp2b2", "direction": "in", "from": sender,
        "to": [OURS], "text": "hi"}}, 0, "US")
    assert isinstance(event, InboundSms)
    return event.message


@pytest.mark.parametrize("parse", [twilio, telnyx, bandwidth])
@pytest.mark.parametrize(("sender", "kind"), SENDERS)
def test_a_sender_is_kept_as_sent_and_typed(parse, sender: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    message = parse(sender)
    assert (message.from_, message.sender_type) == (sender, kind)


@pytest.mark.parametrize("parse", [twilio, telnyx, bandwidth])
def test_a_sender_that_is_neither_is_refused(parse) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Refusal):
        parse("not a sender <script>")
