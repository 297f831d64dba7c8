"""Generates the JSON Schemas of the wire records from the contract's pydantic models.

    python -m shared.contract.schemas [--check] [--out DIR]

Writes `docs/schemas/<name>.schema.json` (sorted keys, 2-space indent, trailing
newline). With `--check` it writes nothing and exits 1 naming every file that
differs from what the models generate: CI runs it so the committed schemas
never drift from the code.

The records we read are described as we validate them (`mode="validation"`);
DispatchDecision, which only we write, as we serialise it. A schema says the
shape; the rules that need code (a subject must be a valid phone number, the
per-type rules of a ConsentEvent) are in docs/contract.md.
"""

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from shared.contract.decisions import DispatchDecision
from shared.contract.events import ConsentEvent
from shared.contract.requests import SendRequest
from shared.contract.webhook import WebhookBody

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

JsonSchemaMode = Literal["validation", "serialization"]


@dataclass(frozen=True)
class SchemaDoc:
    name: str
    model: type[BaseModel]
    mode: JsonSchemaMode
    topic: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.schema.json"


DOCUMENTS: tuple[SchemaDoc, ...] = (
    SchemaDoc("consent-event", ConsentEvent, "validation", "consent.events.v1"),
    SchemaDoc("send-request", SendRequest, "validation", "messages.requests.v1"),
    SchemaDoc("dispatch-decision", DispatchDecision, "serialization", "messages.decisions.v1"),
    SchemaDoc("whatsapp-webhook", WebhookBody, "validation", "whatsapp.inbound.v1"),
)


def json_schema(doc: SchemaDoc) -> dict[str, Any]:
    schema = doc.model.model_json_schema(mode=doc.mode)
    return {"$schema": DIALECT, "$comment": f"The value of a {doc.topic} record.", **schema}


def render(doc: SchemaDoc) -> str:
    return json.dumps(json_schema(doc), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """Maps each file name to the text the models generate now."""
    return {doc.file_name: render(doc) for doc in DOCUMENTS}


def drifted(texts: Mapping[str, str], out: Path) -> list[Path]:
    """Returns the files under `out` that are missing or differ from `texts` (name -> text)."""
    stale = []
    for file_name, text in texts.items():
        path = out / file_name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
    return stale


def sync_files(texts: Mapping[str, str], out: Path, *, check: bool, module: str) -> int:
    """Writes what differs, or with `check` only names it; the exit code of a command.

    `module` is the one that regenerates the files (`python -m <module>`)."""
    label = module.rsplit(".", 1)[-1]
    stale = drifted(texts, out)
    for path in stale:
        if check:
            print(f"[{label}] out of date: {path}", file=sys.stderr)
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(texts[path.name], encoding="utf-8")
            print(f"[{label}] wrote {path}", file=sys.stderr)
    if check and stale:
        print(f"[{label}] regenerate with: python -m {module}", file=sys.stderr)
        return 1
    print(f"[{label}] {len(texts)} files up to date in {out}", file=sys.stderr)
    return 0


def command_line(module: str, description: str, default_out: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    parser.add_argument("--out", type=Path, default=default_out, help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_line(
        "shared.contract.schemas",
        "Generate the JSON Schemas of the contract's records.",
        DEFAULT_OUT,
    )
    args = parser.parse_args(argv)
    return sync_files(rendered(), args.out, check=args.check, module="shared.contract.schemas")


if __name__ == "__main__":
    sys.exit(main())
