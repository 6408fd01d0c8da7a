"""Refused webhooks: bad input and failed authentication answer clearly and store nothing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, FormData
from click.testing import CliRunner

from pbxsms.core.cli import build_cli
from pbxsms.sim.clicksend import ClickSendSimulator
from tests.clicksend.samples import (
    FORM,
    INBOUND_FORM,
    INBOUND_JSON,
    JSON,
    SAMPLE_SUBACCOUNT,
    stored,
)
from tests.helpers import make_config, write_env
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]
SMS = "/webhook/clicksend/sms"
DLR = "/webhook/clicksend/dlr"


def sample(**changes: Any) -> str:
    data = json.loads(INBOUND_JSON)
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not ...})


BAD_INPUTS: list[tuple[str, str | bytes, dict[str, str], int, str | None]] = [
    ("missing from", sample(**{"from": ..., "sms": ...}), JSON, 400, "from"),
    ("blank from", sample(**{"from": " ", "sms": ""}), JSON, 400, "from"),
    ("missing to", sample(to=..., originalsenderid=...), JSON, 400, "to"),
    ("invalid sender", sample(**{"from": "<not a sender>"}), JSON, 400, "from"),
    ("too short a number", sample(to="+6112"), JSON, 400, "to"),
    ("no text at all", sample(body=..., message=...), JSON, 400, "body"),
    ("text as an object", sample(body={"text": "hi"}), JSON, 400, "body"),
    ("sender as a list", sample(**{"from": ["+61429912603"]}), JSON, 400, "from"),
    ("sender as a boolean", sample(**{"from": True}), JSON, 400, "from"),
    ("id with a line break", sample(message_id="A\r\nNats-Msg-Id: x"), JSON, 400,
     "message_id"),
    ("id too long", sample(message_id="A" * 200), JSON, 400, "message_id"),
    ("lone surrogate", sample(body="\ud800"), JSON, 400, "body"),
    ("malformed JSON", '{"from": "+61429912603",', JSON, 400, None),
    ("JSON not an object", '["+61429912603"]', JSON, 400, None),
    ("deeply nested JSON", "[" * 50_000 + "]" * 10_000, JSON, 400, None),
    ("not UTF-8 form", b"from=%2B61429912603&to=%2B61477485926&body=\xff\xfe", FORM, 400, None),
    ("percent-escaped garbage", "from=%2B61429912603&to=%2B61477485926&body=%ff", FORM, 400,
     None),
    ("unknown charset", INBOUND_FORM, {"Content-Type":
                                       "application/x-www-form-urlencoded; charset=nope"},
     400, None),
    ("plain text", "from +61429912603: hi", {"Content-Type": "text/plain"}, 415, None),
    ("XML", "<sms/>", {"Content-Type": "application/xml"}, 415, None),
    ("over 64 KiB", sample(body="x" * 70_000), JSON, 413, None),
]


@pytest.mark.parametrize(("case", "data", "headers", "status", "field"), BAD_INPUTS,
                         ids=[case[0] for case in BAD_INPUTS])
async def test_bad_input_gets_a_clear_error_and_publishes_nothing(
        start_gateway: StartGateway, case: str, data: str | bytes, headers: dict[str, str],
        status: int, field: str | None) -> None:
    gw = await start_gateway()
    async with ClientSession() as http, http.post(gw.url + SMS, data=data,
                                                  headers=headers) as resp:
        assert resp.status == status
        answer = await resp.json()
    assert answer["error"]
    assert answer.get("field") == field
    assert await stored(gw) == []


async def test_multipart_forms_are_read_and_files_are_not_text(start_gateway: StartGateway
                                                               ) -> None:
    gw = await start_gateway()
    form = FormData()
    for key, value in json.loads(INBOUND_JSON).items():
        form.add_field(key, str(value))
    async with ClientSession() as http:
        async with http.post(gw.url + SMS, data=form) as resp:
            assert resp.status == 200
        bad = FormData()
        bad.add_field("from", "+61429912603")
        bad.add_field("to", "+61477485926")
        bad.add_field("body", b"hi", filename="body.txt")
        async with http.post(gw.url + SMS, data=bad) as resp:
            assert (resp.status, (await resp.json())["field"]) == (400, "body")
    assert len(await stored(gw)) == 1


async def test_a_wrong_or_missing_subaccount_is_refused(start_gateway: StartGateway,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    gw = await start_gateway(env={"CLICKSEND_SUBACCOUNT_ID": SAMPLE_SUBACCOUNT})
    async with ClientSession() as http:
        for body in (sample(subaccount_id=745159), sample(subaccount_id=...),
                     sample(subaccount_id=None), sample(subaccount_id=[745158])):
            async with http.post(gw.url + SMS, data=body, headers=JSON) as resp:
                assert resp.status == 403
                answer = await resp.json()
                assert answer["field"] == "subaccount_id"
                assert SAMPLE_SUBACCOUNT not in answer["error"], "the caller is not told"
        # The operator is: the id received and the id expected.
        assert (f"ClickSend webhook for subaccount_id '745159', CLICKSEND_SUBACCOUNT_ID "
                f"is {SAMPLE_SUBACCOUNT}") in caplog.text
        # Before any parsing: an invalid payload from a stranger learns nothing more.
        async with http.post(gw.url + SMS, data=sample(to="x", subaccount_id=1),
                             headers=JSON) as resp:
            assert resp.status == 403
        assert await stored(gw) == []
        # The right one, as a JSON int and as a form string.
        async with http.post(gw.url + SMS, data=INBOUND_JSON, headers=JSON) as resp:
            assert resp.status == 200
        async with http.post(gw.url + SMS, data=INBOUND_FORM, headers=FORM) as resp:
            assert resp.status == 200
    assert len(await stored(gw)) == 1


async def test_a_missing_or_wrong_token_is_refused(start_gateway: StartGateway) -> None:
    gw = await start_gateway(env={"CLICKSEND_WEBHOOK_TOKEN": "long-random-secret"})
    async with ClientSession() as http:
        for query in ("", "?token=", "?token=long-random-secreT", "?Token=long-random-secret",
                      "?token=long-random-secret-and-more"):
            async with http.post(f"{gw.url}{SMS}{query}", data=INBOUND_JSON,
                                 headers=JSON) as resp:
                assert resp.status == 401
                assert (await resp.json())["field"] == "token"
            async with http.get(f"{gw.url}{SMS}{query}{'&' if query else '?'}"
                                f"{INBOUND_FORM}") as resp:
                assert resp.status == 401
            async with http.post(f"{gw.url}{DLR}{query}", data=INBOUND_JSON,
                                 headers=JSON) as resp:
                assert resp.status == 401
        assert await stored(gw) == []
        async with http.get(f"{gw.url}{SMS}?token=long-random-secret&{INBOUND_FORM}") as resp:
            assert resp.status == 200
    [(_, event, _)] = await stored(gw)
    assert "token" not in event["extra"]


async def test_refusals_and_acceptances_are_counted(start_gateway: StartGateway) -> None:
    gw = await start_gateway(env={"CLICKSEND_WEBHOOK_TOKEN": "tok"})

    async def counts() -> dict[str, float]:
        async with ClientSession() as http, http.get(gw.url + "/metrics") as resp:
            text = await resp.text()
        found = {}
        for line in text.splitlines():
            if line.startswith('pbxsms_webhooks_total{kind="inbound",provider="clicksend"'):
                result = line.split('result="')[1].split('"')[0]
                found[result] = float(line.rsplit(" ", 1)[1])
        return found

    before = await counts()
    async with ClickSendSimulator() as sim:
        for url in (gw.url + SMS, gw.url + SMS + "?token=tok", gw.url + SMS + "?token=tok"):
            await sim.push_inbound(url, "+61429912603", "+61477485926", "hi",
                                   message_id="COUNTED-1")
        await sim.push_inbound(gw.url + SMS + "?token=tok", "<bogus>", "+61477485926", "hi")
    after = await counts()
    for result in ("refused", "accepted", "duplicate", "invalid"):
        assert after.get(result, 0) - before.get(result, 0) == 1, result


def test_webhook_url_prints_the_urls_to_paste(tmp_path: Any) -> None:
    env = write_env(tmp_path / ".env", PBXSMS_PUBLIC_URL="https://sms.example.com/",
                    CLICKSEND_WEBHOOK_TOKEN="s3cr3t/+tok")
    result = CliRunner().invoke(build_cli(), ["clicksend", "webhook-url", "--env-file", str(env),
                                              "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 0, result.output
    assert "https://sms.example.com/webhook/clicksend/sms?token=s3cr3t/%2Btok" in result.output
    assert "https://sms.example.com/webhook/clicksend/dlr?token=s3cr3t/%2Btok" in result.output

    env = write_env(tmp_path / ".env", PBXSMS_API_TOKEN="x")
    result = CliRunner().invoke(build_cli(), ["clicksend", "webhook-url", "--env-file", str(env),
                                              "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert "PBXSMS_PUBLIC_URL" in result.output


@pytest.mark.parametrize(("env", "warning"), [
    ({}, "every ClickSend webhook is refused"),
    ({"CLICKSEND_SUBACCOUNT_ID": "745158"}, "a subaccount id is no secret"),
    ({"CLICKSEND_WEBHOOK_INSECURE": "true"}, "inbound webhooks are unauthenticated"),
    ({"CLICKSEND_WEBHOOK_TOKEN": "tok"}, None),
])
def test_the_start_warning_says_how_webhooks_are_checked(
        tmp_path: Any, env: dict[str, str], warning: str | None) -> None:
    config, plugins = make_config(tmp_path, env=env)
    texts = [text for p in plugins.config_warnings(config)
             if (text := str(p)).startswith("CLICKSEND_WEBHOOK_TOKEN")]
    if warning is None:
        assert texts == []
    else:
        assert len(texts) == 1 and warning in texts[0]


async def readiness(gw: Gateway) -> dict[str, Any]:
    async with ClientSession() as http, http.get(gw.url + "/readyz") as resp:
        assert resp.status == 200
        answer: dict[str, Any] = await resp.json()
        return answer


@pytest.mark.parametrize("subaccount", ["", SAMPLE_SUBACCOUNT])
async def test_without_a_token_webhooks_fail_closed(start_gateway: StartGateway,
                                                    subaccount: str) -> None:
    # Neither a token nor the explicit opt-out: a GET from any web page must not store a
    # text or forge a receipt. 503, not 4xx: ClickSend retries until the token is set.
    gw = await start_gateway(env={"CLICKSEND_WEBHOOK_INSECURE": "",
                                  "CLICKSEND_SUBACCOUNT_ID": subaccount})
    async with ClientSession() as http:
        async with http.get(f"{gw.url}{SMS}?{INBOUND_FORM}") as resp:
            assert resp.status == 503
            assert "CLICKSEND_WEBHOOK_TOKEN" in (await resp.json())["error"]
        async with http.post(gw.url + DLR, data=INBOUND_JSON, headers=JSON) as resp:
            assert resp.status == 503
    assert await stored(gw) == []
    ready = await readiness(gw)
    assert ready["status"] == "degraded"
    assert any("CLICKSEND_WEBHOOK_TOKEN" in reason for reason in ready["degraded"])


async def test_open_webhooks_only_when_the_operator_says_so(start_gateway: StartGateway) -> None:
    gw = await start_gateway(env={"CLICKSEND_WEBHOOK_INSECURE": "true"})
    async with ClientSession() as http, http.get(f"{gw.url}{SMS}?{INBOUND_FORM}") as resp:
        assert resp.status == 200
    ready = await readiness(gw)
    assert ready["status"] == "degraded"
    assert any("CLICKSEND_WEBHOOK_INSECURE" in reason for reason in ready["degraded"])

    secured = await start_gateway(env={"CLICKSEND_WEBHOOK_TOKEN": "tok"})
    assert (await readiness(secured))["status"] == "ready"
