"""docs/schemas/*.schema.json: generated from the contract's models, committed, and
accepting what CONTRACT.md shows while refusing what it forbids."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.contract.schemas import DOCUMENTS, main, rendered
from tests.support.contract_examples import CONTRACT_DECISION, CONTRACT_GRANT, CONTRACT_REQUEST
from tests.support.webhooks import text_webhook

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"

# A text reply as Meta's Cloud API delivers it.
WEBHOOK = text_webhook(
    "79161234567",
    "СТОП",
    "wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQzQTdGRjY2",
    name="Ivan",
    timestamp="1795770000",
)

EXAMPLES = {
    "consent-event": CONTRACT_GRANT,
    "send-request": CONTRACT_REQUEST,
    "dispatch-decision": CONTRACT_DECISION,
    "whatsapp-webhook": WEBHOOK,
}


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _without(value: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != field}


def _with(value: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(value), **changes}


def test_committed_schemas_match_the_models() -> None:
    committed = {p.name for p in SCHEMAS.glob("*.schema.json")}
    assert committed == set(rendered()), "run: python -m shared.contract.schemas"
    for file_name, text in rendered().items():
        assert (SCHEMAS / file_name).read_text(encoding="utf-8") == text, (
            f"{file_name} drifted from the model: run python -m shared.contract.schemas"
        )


def test_every_contract_record_has_a_schema() -> None:
    assert {doc.name for doc in DOCUMENTS} == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_contract_example_is_valid(name: str) -> None:
    errors = list(_validator(name).iter_errors(EXAMPLES[name]))
    assert errors == [], [e.message for e in errors]


WRONG = [
    ("consent-event", _with(CONTRACT_GRANT, type="ConsentMaybe"), "unknown event type"),
    ("consent-event", _without(CONTRACT_GRANT, "subject"), "no subject"),
    ("consent-event", _with(CONTRACT_GRANT, purposes=["marketing"]), "not a clause 3.2 purpose"),
    ("consent-event", _with(CONTRACT_GRANT, event_id=""), "empty event_id"),
    ("consent-event", _with(CONTRACT_GRANT, event_id="x" * 129), "event_id over 128 chars"),
    ("send-request", _without(CONTRACT_REQUEST, "message"), "no message"),
    ("send-request", _with(CONTRACT_REQUEST, message="hello"), "message not an object"),
    ("send-request", _with(CONTRACT_REQUEST, request_id=""), "empty request_id"),
    ("dispatch-decision", _with(CONTRACT_DECISION, decision="sent"), "unknown decision"),
    ("dispatch-decision", _with(CONTRACT_DECISION, reason="because"), "unknown reason"),
    ("dispatch-decision", _without(CONTRACT_DECISION, "decided_at"), "no decided_at"),
    ("whatsapp-webhook", _without(WEBHOOK, "entry"), "no entry list"),
    ("whatsapp-webhook", _with(WEBHOOK, entry={"id": "1"}), "entry not a list"),
]


@pytest.mark.parametrize(("name", "record", "why"), WRONG, ids=[w[2] for w in WRONG])
def test_wrong_record_is_rejected(name: str, record: dict[str, Any], why: str) -> None:
    assert not _validator(name).is_valid(record), why


def test_check_names_the_drifted_file_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0

    drifted = tmp_path / "send-request.schema.json"
    drifted.write_text(drifted.read_text(encoding="utf-8").replace("128", "256"), "utf-8")
    capsys.readouterr()
    assert main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "send-request.schema.json" in err
    assert "consent-event.schema.json" not in err


def test_generation_is_byte_stable(tmp_path: Path) -> None:
    main(["--out", str(tmp_path)])
    for path in tmp_path.iterdir():
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n")
        assert (
            json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + ("\n")
            == text
        )
