"""Event models: versioned JSON with our id; `pbxsms schema`; docs list every field."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from pbxsms.core.cli import cli
from pbxsms.core.inbound.routing import INBOUND_ID_NAMESPACE, inbound_id
from pbxsms.core.model.events import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    InboundMessage,
    OutboundRequest,
    Route,
    State,
    StatusEvent,
    new_id,
    uuid_text,
)


def test_events_carry_schema_version_and_uuid() -> None:
    event = InboundMessage(provider="clicksend", **{"from": "+61411111111"},
                           to="+61422222222", body="hi")
    data = json.loads(event.to_json())
    assert data["schema"] == SCHEMA_VERSION == 4
    assert uuid.UUID(data["id"]).version == 4
    assert data["from"] == "+61411111111"
    assert InboundMessage.model_validate_json(event.to_json()) == event


def test_an_event_is_written_as_model_dump_json_writes_it() -> None:
    events = [
        InboundMessage(provider="clicksend", **{"from": "Shop é"}, to="+61422222222",
                       body='a "quoted"\n\ttext \u2028 \x00 \U0001f600', sent_at=datetime.now(UTC),
                       route=Route(number="+61422222222", provider="clicksend",
                                   email=["a@example.com"]),
                       extra={"user_id": "1"}, sender_type="alphanumeric"),
        OutboundRequest(to="+61422222222", body="hi", media_urls=["https://x.example/a"]),
        StatusEvent(id=new_id(), direction="inbound", state=State.DELIVERED,
                    details={"n": 1.5, "nested": {"a": [1, None]}}),
    ]
    for event in events:
        assert event.to_json() == event.model_dump_json(by_alias=True,
                                                         exclude_none=True).encode()


def test_readers_ignore_unknown_fields() -> None:
    raw = {"schema": 1, "id": "x", "to": "+1", "body": "b", "future_field": 1}
    assert OutboundRequest.model_validate(raw).to == "+1"


def test_schema_command_prints_every_subject() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schemas = json.loads(result.output)
    assert set(schemas) == set(EVENT_MODELS)
    assert "schema" in schemas["sms.status.<id>"]["properties"]


def test_docs_cover_every_field() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    for subject, model in EVENT_MODELS.items():
        assert f"`{subject}`" in docs
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in docs, f"{model.__name__}.{name} undocumented"
    for state in StatusEvent.model_fields["state"].annotation:  # type: ignore[union-attr]
        assert f"`{state.value}`" in docs


def test_ids_are_what_the_uuid_module_makes() -> None:
    """Ids are written without `uuid.UUID` objects; they must be the same text."""
    for _ in range(2000):
        raw = os.urandom(16)
        for version in (4, 5):
            assert uuid_text(raw, version) == str(uuid.UUID(bytes=raw, version=version))
    assert len({new_id() for _ in range(1000)}) == 1000
    assert uuid.UUID(new_id()).version == 4
    # Inbound ids are fixed forever (a retry must find the stored message's id).
    for key in ("clicksend:ABC-1", "twilio:SM123", "clicksend:sha256-" + "0" * 40, "x:é€😀"):
        assert inbound_id(key) == str(uuid.uuid5(INBOUND_ID_NAMESPACE, key))
    assert inbound_id("clicksend:ABC-1") == "1acb60b8-27b7-53e7-8e23-3d3f0151dc42"
