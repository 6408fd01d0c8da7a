"""The fake FreeSWITCH's password and the gateway settings that point at it, for every
feature whose tests include the SIP phones channel."""

from __future__ import annotations

from pbxsms.sim.freeswitch import FakeFreeSwitch

ESL_PASSWORD = "esl-Secret-1"


def esl_env(fake: FakeFreeSwitch, password: str = ESL_PASSWORD) -> dict[str, str]:
    """`FREESWITCH_ESL_*` for a gateway that talks to `fake`."""
    return {"FREESWITCH_ESL_HOST": "127.0.0.1", "FREESWITCH_ESL_PORT": str(fake.port),
            "FREESWITCH_ESL_PASSWORD": password}
