"""The console in a real browser (headless Chromium): what an operator does and sees."""

from __future__ import annotations

import time

from aiohttp import web
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.console.browser import Browser
from tests.console.support import (
    CUSTOMER,
    OURS_A,
    OURS_B,
    PASSWORD,
    add_user,
    console_of,
    inbound_url,
)
from tests.helpers import free_port, wait_until
from tests.support.gateway import Gateway

CONV_A = f"{OURS_A[1:]}.{CUSTOMER[1:]}"
CONV_B = f"{OURS_B[1:]}.{CUSTOMER[1:]}"


async def texted(gateway: Gateway, sim: ClickSendSimulator, ours: str, body: str,
                 count: int = 1) -> None:
    """The customer texts `ours`; returns once the console indexed it."""
    pushed = await sim.push_inbound(inbound_url(gateway), CUSTOMER, ours, body)
    assert pushed.status == 200
    index = console_of(gateway).index
    conv = f"{ours[1:]}.{CUSTOMER[1:]}"

    async def indexed() -> bool:
        thread = await index.thread(conv)
        return thread is not None and thread.count >= count

    await wait_until(indexed, message=f"message {count} of {conv} indexed")


async def test_no_session_goes_to_login_then_sign_in_and_out(
        console_gateway: Gateway, browser: Browser) -> None:
    await add_user(console_gateway, "admin")
    await browser.get(f"{console_gateway.url}/console/numbers")
    assert "/console/login" in browser.url
    await browser.type("#name", "admin")
    await browser.type("#password", "wrong password!")
    await browser.click("#sign-in")
    # The click returns before the answer's page loads: wait for its error.
    await browser.wait_for(lambda d: "Wrong user name or password" in d.find_element(
        By.ID, "login-error").text, message="the sign-in refused")
    await browser.type("#password", PASSWORD)
    await browser.click("#sign-in")
    await browser.wait_for(lambda d: d.current_url.endswith("/console/numbers"),
                           message="back on the page asked for")
    assert OURS_A in await browser.text("#numbers")
    cookie = await browser.run(browser.driver.get_cookie, "pbxsms_console")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie.get("expiry")
    await browser.click("#logout")
    await browser.wait_for(lambda d: "/console/login" in d.current_url, message="signed out")
    await browser.get(f"{console_gateway.url}/console/")
    assert "/console/login" in browser.url


async def test_inbound_appears_in_the_open_thread_within_2s(
        console_gateway: Gateway, sim: ClickSendSimulator, browser: Browser) -> None:
    await add_user(console_gateway, "admin")
    await texted(console_gateway, sim, OURS_A, "first text")
    await browser.sign_in(console_gateway.url, "admin", PASSWORD)
    await browser.get(f"{console_gateway.url}/console/t/{CONV_A}")
    await browser.wait_for(lambda d: "live" in d.find_element(By.ID, "live-state").text,
                           message="the live channel open")
    started = time.monotonic()
    pushed = await sim.push_inbound(inbound_url(console_gateway), CUSTOMER, OURS_A,
                                    "are you open on Sunday?")
    assert pushed.status == 200
    await browser.wait_for(lambda d: "are you open on Sunday?" in
                           d.find_element(By.ID, "messages").text, timeout=2.0,
                           message="the new message in the open thread")
    assert time.monotonic() - started < 2.0
    bubbles = await browser.run(browser.driver.find_elements, By.CSS_SELECTOR,
                                "#messages .msg")
    assert len(bubbles) == 2  # shown once, after the first


async def test_reply_typed_in_the_page_reaches_clicksend_from_the_texted_number(
        console_gateway: Gateway, sim: ClickSendSimulator, browser: Browser) -> None:
    await add_user(console_gateway, "admin")
    await texted(console_gateway, sim, OURS_A, "can I book for 3pm?")
    await browser.sign_in(console_gateway.url, "admin", PASSWORD)
    await browser.get(f"{console_gateway.url}/console/t/{CONV_A}")
    await browser.type("#reply", "Yes, see you at 3 😀")
    assert "UCS-2" in await browser.text("#counter")
    await browser.click("#send")
    await wait_until(lambda: any(m["body"] == "Yes, see you at 3 😀"
                                 for m in sim.sent_messages),
                     message="the reply at the ClickSend simulator")
    sent = next(m for m in sim.sent_messages if m["body"] == "Yes, see you at 3 😀")
    assert sent["from"] == OURS_A and sent["to"] == CUSTOMER
    # Its state comes back into the thread without a reload.
    await browser.wait_for(lambda d: "SENT" in d.find_element(
        By.CSS_SELECTOR, "#messages .msg.outbound .state").text.upper(),
        message="the reply shown as sent")


async def test_script_in_a_body_is_shown_as_text(
        console_gateway: Gateway, sim: ClickSendSimulator, browser: Browser) -> None:
    await add_user(console_gateway, "admin")
    await texted(console_gateway, sim, OURS_A, "<script>alert(1)</script>")
    await browser.sign_in(console_gateway.url, "admin", PASSWORD)
    for path in ("/console/", f"/console/t/{CONV_A}"):
        await browser.get(console_gateway.url + path)
        assert "<script>alert(1)</script>" in await browser.text("main")
        try:
            alert = await browser.run(lambda: browser.driver.switch_to.alert)
        except NoAlertPresentException:
            alert = None
        assert alert is None
    # ... and when it arrives live.
    await texted(console_gateway, sim, OURS_A, "<img src=x onerror=alert(2)>", count=2)
    await browser.wait_for(lambda d: "<img src=x onerror=alert(2)>" in
                           d.find_element(By.ID, "messages").text, message="live text")
    images = await browser.run(browser.driver.find_elements, By.CSS_SELECTOR, "#messages img")
    assert images == []


async def test_a_form_posted_from_another_origin_is_refused(
        console_gateway: Gateway, sim: ClickSendSimulator, browser: Browser) -> None:
    await add_user(console_gateway, "admin")
    await texted(console_gateway, sim, OURS_A, "hello")
    await browser.sign_in(console_gateway.url, "admin", PASSWORD)
    await browser.get(f"{console_gateway.url}/console/t/{CONV_A}")
    # Even with the session's own CSRF token, a form from elsewhere is refused.
    csrf = await browser.run(lambda: browser.driver.find_element(
        By.CSS_SELECTOR, "#compose input[name=csrf]").get_attribute("value"))
    target = f"{console_gateway.url}/console/t/{CONV_A}/reply"
    evil = (f'<form id="f" method="post" action="{target}">'
            f'<input name="csrf" value="{csrf}"><input name="body" value="forged">'
            '<button id="go">go</button></form>')

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=evil, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await browser.get(f"http://127.0.0.1:{port}/")
        await browser.click("#go")
        await browser.wait_for(lambda d: "/console/t/" in d.current_url, message="posted")
        await browser.wait_for(lambda d: "not sent from the console's own pages" in
                               d.find_element(By.TAG_NAME, "main").text,
                               message="the forged post refused")
    finally:
        await runner.cleanup()
    assert not any(m["body"] == "forged" for m in sim.sent_messages)
    thread = await console_of(console_gateway).index.thread(CONV_A)
    assert thread is not None and thread.count == 1


async def test_a_tenant_user_cannot_open_another_tenants_thread(
        console_gateway: Gateway, sim: ClickSendSimulator, browser: Browser) -> None:
    await add_user(console_gateway, "alice", domain="a.example.com")
    await texted(console_gateway, sim, OURS_B, "tenant b's secret")
    await texted(console_gateway, sim, OURS_A, "tenant a's text")
    await browser.sign_in(console_gateway.url, "alice", PASSWORD)
    assert "tenant a's text" in await browser.text("#threads")
    assert "tenant b's secret" not in await browser.text("main")
    await browser.get(f"{console_gateway.url}/console/t/{CONV_B}")
    assert "Not found" in await browser.text("main")
    assert "tenant b's secret" not in await browser.text("body")
    await browser.get(f"{console_gateway.url}/console/numbers")
    assert OURS_A in await browser.text("#numbers")
    assert OURS_B not in await browser.text("main")
