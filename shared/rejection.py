"""A record we cannot use is a value, not an exception: the handler routes it to the DLQ."""

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError


class Rejected(BaseModel):
    """Tells why a record was refused: `reason` is a short machine code, `detail` a sentence."""

    model_config = ConfigDict(frozen=True)

    reason: str
    detail: str


class RejectedError(ValueError):
    """Names the DLQ reason precisely, raised inside validators."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_json_object(raw: bytes | None) -> dict[str, Any] | Rejected:
    if raw is None:
        return Rejected(reason="invalid_json", detail="the record has no value (tombstone)")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(reason="invalid_json", detail=f"the value is not UTF-8 JSON: {exc}")
    if not isinstance(value, dict):
        return Rejected(
            reason="invalid_schema", detail=f"expected a JSON object, got {type(value).__name__}"
        )
    return value


def rejection_from(
    error: ValidationError,
    default_reason: str = "invalid_schema",
    field_reasons: Mapping[str, str] | None = None,
) -> Rejected:
    """The first error names the reason: custom errors carry their own code, and
    `field_reasons` names the code for any error in a given top-level field."""
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "value"
    context = first.get("ctx") or {}
    inner = context.get("error")
    if isinstance(inner, RejectedError):
        return Rejected(reason=inner.reason, detail=f"{location}: {inner.detail}")
    field = str(first["loc"][0]) if first["loc"] else ""
    reason = (field_reasons or {}).get(field, default_reason)
    return Rejected(reason=reason, detail=f"{location}: {first['msg']}")
