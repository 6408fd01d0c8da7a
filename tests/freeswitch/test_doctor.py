"""`pbxsms doctor` for FreeSWITCH against the fake: a wrong password is named with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxsms.core.config.problems import Problem
from pbxsms.core.config.settings import Config
from pbxsms.core.health.doctor import Finding
from pbxsms.core.plugins import Plugins
from pbxsms.sim.freeswitch import FakeFreeSwitch
from tests.freeswitch.support import ESL_PASSWORD
from tests.helpers import free_port, make_config

TOML = '[plugins]\nenabled = ["freeswitch"]\n'


async def check(tmp_path: Path, **env: str) -> tuple[Finding, Config, Plugins]:
    config, plugins = make_config(tmp_path, TOML, env)
    (found,) = [c for c in plugins.doctor_checks(config) if c.name == "freeswitch"]
    return await found.run(), config, plugins


def ours(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.setting.startswith("FREESWITCH_")]


async def test_the_right_password_is_ok(tmp_path: Path, fake: FakeFreeSwitch) -> None:
    finding, config, plugins = await check(
        tmp_path, FREESWITCH_ESL_PORT=str(fake.port), FREESWITCH_ESL_PASSWORD=ESL_PASSWORD)
    assert finding.status == "ok", finding
    assert finding.detail == (f"FreeSWITCH event socket 127.0.0.1:{fake.port} took the "
                              "password; mod_sms is loaded")
    assert ours(plugins.config_warnings(config)) == []
    assert fake.sent_events() == []  # a check sends nothing


async def test_a_wrong_password_is_named_with_its_fix(
        tmp_path: Path, fake: FakeFreeSwitch) -> None:
    finding, _, _ = await check(tmp_path, FREESWITCH_ESL_PORT=str(fake.port),
                                FREESWITCH_ESL_PASSWORD="not-the-one")
    assert finding.status == "fail"
    assert finding.detail == f"FreeSWITCH event socket 127.0.0.1:{fake.port} refused the " \
                             "password"
    assert finding.fix is not None and "FREESWITCH_ESL_PASSWORD" in finding.fix
    assert "not-the-one" not in finding.detail + finding.fix
    assert fake.auth_failures == 1


@pytest.mark.parametrize("case", ["unreachable", "acl", "unset"])
async def test_other_faults_say_what_to_change(
        tmp_path: Path, fake: FakeFreeSwitch, case: str) -> None:
    env = {"FREESWITCH_ESL_PORT": str(fake.port), "FREESWITCH_ESL_PASSWORD": ESL_PASSWORD}
    if case == "unreachable":
        env["FREESWITCH_ESL_PORT"] = str(free_port())
    elif case == "acl":
        fake.refuse_address = True
    else:
        del env["FREESWITCH_ESL_PASSWORD"]
    finding, config, plugins = await check(tmp_path, **env)
    assert finding.status == "fail" and finding.fix is not None
    expected = {"unreachable": ("cannot reach", "FREESWITCH_ESL_HOST"),
                "acl": ("refused this host", "apply-inbound-acl"),
                "unset": ("FREESWITCH_ESL_PASSWORD unset", "event_socket.conf.xml")}[case]
    assert expected[0] in finding.detail and expected[1] in finding.fix
    if case == "unset":
        (problem,) = ours(plugins.config_warnings(config))
        assert problem.setting == "FREESWITCH_ESL_PASSWORD"


async def test_the_files_sip_extensions_are_checked_for_a_registration(
        tmp_path: Path, fake: FakeFreeSwitch) -> None:
    fake.register("201", "pbx.example.com")
    toml = TOML + "".join(
        f'[[numbers]]\nnumber = "+6141111111{n}"\nprovider = "clicksend"\n'
        f'extension = "{ext}"\ndomain = "pbx.example.com"\nsip = {sip}\n'
        for n, ext, sip in ((1, "201", "true"), (2, "202", "true"), (3, "203", "false")))
    toml = toml.replace('["freeswitch"]', '["clicksend", "freeswitch"]')
    config, plugins = make_config(tmp_path, toml, {
        "FREESWITCH_ESL_PORT": str(fake.port), "FREESWITCH_ESL_PASSWORD": ESL_PASSWORD})
    (found,) = [c for c in plugins.doctor_checks(config) if c.name == "freeswitch"]
    finding = await found.run()
    assert finding.status == "warn"
    assert finding.detail.endswith("no SIP device registered for 202@pbx.example.com (their "
                                   "texts wait until one registers)")
    asked = [r.command for r in fake.received if r.command.startswith("api sofia_contact")]
    assert asked == ["api sofia_contact internal/201@pbx.example.com",
                     "api sofia_contact internal/202@pbx.example.com"]
    fake.register("202", "pbx.example.com")
    finding = await found.run()
    assert finding.status == "ok" and finding.detail.endswith(
        "registered: 201@pbx.example.com, 202@pbx.example.com")
