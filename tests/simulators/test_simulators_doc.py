"""docs/simulators.md lists exactly the controls each simulator lists at `GET /_sim/`, each
with a curl example, so the page cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from pbxsms.sim.bandwidth import BandwidthSimulator
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.server import SimulatedService
from pbxsms.sim.telnyx import TelnyxSimulator
from pbxsms.sim.twilio import TwilioSimulator

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulators.md"
CONTROL_HEADING = re.compile(r"^### `(GET|POST) (/_sim/\S*)`$", re.MULTILINE)


def _documented(section: str) -> dict[tuple[str, str], str]:
    """(method, path) → the text under its heading, for one `## ...` section of the page."""
    text = DOC.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end >= 0 else len(text)]
    headings = list(CONTROL_HEADING.finditer(body))
    return {
        (m.group(1), m.group(2)): body[m.end() : nxt.start() if nxt else len(body)]
        for m, nxt in zip(headings, [*headings[1:], None], strict=True)
    }


async def _listed(sim: SimulatedService) -> set[tuple[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base_url}/_sim/") as resp:
        assert resp.status == 200
        controls = (await resp.json())["controls"]
    assert all(c["summary"] for c in controls), controls  # each handler says what it does
    return {(c["method"], c["path"]) for c in controls}


async def _check(sim: SimulatedService, section: str, port: int) -> None:
    documented = _documented(section)
    assert set(documented) == await _listed(sim)
    for (method, path), text in documented.items():
        # The example calls this control, with its method, on the page's port for this simulator.
        example = re.search(rf"curl -s (.*)127\.0\.0\.1:{port}{re.escape(path)}", text)
        assert example is not None, (method, path)
        posts = "-X POST" in example.group(1) or " -d " in text
        assert posts == (method == "POST"), (method, path)


async def test_the_clicksend_controls_documented_are_those_listed() -> None:
    async with ClickSendSimulator() as sim:
        await _check(sim, "ClickSend simulator", 8070)


async def test_the_mobileapp_controls_documented_are_those_listed() -> None:
    async with MobileAppSimulator("token") as sim:
        await _check(sim, "Mobile-app simulator", 8090)


async def test_the_twilio_controls_documented_are_those_listed() -> None:
    async with TwilioSimulator("token") as sim:
        await _check(sim, "Twilio simulator", 8071)
async def test_the_telnyx_controls_documented_are_those_listed() -> None:
    async with TelnyxSimulator() as sim:
        await _check(sim, "Telnyx simulator", 8091)


async def test_the_bandwidth_controls_documented_are_those_listed() -> None:
    async with BandwidthSimulator() as sim:
        await _check(sim, "Bandwidth simulator", 8092)
