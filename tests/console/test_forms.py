"""The console's forms over HTTP: sign-in limits, CSRF, numbers, problems, the command."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession, CookieJar

from pbxsms.core.messages.replay import resend
from pbxsms.core.model.events import OutboundRequest, State
from pbxsms.core.outbound.api import queue_outbound
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.clicksend.api import HISTORY_PATH
from tests.console.support import (
    CUSTOMER,
    OURS_A,
    PASSWORD,
    TOML,
    add_user,
    console_of,
    env,
)
from tests.helpers import wait_until
from tests.support.gateway import Gateway


def jar() -> CookieJar:
    return CookieJar(unsafe=True)  # the gateway is reached by IP address


async def sign_in(http: ClientSession, gateway: Gateway, name: str = "admin") -> str:
    """Signs in; the CSRF token of the session."""
    async with http.post(f"{gateway.url}/console/login",
                         data={"name": name, "password": PASSWORD},
                         headers={"Origin": gateway.url}) as response:
        assert str(response.url).endswith("/console/")
    async with http.get(f"{gateway.url}/console/numbers") as response:
        match = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert match
    return match.group(1)


async def test_sign_in_is_rate_limited(console_gateway: Gateway) -> None:
    await add_user(console_gateway, "admin")
    async with ClientSession(cookie_jar=jar()) as http:
        statuses = []
        for _ in range(6):
            async with http.post(f"{console_gateway.url}/console/login",
                                 data={"name": "admin", "password": "not it at all"},
                                 headers={"Origin": console_gateway.url}) as response:
                statuses.append(response.status)
        assert statuses == [401] * 5 + [429]
        # Even the right password waits now.
        async with http.post(f"{console_gateway.url}/console/login",
                             data={"name": "admin", "password": PASSWORD},
                             headers={"Origin": console_gateway.url}) as response:
            assert response.status == 429
            assert "Too many failed sign-ins" in await response.text()


async def test_cookie_is_signed_httponly_strict_and_expires(console_gateway: Gateway) -> None:
    await add_user(console_gateway, "admin")
    async with ClientSession(cookie_jar=jar()) as http, \
            http.post(f"{console_gateway.url}/console/login",
                      data={"name": "admin", "password": PASSWORD},
                      headers={"Origin": console_gateway.url},
                      allow_redirects=False) as response:
        header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Max-Age=" in header
    value = header.split(";")[0].split("=", 1)[1]
    forged = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    async with ClientSession(cookies={"pbxsms_console": forged}) as http, \
            http.get(f"{console_gateway.url}/console/", allow_redirects=False) as response:
        assert response.status == 303  # a tampered cookie is no session


async def test_a_form_without_the_csrf_token_is_refused(console_gateway: Gateway,
                                                        sim: ClickSendSimulator) -> None:
    await add_user(console_gateway, "admin")
    async with ClientSession(cookie_jar=jar()) as http:
        await sign_in(http, console_gateway)
        async with http.post(f"{console_gateway.url}/console/numbers",
                             data={"number": "+61481070009", "provider": "clicksend"},
                             headers={"Origin": console_gateway.url}) as response:
            assert response.status == 403
    assert console_gateway.runtime.numbers.get("+61481070009") is None


async def test_numbers_form_validates_as_the_api_does(console_gateway: Gateway) -> None:
    await add_user(console_gateway, "admin")
    headers = {"Origin": console_gateway.url}
    async with ClientSession(cookie_jar=jar()) as http:
        csrf = await sign_in(http, console_gateway)
        form = {"csrf": csrf, "number": "+61481070009", "provider": "clicksend",
                "extension": "1 0 1", "enabled": "on"}
        async with http.post(f"{console_gateway.url}/console/numbers", data=form,
                             headers=headers) as response:
            assert response.status == 422
            page = await response.text()
        async with http.put(f"{console_gateway.url}/api/v1/numbers/%2B61481070009",
                            json={"provider": "clicksend", "extension": "1 0 1"},
                            headers={"Authorization": "Bearer api-t0ken"}) as response:
            api = await response.json()
        assert api["field"] == "extension"
        assert f'id="error-extension">{api["error"]}<' in page.replace("&#39;", "'")
        form["extension"] = "105"
        async with http.post(f"{console_gateway.url}/console/numbers", data=form,
                             headers=headers) as response:
            assert response.status == 200 and "Saved +61481070009" in await response.text()
        record = console_gateway.runtime.numbers.get("+61481070009")
        assert record is not None and record.extension == "105" and record.enabled
        async with http.post(f"{console_gateway.url}/console/numbers/%2B61481070009/toggle",
                             data={"csrf": csrf}, headers=headers) as response:
            assert response.status == 200
        record = console_gateway.runtime.numbers.get("+61481070009")
        assert record is not None and not record.enabled


async def test_a_failed_send_is_sent_again_once(console_gateway: Gateway,
                                                sim: ClickSendSimulator) -> None:
    await add_user(console_gateway, "admin")
    sim.force_status(CUSTOMER, "INVALID_RECIPIENT")
    failed = await queue_outbound(console_gateway.runtime, OutboundRequest.model_validate(
        {"from": OURS_A, "to": CUSTOMER, "body": "see you at 3"}))
    message_id = failed.request.id

    async def failed_and_indexed() -> bool:
        record = await console_gateway.runtime.status.get(message_id)
        entry = await console_of(console_gateway).index.entry(message_id)
        return record is not None and record.state == State.FAILED and entry is not None

    await wait_until(failed_and_indexed, message="the send failed and was indexed")
    sim.force_status(CUSTOMER, None)
    async with ClientSession(cookie_jar=jar()) as http:
        csrf = await sign_in(http, console_gateway)
        async with http.get(f"{console_gateway.url}/console/problems") as response:
            page = await response.text()
        assert "INVALID_RECIPIENT" in page and "Send again" in page
        # Two presses (a double click, two tabs) store one new message.
        notices = []
        for _ in range(2):
            async with http.post(f"{console_gateway.url}/console/problems/resend",
                                 data={"csrf": csrf, "id": message_id},
                                 headers={"Origin": console_gateway.url}) as response:
                assert response.status == 200
                notices.append(re.findall(r'id="notice">([^<]+)<', await response.text()))
        assert notices == [["Sent again: the new message is queued."],
                           ["This message was already sent again."]]
        await wait_until(lambda: any(m["body"] == "see you at 3" for m in sim.sent_messages),
                         message="the resend at ClickSend")
        async with http.get(f"{console_gateway.url}/console/problems") as response:
            assert "sent again" in await response.text()
    # The CLI's and the API's resend of it find the console's: one resend chain.
    again = await resend(console_gateway.runtime, message_id)
    assert again.duplicate
    assert sum(m["body"] == "see you at 3" for m in sim.sent_messages) == 1


async def test_a_send_that_may_have_arrived_is_not_sent_again(
        start_gateway: Callable[..., Awaitable[Gateway]], sim: ClickSendSimulator) -> None:
    # ClickSend stored the send but answered 500, and its history could not tell: `unknown`.
    gateway = await start_gateway(
        toml=f'{TOML}\n[clicksend]\non_ambiguous = "unknown"\nreconcile_delay = "0s"\n',
        env=env(sim.base_url))
    await add_user(gateway, "admin")
    sim.fail_next("store_then_500")
    sim.fail_next("500", endpoint=HISTORY_PATH)
    queued = await queue_outbound(gateway.runtime, OutboundRequest.model_validate(
        {"from": OURS_A, "to": CUSTOMER, "body": "see you at 4"}))
    message_id = queued.request.id

    async def unknown_and_indexed() -> bool:
        record = await gateway.runtime.status.get(message_id)
        entry = await console_of(gateway).index.entry(message_id)
        return record is not None and record.state == State.UNKNOWN and entry is not None

    await wait_until(unknown_and_indexed, message="the send unknown and indexed")
    async with ClientSession(cookie_jar=jar()) as http:
        csrf = await sign_in(http, gateway)
        async with http.get(f"{gateway.url}/console/problems") as response:
            page = await response.text()
        assert "may have reached the recipient" in page and "Send again" not in page
        async with http.post(f"{gateway.url}/console/problems/resend",
                             data={"csrf": csrf, "id": message_id},
                             headers={"Origin": gateway.url}) as response:
            notice = re.findall(r'id="notice">([^<]+)<', await response.text())
    assert notice and notice[0].startswith("Refused: ") and "may have reached" in notice[0]
    assert len(sim.sent_messages) == 1


async def test_console_user_add_stores_the_user_on_the_bus(console_gateway: Gateway) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from pbxsms.core.cli import main; main()",
        "console", "user", "add", "Bob", "--domain", "A.example.com", "--password-stdin",
        env={"NATS_URL": console_gateway.runtime.config.core.nats_url or "",
             "PBXSMS_ENV_FILE": "/dev/null", "PATH": "/usr/bin:/bin"},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate(f"{PASSWORD}\n".encode())
    assert process.returncode == 0, err.decode()
    assert "console user bob saved (tenant a.example.com)" in out.decode()
    assert PASSWORD not in out.decode() + err.decode()
    user = await console_of(console_gateway).users.get("bob")
    assert user is not None and user.domain == "a.example.com" and user.check(PASSWORD)
    assert PASSWORD not in user.model_dump_json()


async def test_an_unroutable_text_is_delivered_again_once_its_number_exists(
        console_gateway: Gateway, sim: ClickSendSimulator) -> None:
    from nats.errors import TimeoutError as NatsTimeout

    from pbxsms.core.model.events import InboundMessage
    from tests.console.support import inbound_url

    await add_user(console_gateway, "admin")
    stray = "+61481070003"
    pushed = await sim.push_inbound(inbound_url(console_gateway), CUSTOMER, stray, "hello?")
    assert pushed.status == 200
    index = console_of(console_gateway).index
    conv = f"{stray[1:]}.{CUSTOMER[1:]}"

    async def indexed() -> bool:
        return await index.thread(conv) is not None

    await wait_until(indexed, message="the unroutable text indexed")
    thread = await index.thread(conv)
    assert thread is not None
    message_id = thread.last_id
    headers = {"Origin": console_gateway.url}
    async with ClientSession(cookie_jar=jar()) as http:
        csrf = await sign_in(http, console_gateway)
        async with http.post(f"{console_gateway.url}/console/problems/redeliver",
                             data={"csrf": csrf, "id": message_id}, headers=headers) as r:
            assert "Still no route" in await r.text()
        async with http.post(f"{console_gateway.url}/console/numbers", headers=headers,
                             data={"csrf": csrf, "number": stray, "provider": "clicksend",
                                   "extension": "103", "enabled": "on"}) as r:
            assert r.status == 200
        for _ in range(2):
            async with http.post(f"{console_gateway.url}/console/problems/redeliver",
                                 data={"csrf": csrf, "id": message_id},
                                 headers=headers) as r:
                assert "Delivered again" in await r.text()
    js = console_gateway.runtime.js
    sub = await js.subscribe("sms.inbound.clicksend", ordered_consumer=True)
    stored = []
    while True:
        try:
            msg = await sub.next_msg(timeout=1.0)
        except NatsTimeout:
            break
        stored.append(InboundMessage.model_validate_json(msg.data))
        if msg.metadata.num_pending == 0:
            break
    await sub.unsubscribe()
    copies = [m for m in stored if m.id == message_id]
    assert [m.route is not None for m in copies] == [False, True]
    assert copies[1].route is not None and copies[1].route.extension == "103"


async def test_a_failed_resend_is_offered_again_and_its_original_is_not(
        console_gateway: Gateway, sim: ClickSendSimulator) -> None:
    await add_user(console_gateway, "admin")
    runtime, index = console_gateway.runtime, console_of(console_gateway).index
    sim.force_status(CUSTOMER, "INVALID_RECIPIENT")
    failed = await queue_outbound(runtime, OutboundRequest.model_validate(
        {"from": OURS_A, "to": CUSTOMER, "body": "see you at 5"}))
    original = failed.request.id

    async def failed_and_indexed(message_id: str) -> bool:
        record = await runtime.status.get(message_id)
        return (record is not None and record.state == State.FAILED
                and await index.entry(message_id) is not None)

    await wait_until(lambda: failed_and_indexed(original), message="the send failed")
    first = await resend(runtime, original)  # fails too: the recipient is still refused
    await wait_until(lambda: failed_and_indexed(first.id), message="the resend failed")

    def offers(page: str) -> dict[str, bool]:
        """Per row of the page (by message id): whether it offers "Send again"."""
        rows = page.split("<li>")[1:]
        return {match.group(1): "Send again" in row for row in rows
                if (match := re.search(r"#m-([0-9a-f-]+)", row))}

    sim.force_status(CUSTOMER, None)
    async with ClientSession(cookie_jar=jar()) as http:
        csrf = await sign_in(http, console_gateway)
        async with http.get(f"{console_gateway.url}/console/problems") as response:
            page = await response.text()
        assert offers(page) == {original: False, first.id: True}
        # The resend's row links to the send it carries again.
        (resent_row,) = [row for row in page.split("<li>") if f"#m-{first.id}" in row]
        assert f'#m-{original}">an earlier failed one</a> again' in resent_row
        async with http.post(f"{console_gateway.url}/console/problems/resend",
                             data={"csrf": csrf, "id": first.id},
                             headers={"Origin": console_gateway.url}) as response:
            assert re.findall(r'id="notice">([^<]+)<', await response.text()) == [
                "Sent again: the new message is queued."]
        await wait_until(lambda: any(m["body"] == "see you at 5" for m in sim.sent_messages),
                         message="the second resend at ClickSend")

        async def neither_offered() -> bool:
            async with http.get(f"{console_gateway.url}/console/problems") as response:
                return offers(await response.text()) == {original: False, first.id: False}

        await wait_until(neither_offered, message="both rows sent again")
    # The original's resend is that one too: one send reached ClickSend.
    assert (await resend(runtime, original)).duplicate
    assert sum(m["body"] == "see you at 5" for m in sim.sent_messages) == 1
