"""`pbxsms freeswitch simulator`, run as an operator would for a demo: our client logs in,
finds the registered extension, its text is printed, a typed line is a phone's text."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pbxsms.plugins.freeswitch.esl import EslClient, Event
from pbxsms.plugins.freeswitch.link import EVENTS
from tests.helpers import free_port, wait_until

PBXSMS = str(Path(sys.executable).parent / "pbxsms")


async def test_the_simulator_command_serves_the_event_socket(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        PBXSMS, "freeswitch", "simulator", "--port", str(port), "--password", "demo-pass",
        "--register", "201@pbx.example.com", "--env-file", str(tmp_path / "none.env"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stdin is not None
    events: list[Event] = []
    client = EslClient("127.0.0.1", port, "demo-pass", EVENTS, events.append,
                       backoff_initial=0.1)
    try:
        first = await asyncio.wait_for(process.stdout.readline(), 20)
        assert b"registered: 201@pbx.example.com" in first
        client.start()
        assert await client.wait_connected(10)
        assert (await client.api("sofia_contact internal/201@pbx.example.com")).startswith(
            "sofia/internal/sip:201@")
        headers = [("Event-Subclass", "SMS::SEND_MESSAGE"), ("proto", "sip"),
                   ("dest_proto", "sip"), ("from", "+61422222222"),
                   ("from_user", "+61422222222"), ("from_host", "pbx.example.com"),
                   ("from_full", "sip:+61422222222@pbx.example.com"),
                   ("to", "201@pbx.example.com"), ("to_user", "201"),
                   ("to_host", "pbx.example.com"), ("sip_profile", "internal"),
                   ("type", "text/plain"), ("blocking", "true")]
        await client.sendevent("CUSTOM", headers, "Hi | there")
        shown = await asyncio.wait_for(process.stdout.readline(), 10)
        assert shown == (b"SIP MESSAGE to 201@pbx.example.com from +61422222222: "
                         b"'Hi | there'\n")
        process.stdin.write(b"201@pbx.example.com +61422222222 On my way\n")
        await process.stdin.drain()
        await wait_until(lambda: any(e.name == "MESSAGE" for e in events), 10, "the event")
        (message,) = [e for e in events if e.name == "MESSAGE"]
        assert (message.get("from_user"), message.get("to_user"), message.body) == (
            "201", "+61422222222", "On my way")
    finally:
        await client.close()
        process.terminate()
        await process.wait()
