"""Defines SendRequest, what other systems ask the dispatcher to send (CONTRACT.md section 3)."""

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.contract.events import Identifier
from shared.contract.json_extent import DECODER_DEPTH, member_value, nesting
from shared.contract.limits import MAX_DEPTH, MAX_MESSAGE_BYTES, MESSAGE, decoded_within
from shared.contract.storable import NUL, storable
from shared.contract.timestamps import Timestamp, TimeZoneName
from shared.rejection import Rejected, RejectedError, decode_json_object, rejection_from

# Set by the dispatcher from `recipient`, never by a producer.
_ADDRESSING = frozenset({"to", "recipient", "messaging_product"})

RequestId = Annotated[str, Field(min_length=1, max_length=128)]


class SendRequest(BaseModel):
    """`purpose` stays a string: an unknown purpose is a decision (purpose_not_permitted),
    not a malformed record."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: RequestId
    recipient: Identifier
    purpose: str = Field(min_length=1)
    message: dict[str, Any] = Field(
        description=f"A Cloud API message object: at most {MAX_DEPTH} levels deep and "
        f"{MAX_MESSAGE_BYTES} bytes of JSON (too_deep, too_large)"
    )
    requested_at: Timestamp | None = None
    opt_out_event_id: str | None = Field(default=None, min_length=1, max_length=128)
    timezone: TimeZoneName | None = Field(
        default=None,
        description="The recipient's IANA time zone (Europe/Moscow): their quiet hours are "
        "reckoned in it instead of the zones of the number",
    )
    deliver_by: Timestamp | None = Field(
        default=None,
        description="Past this instant the message is dropped (deliver_by_passed), never "
        "sent late: a reminder deferred by quiet hours beyond it is not sent",
    )

    @field_validator("message")
    @classmethod
    def _is_a_cloud_api_message(cls, value: dict[str, Any]) -> dict[str, Any]:
        kind = value.get("type")
        if not isinstance(kind, str) or not kind:
            raise RejectedError("invalid_message", "message.type must be a non-empty string")
        if not isinstance(value.get(kind), dict):
            raise RejectedError(
                "invalid_message", f"message.{kind} must be an object for type {kind!r}"
            )
        if not _ADDRESSING.isdisjoint(value):
            raise RejectedError(
                "invalid_message",
                "message must not carry 'to', 'recipient' or 'messaging_product': "
                "the dispatcher addresses it",
            )
        return value


_NUL_REFUSED = {
    "request_id": "invalid_request_id",
    "purpose": "invalid_schema",
    "message": "invalid_message",
    "opt_out_event_id": "invalid_schema",
    "timezone": "invalid_timezone",
}


def parse_send_request(raw: bytes | None) -> SendRequest | Rejected:
    # Limits first: the NUL walk, the model and the dispatcher's orjson.dumps recurse.
    body = decoded_within(raw, MESSAGE)
    if isinstance(body, Rejected):
        return body
    body = storable(raw, body, _NUL_REFUSED)
    if isinstance(body, Rejected):
        return body
    try:
        return SendRequest.model_validate(body)
    except ValidationError as exc:
        return rejection_from(
            exc,
            field_reasons={
                "recipient": "invalid_phone",
                "request_id": "invalid_request_id",
                "timezone": "invalid_timezone",
            },
        )


def salvage_request_id(raw: bytes | None) -> str | None:
    """Returns the request_id of an unusable request, when it has a valid one: such a
    request still gets its one `invalid_request` decision."""
    body = decode_json_object(raw)
    if isinstance(body, Rejected):
        if raw is None or nesting(raw) <= DECODER_DEPTH:
            return None
        # Too deep to decode as a whole (too_deep), its request_id may still be plain.
        body = {"request_id": member_value(raw, "request_id")}
    value = body.get("request_id")
    if isinstance(value, str) and 1 <= len(value) <= 128 and NUL not in value:
        return value
    return None


def salvage_purpose(raw: bytes | None) -> str | None:
    """Returns the purpose of an unusable request, for information, when its value
    decodes to an object with a string one: an unusable value may be anything (not
    JSON, too deep to decode, not an object)."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    purpose = body.get("purpose") if isinstance(body, dict) else None
    return purpose if isinstance(purpose, str) else None
