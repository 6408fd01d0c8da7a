"""A gateway run's log, in text and JSON: one line per event with level, component and our
message id; no secret and no message body at INFO."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterator

import pytest

from pbxsms.core.serve.logs import JsonFormatter, LeanRecord, TextFormatter, TurnHandler
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import APP_TOKEN, HOOK_TOKEN, ORG, delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]
CUSTOMER, OURS = "+61422222222", "+61411111111"
BODY, REPLY = "my card is 4111 1111 1111 1111", "thanks, card noted"
SECRETS = ("pbx-s3cret-key", "cs-hook-s3cret", HOOK_TOKEN, APP_TOKEN, "api-s3cret")
TOML = f"""
[plugins]
enabled = ["clicksend", "email", "mobileapp"]

[[numbers]]
number = "{OURS}"
provider = "clicksend"
extension = "201"
email = ["desk@example.com"]
mobileapp_org = "{ORG}"
"""
SINK = "mail.log"  # aiosmtpd, the test's SMTP server, logs in this process too
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) +"
                       r"(pbxsms[\w.]*): .+?( \[id=[\w-]+\])?$")


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The root logger at INFO through both of our formatters."""
    text, jsonl = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(text), logging.StreamHandler(jsonl)]
    handlers[0].setFormatter(TextFormatter())
    handlers[1].setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    for handler in handlers:
        root.addHandler(handler)
    yield text, jsonl
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


async def test_a_run_logs_one_line_per_event_with_our_id_and_nothing_secret(
        start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
        captured: tuple[io.StringIO, io.StringIO]) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-s3cret-key")
        gateway = await start_gateway(toml=TOML, env=delivery_env(
            app, smtp, CLICKSEND_USERNAME="pbx-user", CLICKSEND_API_KEY="pbx-s3cret-key",
            CLICKSEND_BASE_URL=clicksend.base_url, CLICKSEND_WEBHOOK_TOKEN="cs-hook-s3cret",
            PBXSMS_API_TOKEN="api-s3cret"))
        pushed = await clicksend.push_inbound(
            f"{gateway.url}/webhook/clicksend/sms?token=cs-hook-s3cret", CUSTOMER, OURS, BODY)
        assert pushed.status == 200
        await wait_until(lambda: bool(app.pushes and smtp.mailbox.mails), message="both deliveries")
        answer = await app.reply(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN, "201",
                                 CUSTOMER, REPLY, ORG, messageid="rt-1")
        assert answer.status == 200
        await wait_until(lambda: bool(clicksend.sent_messages), message="the reply sent")
        inbound_id = await gateway.runtime.status.find_by_provider_id(
            "mobileapp", app.pushes[0].messageid)
        reply_id = json.loads(answer.body)["id"]

        def logged(message_id: str, words: str) -> bool:
            return any(message_id == line.get("msg_id") and words in line["message"]
                       for line in json_lines(captured[1]))

        # One line per event, each carrying the id of the message it is about.
        assert inbound_id is not None
        await wait_until(lambda: logged(inbound_id, "email copy"), message="email line")
        await wait_until(lambda: logged(reply_id, "accepted by clicksend"),
                         message="the outbound accepted line")
        for message_id, words in ((inbound_id, "inbound clicksend message accepted"),
                                  (inbound_id, "pushed"), (reply_id, "app reply"),
                                  (reply_id, "accepted by clicksend")):
            assert logged(message_id, words), (words, captured[1].getvalue())

    for entry in json_lines(captured[1]):
        assert set(entry) >= {"time", "level", "component", "message"}, entry
        assert entry["level"] in ("INFO", "WARNING", "ERROR"), entry
    text = "\n".join(line for line in captured[0].getvalue().splitlines()
                     if SINK not in line)
    for line in text.splitlines():
        assert TEXT_LINE.match(line), line
    assert f"[id={inbound_id}]" in text and f"[id={reply_id}]" in text
    jsonl = json.dumps(json_lines(captured[1]))
    for output in (text, jsonl):
        for forbidden in (*SECRETS, BODY, REPLY, "card"):
            assert forbidden not in output, f"{forbidden!r} logged"


def json_lines(stream: io.StringIO) -> list[dict[str, str]]:
    """The gateway's lines (not those of the test's own SMTP server)."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["component"] != SINK]


def test_the_text_format_is_the_stock_formatters() -> None:
    """TextFormatter writes by hand what this format string makes, exceptions included."""
    stock = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(id)s")
    ours = TextFormatter()
    logger = logging.getLogger("pbxsms.test")
    try:
        raise ValueError("boom")
    except ValueError:
        failure = sys.exc_info()
    mine = ""
    for n in range(500):
        extra = {"msg_id": f"id-{n}"} if n % 2 else None
        record = logger.makeRecord("pbxsms.test", (logging.INFO, logging.WARNING)[n % 2],
                                   "", 0, "text %s of %d", ("one", n),
                                   failure if n % 7 == 0 else None, extra=extra)
        record.created += n * 0.37  # across seconds, the same second more than once
        record.msecs = (record.created - int(record.created)) * 1000
        mine = ours.format(record)
        record.exc_text = None
        record.id = f" [id={extra['msg_id']}]" if extra else ""
        assert mine == stock.format(record)
    assert mine.count("[id=") == 1
    first = logger.makeRecord("pbxsms.test", logging.ERROR, "", 0, "x", (), failure)
    assert "ValueError: boom" in ours.format(first)


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="LeanRecord is 3.11's record")
def test_the_lean_record_is_the_stock_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """LeanRecord has the attributes and values of logging.LogRecord, as `setup_logging`
    configures logging (no source, thread or process lookups), and is the stock record
    for anything else."""
    for flag in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, flag, False)
    monkeypatch.setattr(logging.time, "time", lambda: 1796473248.4567)  # type: ignore[attr-defined]
    try:
        raise ValueError("boom")
    except ValueError:
        failure = sys.exc_info()
    for pathname in ("(unknown file)", "/srv/pbxsms/core/inbound/accept.py"):
        for args in ((), ("one", 2), ({"a": 1},), ({},), ([1],)):
            for level, exc_info, func, sinfo in ((logging.INFO, None, None, None),
                                                 (logging.ERROR, failure, "f", "stack")):
                call = ("pbxsms.test", level, pathname, 7, "text %s", args, exc_info, func,
                        sinfo)
                assert vars(LeanRecord(*call)) == vars(logging.LogRecord(*call))
    monkeypatch.setattr(logging, "logThreads", True)
    threaded = ("pbxsms.test", logging.INFO, "(unknown file)", 0, "x", (), None)
    assert vars(LeanRecord(*threaded)) == vars(logging.LogRecord(*threaded))


class CountedWrites(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def turns() -> Iterator[tuple[logging.Logger, CountedWrites, TurnHandler]]:
    stream = CountedWrites()
    handler = TurnHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("pbxsms.test.turns")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


async def test_the_lines_of_one_loop_turn_are_written_together_after_it(
        turns: tuple[logging.Logger, CountedWrites, TurnHandler]) -> None:
    logger, stream, _ = turns
    for n in range(3):
        logger.info("line %d", n)
    assert stream.getvalue() == ""  # held while the turn runs
    await asyncio.sleep(0)  # one turn of the loop
    assert (stream.getvalue(), stream.writes) == ("INFO line 0\nINFO line 1\nINFO line 2\n", 1)


async def test_a_warning_is_written_at_once_after_the_lines_held(
        turns: tuple[logging.Logger, CountedWrites, TurnHandler]) -> None:
    logger, stream, _ = turns
    logger.info("before")
    logger.warning("trouble")
    assert stream.getvalue() == "INFO before\nWARNING trouble\n"
    logger.error("worse")
    assert stream.getvalue().endswith("WARNING trouble\nERROR worse\n")


async def test_no_more_than_held_lines_wait_and_flush_writes_them(
        turns: tuple[logging.Logger, CountedWrites, TurnHandler]) -> None:
    logger, stream, handler = turns
    for n in range(TurnHandler.HELD + 1):
        logger.info("line %d", n)
    assert stream.getvalue().count("\n") == TurnHandler.HELD + 1
    logger.info("one more")
    assert stream.getvalue().count("\n") == TurnHandler.HELD + 1
    handler.flush()  # as logging.shutdown() does at exit
    assert stream.getvalue().endswith("INFO one more\n")


def test_without_a_running_loop_a_line_is_written_at_once(
        turns: tuple[logging.Logger, CountedWrites, TurnHandler]) -> None:
    logger, stream, _ = turns
    logger.info("no loop here")
    assert stream.getvalue() == "INFO no loop here\n"
