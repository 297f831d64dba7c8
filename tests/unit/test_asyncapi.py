"""docs/asyncapi/*.json: each service's channels, as FastStream describes them, and
committed up to date."""

import json
from pathlib import Path
from typing import Any

import pytest

from services.asyncapi import SERVICES, main, rendered
from shared.topics import (
    CONSENT_EVENTS,
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    WHATSAPP_INBOUND,
    dlq,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"

# service -> (topics it receives, topics it sends to)
CHANNELS: dict[str, tuple[set[str], set[str]]] = {
    "inbound": (
        {WHATSAPP_INBOUND},
        {CONSENT_EVENTS, MESSAGES_REQUESTS, dlq(WHATSAPP_INBOUND)},
    ),
    "consent": ({CONSENT_EVENTS}, {CONSENT_EVENTS, dlq(CONSENT_EVENTS)}),
    "dispatcher": (
        {MESSAGES_REQUESTS, MESSAGES_DEFERRED},
        {
            MESSAGES_OUTBOUND,
            MESSAGES_DECISIONS,
            MESSAGES_DEFERRED,
            dlq(MESSAGES_REQUESTS),
            dlq(MESSAGES_DEFERRED),
        },
    ),
}
# topic -> the payload schema its records must reference
PAYLOADS = {
    CONSENT_EVENTS: "ConsentEvent",
    MESSAGES_REQUESTS: "SendRequest",
    MESSAGES_DECISIONS: "DispatchDecision",
    MESSAGES_OUTBOUND: "WhatsAppSendBody",
}


def _committed(service: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / f"{service}.json").read_text(encoding="utf-8"))
    return loaded


def _addresses(doc: dict[str, Any], action: str) -> set[str]:
    channels = doc["channels"]
    found = set()
    for operation in doc["operations"].values():
        if operation["action"] == action:
            channel_key = operation["channel"]["$ref"].removeprefix("#/channels/")
            found.add(channels[channel_key]["address"])
    return found


def _payload_of(doc: dict[str, Any], address: str) -> str:
    for channel in doc["channels"].values():
        if channel["address"] == address:
            (message_ref,) = (m["$ref"] for m in channel["messages"].values())
            message = doc["components"]["messages"][message_ref.split("/")[-1]]
            payload_ref: str = message["payload"]["$ref"]
            return payload_ref.removeprefix("#/components/schemas/")
    raise AssertionError(f"no channel for {address}")


def test_every_service_has_a_document() -> None:
    assert set(SERVICES) == set(CHANNELS)
    assert {p.name for p in DOCS.glob("*.json")} == {f"{s}.json" for s in CHANNELS}


@pytest.mark.parametrize("service", sorted(CHANNELS))
def test_document_lists_the_channels_the_service_uses(service: str) -> None:
    doc = _committed(service)
    receives, sends = CHANNELS[service]
    assert doc["asyncapi"].startswith("3.")
    assert _addresses(doc, "receive") == receives
    assert _addresses(doc, "send") == sends
    assert {c["address"] for c in doc["channels"].values()} == receives | sends


@pytest.mark.parametrize("service", sorted(CHANNELS))
def test_records_reference_the_contract_models(service: str) -> None:
    doc = _committed(service)
    receives, sends = CHANNELS[service]
    for address in (receives | sends) & set(PAYLOADS):
        schema_name = _payload_of(doc, address)
        assert schema_name == PAYLOADS[address], address
        assert "properties" in doc["components"]["schemas"][schema_name]


def test_dispatcher_outputs_say_read_committed() -> None:
    doc = _committed("dispatcher")
    for channel in doc["channels"].values():
        if channel["address"] in (MESSAGES_OUTBOUND, MESSAGES_DECISIONS):
            assert "read_committed" in channel["description"]


@pytest.mark.parametrize("service", sorted(CHANNELS))
def test_committed_document_is_up_to_date(service: str) -> None:
    assert (DOCS / f"{service}.json").read_text(encoding="utf-8") == rendered()[
        f"{service}.json"
    ], "run: python -m services.asyncapi"


def test_documents_do_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = rendered()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:19092")
    assert rendered() == before


def test_check_names_the_stale_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    (tmp_path / "consent.json").unlink()
    capsys.readouterr()
    assert main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "consent.json" in err
    assert "dispatcher.json" not in err
