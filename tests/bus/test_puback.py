"""PubAcks read by hand where nats-server writes them plainly: the same as json.loads."""

from __future__ import annotations

import json

import pytest
from nats.aio.msg import Msg

from pbxsms.bus.publish import Published, PublishError, _pub_ack

# As nats-server 2.15 writes them (the duplicate flag with its space), and shapes it may
# write (a domain, a flag without the space), each read both ways.
ACKS = [b'{"stream":"PBXSMS","seq":1}', b'{"stream":"PBXSMS","seq":18446744073709551615}',
        b'{"stream":"PBXSMS","seq":7,"duplicate": true}',
        b'{"stream":"PBXSMS","seq":7,"duplicate":true}',
        b'{"stream":"KV_sms_status","domain":"hub","seq":3}',
        b'{"stream":"S", "domain":"hub", "seq":3,"duplicate": true}',
        b'{"stream":"a\\"b","seq":4}', b'{"stream":"S","seq":5,"duplicate":false}',
        b'{"seq":9,"stream":"S"}']


def _message(data: bytes) -> Msg:
    return Msg(_client=None, subject="_INBOX.x.1", data=data)  # type: ignore[arg-type]


@pytest.mark.parametrize("data", ACKS)
def test_a_pub_ack_reads_as_its_json_says(data: bytes) -> None:
    ack = json.loads(data)
    assert _pub_ack(_message(data)) == Published(int(ack["seq"]),
                                                 bool(ack.get("duplicate", False)))


def test_a_refusal_is_a_publish_error() -> None:
    refused = (b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 2"}'
               b',"stream":"S","seq":0}')
    with pytest.raises(PublishError, match="wrong last sequence") as caught:
        _pub_ack(_message(refused))
    assert caught.value.err_code == 10071
