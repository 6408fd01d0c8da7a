"""The control plumbing every simulator gets from `SimulatedService`: routes listed at
`GET /_sim/` with their summaries, refusals answered 400, unknown controls 404."""

from __future__ import annotations

from aiohttp import ClientSession, web

from pbxsms.sim.server import (
    ControlError,
    ControlHandler,
    FaultPlan,
    SimulatedService,
    control_json,
    ok,
)


class Echo(SimulatedService):
    """A simulator with one control, as a carrier's simulator would declare it."""

    def create_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.control)
        return app

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {("POST", "/_sim/echo"): self._echo}

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        """Answer the `word` it was given.

        Only the first line is the summary."""
        word = (await control_json(request)).get("word")
        if not isinstance(word, str):
            raise ControlError("expected {'word': str}")
        return ok(word=word)


async def test_controls_are_listed_parsed_and_refused_in_one_way() -> None:
    async with Echo() as sim, ClientSession() as http:
        async with http.get(f"{sim.base_url}/_sim/") as resp:
            assert resp.status == 200
            assert (await resp.json())["controls"] == [
                {"method": "GET", "path": "/_sim/", "summary": "List the controls of this "
                 "simulator."},
                {"method": "POST", "path": "/_sim/echo", "summary": "Answer the `word` it was "
                 "given."},
            ]
        async with http.post(f"{sim.base_url}/_sim/echo", json={"word": "hi"}) as resp:
            assert (resp.status, await resp.json()) == (200, {"ok": True, "word": "hi"})
        async with http.post(f"{sim.base_url}/_sim/echo", json={"word": 1}) as resp:
            assert (resp.status, await resp.json()) == (400, {"error": "expected {'word': str}"})
        async with http.post(f"{sim.base_url}/_sim/echo", data=b"[") as resp:
            assert (resp.status, await resp.json()) == (400, {"error": "expected a JSON object"})
        async with http.get(f"{sim.base_url}/_sim/echo") as resp:
            assert resp.status == 404


def test_a_fault_plan_takes_the_first_fault_that_applies_then_the_standing_one() -> None:
    plan: FaultPlan[str] = FaultPlan()
    plan.queued.extend(["a:1", "b:1", "a:2"])
    plan.always = "standing"
    assert plan.take(lambda f: f.startswith("b")) == "b:1"
    assert [plan.take(), plan.take(), plan.take()] == ["a:1", "a:2", "standing"]
    plan.clear()
    assert (plan.queued, plan.take()) == ([], None)
